//! C2SP tlog-proof text (what `/v1/log/proof/inclusion` and receipts carry): parse, then verify
//! against a leaf.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The verifier key of the throwaway log key the seed corpus (`fuzz/corpus/`) was signed
/// with: seeds verify, so mutations reach past the signature check.
fn vkey() -> &'static str {
    "consentgate.local/log+a3de73a3+AQpiOlm/PB1699FUc7TcEEKk2lMu4BwNpv4Y+gxMPOqn"
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = cg_proof::tlog_proof::LogProof::parse(text) {
        let _ = p.verify(&[0u8; 32], vkey());
        let _ = p.to_text();
    }
});
