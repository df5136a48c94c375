//! API tokens: random 256-bit secrets, stored only as SHA-256 hashes, each with a role (and for
//! `member`, the one member it acts for), an optional expiry and a revocation time.
//!
//! A token reads `cgt_<id>_<secret>`: `id` (16 hex digits) finds the row without revealing the
//! secret; `secret` is 32 random bytes, base64url. Only `SHA-256(secret)` is stored, and it is
//! compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use cg_model::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::model::LedgerError;

/// The roles a token can have.
pub const ROLES: [&str; 4] = ["member", "service", "admin", "auditor"];

/// A stored token (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// SHA-256 of the secret.
    #[serde(skip)]
    pub hash: [u8; 32],
    /// `member`, `service`, `admin` or `auditor`.
    pub role: String,
    /// For `member`: the member it acts for.
    pub member_id: Option<i64>,
    /// A label for humans.
    pub label: Option<String>,
    /// Issued.
    pub created_at: Timestamp,
    /// Expires (none: never).
    pub expires_at: Option<Timestamp>,
    /// Revoked (none: valid).
    pub revoked_at: Option<Timestamp>,
}

/// Why a presented token is refused. Deliberately coarse: the caller learns nothing about
/// which part failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, unknown, wrong secret, expired or revoked.
    #[error("invalid, expired or revoked token")]
    Invalid,
    /// The ledger could not be asked: say so (a retry may work), never "invalid token".
    #[error("the token cannot be checked now: {0}")]
    Unavailable(String),
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// Issues a token; returns the token text (shown once) and its record.
pub fn issue(
    store: &mut dyn Store,
    role: &str,
    member_id: Option<i64>,
    ttl_seconds: Option<i64>,
    label: Option<String>,
) -> Result<(String, TokenRecord), LedgerError> {
    if !ROLES.contains(&role) {
        return Err(LedgerError::Log(format!(
            "unknown role `{role}` (member, service, admin, auditor)"
        )));
    }
    if (role == "member") != member_id.is_some() {
        return Err(LedgerError::Log(
            "a member token needs --member, and only a member token takes one".into(),
        ));
    }
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| LedgerError::Database {
            backend: "os",
            message: format!("no randomness for a token: {e}"),
        })?;
    if ttl_seconds.is_some_and(|s| !(1..=MAX_TTL_SECONDS).contains(&s)) {
        return Err(LedgerError::Log(format!(
            "a token's lifetime is between 1 second and {} days",
            MAX_TTL_SECONDS / 86_400
        )));
    }
    let created_at = now();
    let record = TokenRecord {
        id: cg_proof::hex(&id),
        hash: Sha256::digest(secret).into(),
        role: role.to_owned(),
        member_id,
        label,
        created_at,
        expires_at: ttl_seconds
            .map(|s| Timestamp::from_micros(created_at.micros() + s * 1_000_000)),
        revoked_at: None,
    };
    store.token_insert(&record)?;
    Ok((
        format!("cgt_{}_{}", record.id, B64URL.encode(secret)),
        record,
    ))
}

/// Splits a presented token into its id (16 hex digits) and its decoded secret (32 bytes);
/// `None` for anything else. Pure: what a fuzz target exercises.
pub fn parse_token(presented: &str) -> Option<(&str, Vec<u8>)> {
    let rest = presented.strip_prefix("cgt_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secret = B64URL.decode(secret).ok().filter(|s| s.len() == 32)?;
    Some((id, secret))
}

/// Checks a presented token: known, secret matches, not expired, not revoked.
pub fn authenticate(store: &mut dyn Store, presented: &str) -> Result<TokenRecord, TokenError> {
    let (id, secret) = parse_token(presented).ok_or(TokenError::Invalid)?;
    let record = store
        .token_get(id)
        .map_err(|e| TokenError::Unavailable(e.to_string()))?
        .ok_or(TokenError::Invalid)?;
    let hash: [u8; 32] = Sha256::digest(&secret).into();
    // Constant-time comparison.
    let diff = hash
        .iter()
        .zip(record.hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(TokenError::Invalid);
    }
    let t = now();
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|e| e <= t) {
        return Err(TokenError::Invalid);
    }
    Ok(record)
}

/// The record of token `id` if it is still valid (not revoked, not expired): what a
/// server-side session bound to the token checks on every use.
pub fn valid_record(store: &mut dyn Store, id: &str) -> Result<TokenRecord, TokenError> {
    let record = store
        .token_get(id)
        .map_err(|e| TokenError::Unavailable(e.to_string()))?
        .ok_or(TokenError::Invalid)?;
    let t = now();
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|e| e <= t) {
        return Err(TokenError::Invalid);
    }
    Ok(record)
}

/// The longest lifetime a token can be given: ten years (3650 days). Longer would make
/// "expires" meaningless, and far enough makes the expiry unrepresentable as RFC 3339.
pub const MAX_TTL_SECONDS: i64 = 3_650 * 86_400;

/// Parses a duration such as `90d`, `12h`, `30m`, `45s` into seconds: a positive integer and
/// one unit, at most [`MAX_TTL_SECONDS`]. Anything else (`1é`, `-1d`, `1.5h`, `99999999999d`)
/// is `None`.
pub fn parse_ttl(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n = &s[..s.len() - unit.len_utf8()];
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|s| *s <= MAX_TTL_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing_is_total_and_bounded() {
        assert_eq!(parse_ttl("90d"), Some(7_776_000));
        assert_eq!(parse_ttl("45s"), Some(45));
        assert_eq!(parse_ttl("3650d"), Some(MAX_TTL_SECONDS));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "+1d",
            "1.5h",
            "1é",
            "é",
            "1dd",
            "3651d",
            "99999999999999d",
            "9223372036854775807s",
            "12",
            "1 d",
            "1w",
        ] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
    }
}
