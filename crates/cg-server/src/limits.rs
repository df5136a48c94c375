//! Per-token rate limits on writes and batches: a token bucket per (token, kind), refilled
//! continuously. A caller over its share gets 429 with `Retry-After`; the lock is held for a
//! few arithmetic operations, never across a request. Reads (`/v1/check`) are bounded by the
//! ledger pool's queues instead.

use std::sync::Mutex;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::error::ApiError;

/// What a limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A member's writes (setting changes, erasure requests).
    MemberWrite,
    /// `POST /v1/check/batch`.
    Batch,
    /// Administrative writes (member facts, tokens, policies).
    AdminWrite,
}

impl Kind {
    /// (sustained requests per second, burst).
    fn rate(self) -> (f64, f64) {
        match self {
            Kind::MemberWrite => (10.0, 30.0),
            Kind::Batch => (5.0, 10.0),
            Kind::AdminWrite => (20.0, 100.0),
        }
    }
}

/// The most buckets kept; beyond it the stalest are forgotten (a forgotten bucket is full).
const MAX_BUCKETS: usize = 100_000;

/// Token buckets.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<FxHashMap<(String, Kind), (f64, Instant)>>,
}

impl RateLimits {
    /// Takes one request of `kind` from `token_id`'s bucket, or says when to retry.
    pub fn take(&self, token_id: &str, kind: Kind) -> Result<(), ApiError> {
        self.take_at(token_id, kind, Instant::now())
    }

    fn take_at(&self, token_id: &str, kind: Kind, now: Instant) -> Result<(), ApiError> {
        let (rate, burst) = kind.rate();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| ApiError::internal("the rate-limit lock is poisoned"))?;
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < 60.0);
        }
        let (level, at) = buckets
            .entry((token_id.to_owned(), kind))
            .or_insert((burst, now));
        let refilled =
            (*level + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if refilled >= 1.0 {
            *level = refilled - 1.0;
            Ok(())
        } else {
            *level = refilled;
            let wait = ((1.0 - refilled) / rate).ceil().max(1.0) as u32;
            Err(ApiError::rate_limited(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate_per_token_and_kind() {
        let limits = RateLimits::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            limits.take_at("a", Kind::Batch, t0).unwrap();
        }
        let e = limits.take_at("a", Kind::Batch, t0).unwrap_err();
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(1)));
        // Another token and another kind have their own buckets.
        limits.take_at("b", Kind::Batch, t0).unwrap();
        limits.take_at("a", Kind::MemberWrite, t0).unwrap();
        // 5 per second refill: two more after 400 ms, not three.
        let later = t0 + Duration::from_millis(400);
        limits.take_at("a", Kind::Batch, later).unwrap();
        limits.take_at("a", Kind::Batch, later).unwrap();
        limits.take_at("a", Kind::Batch, later).unwrap_err();
    }
}
