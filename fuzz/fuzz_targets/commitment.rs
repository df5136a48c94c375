//! A dataset's member commitment file (`members.commitment`): decode, and if it decodes, prove
//! and check an interval for a key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = cg_proof::commitment::Commitment::decode(data) {
        let key = [7u8; 32];
        let interval = c.prove(&key);
        let _ = cg_proof::commitment::verify_interval(&interval, &key, &c.root());
    }
});
