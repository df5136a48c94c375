//! Page sessions, held by the server: signing in with a token creates a random session id (32
//! bytes from the OS); the cookie carries that id, never the token. The server keeps only the
//! SHA-256 of the id, with the token it stands for, its creation and last use. A session ends
//! after 12 hours, after 30 minutes unused, on sign-out, and with its token (every use checks
//! the token is still valid, so revoking the token ends its sessions). Sessions live in this
//! process: a restart signs everyone out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The longest a session lives.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// The longest a session may stay unused.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// The most sessions kept; the oldest are dropped beyond it.
const MAX_SESSIONS: usize = 100_000;

#[derive(Clone, Debug)]
struct Session {
    token_id: String,
    created: Instant,
    last_used: Instant,
}

/// The live sessions, by the hash of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<FxHashMap<[u8; 32], Session>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(format!("consentgate/session/v1\0{id}").as_bytes()).into()
}

/// A fresh random value, base64url (32 bytes).
pub fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(B64URL.encode(bytes))
}

impl Sessions {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, FxHashMap<[u8; 32], Session>>, ApiError> {
        self.live
            .lock()
            .map_err(|_| ApiError::internal("the session lock is poisoned"))
    }

    /// Starts a session for the token `token_id`; returns the id for the cookie.
    pub fn create(&self, token_id: &str) -> Result<String, ApiError> {
        let id = random_id()?;
        let now = Instant::now();
        let mut live = self.lock()?;
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, s| alive(s, now));
            if live.len() >= MAX_SESSIONS
                && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
            {
                live.remove(&oldest);
            }
        }
        live.insert(
            key(&id),
            Session {
                token_id: token_id.to_owned(),
                created: now,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// The token a live session stands for (and marks it used); `None` for an unknown, ended
    /// or expired session.
    pub fn token_of(&self, id: &str) -> Option<String> {
        self.token_of_at(id, Instant::now())
    }

    fn token_of_at(&self, id: &str, now: Instant) -> Option<String> {
        let mut live = self.live.lock().ok()?;
        let k = key(id);
        let s = live.get_mut(&k)?;
        if !alive(s, now) {
            live.remove(&k);
            return None;
        }
        s.last_used = now;
        Some(s.token_id.clone())
    }

    /// Ends a session (sign-out).
    pub fn end(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&key(id));
        }
    }

    /// Ends every session of a token (the token was revoked).
    pub fn end_token(&self, token_id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, s| s.token_id != token_id);
        }
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.saturating_duration_since(s.created) < ABSOLUTE
        && now.saturating_duration_since(s.last_used) < IDLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_end_and_die_with_their_token() {
        let s = Sessions::default();
        let a = s.create("tok-a").unwrap();
        let b = s.create("tok-a").unwrap();
        let c = s.create("tok-c").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.token_of(&a).as_deref(), Some("tok-a"));
        assert_eq!(s.token_of("not-a-session"), None);
        s.end(&a);
        assert_eq!(s.token_of(&a), None);
        s.end_token("tok-a");
        assert_eq!(s.token_of(&b), None);
        assert_eq!(s.token_of(&c).as_deref(), Some("tok-c"));
        let now = Instant::now();
        assert_eq!(s.token_of_at(&c, now + IDLE + Duration::from_secs(1)), None);
        // Only hashes are kept.
        let live = s.live.lock().unwrap();
        assert!(live.keys().all(|k| *k != [0u8; 32]));
    }
}
