//! Member receipts as a member or auditor hands them in: JSON, then the offline verification.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The verifier key of the throwaway log key the seed corpus (`fuzz/corpus/`) was signed
/// with: seeds verify, so mutations reach past the signature check.
fn vkey() -> &'static str {
    "consentgate.local/log+a3de73a3+AQpiOlm/PB1699FUc7TcEEKk2lMu4BwNpv4Y+gxMPOqn"
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<cg_proof::receipt::Receipt>(data) {
        let _ = cg_proof::receipt::verify(&r, vkey(), None);
        let _ = cg_proof::receipt::verify(&r, vkey(), Some(r.member_id));
    }
});
