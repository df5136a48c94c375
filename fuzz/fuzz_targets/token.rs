//! Token strings from `Authorization` headers and session forms, and token lifetimes (`--ttl`,
//! `"ttl"`): parsed or refused, never a panic; a parsed lifetime is within bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((id, secret)) = cg_ledger::tokens::parse_token(text) {
        assert_eq!(id.len(), 16);
        assert_eq!(secret.len(), 32);
    }
    if let Some(s) = cg_ledger::tokens::parse_ttl(text) {
        assert!((1..=cg_ledger::tokens::MAX_TTL_SECONDS).contains(&s));
    }
});
