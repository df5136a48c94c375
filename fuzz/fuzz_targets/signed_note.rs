//! Signed notes and checkpoints (C2SP): opening a note with a verifier key, parsing a checkpoint
//! body, parsing verifier and private keys — whatever the bytes, an error or a value, never a
//! panic.
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
    let _ = cg_proof::note::open(text, vkey());
    let _ = cg_proof::note::Checkpoint::parse(text);
    let _ = cg_proof::note::NoteVerifier::parse(text);
    let _ = cg_proof::note::NoteSigner::parse_private_key(text);
    // A note split at its blank line: the body as a checkpoint, the rest as a key.
    if let Some((body, rest)) = text.split_once("\n\n") {
        let _ = cg_proof::note::Checkpoint::parse(body);
        let _ = cg_proof::note::open(text, rest.trim());
    }
});
