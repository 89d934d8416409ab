//! `limits.rps` as Tinybird's server applies it: one bucket per workspace, **per pipe** and
//! per JWT `name` (every token with that name shares it), one second, burst = `rps`.
//!
//! Tinybird keys the bucket on the pipe as the URL names it (name or id) and counts it with a
//! GCRA limiter; `rps <= 0` is no limit. Its answers carry `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (errors included), plus `Retry-After` on
//! the 429. A browser calling Tinybird directly can read none of them (CORS exposes only
//! `X-Tb-Warning`), so clients back off without them; servers and SDKs read them.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};

use super::auth::Caller;
use super::error::ApiError;
use tinybird_contract::claims::{Claims, Limits};
use tinybird_contract::gcra::{Decision, MemoryBuckets};

/// The rps buckets of one local endpoint.
#[derive(Debug, Default)]
pub struct RpsLimiter {
    buckets: MemoryBuckets,
}

/// One counted request: what its headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// The JWT's `limits.rps`.
    pub limit: u64,
    /// Requests left right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds to wait, when refused.
    pub retry_after: Option<u64>,
}

impl RpsLimiter {
    /// Counts one request of `name` on `pipe` in `workspace` at `now`; `None` when `rps <= 0`.
    pub fn check(
        &self,
        workspace: &str,
        pipe: &str,
        name: &str,
        rps: i64,
        now: Instant,
    ) -> Option<RateHeaders> {
        let burst = u32::try_from(rps).ok().filter(|r| *r > 0)?;
        let interval = (Duration::from_secs(1).as_micros() as u64 / u64::from(burst)).max(1);
        // `\u{1f}` cannot appear in a workspace id or pipe name, so keys never collide.
        let key = format!("{workspace}\u{1f}{pipe}\u{1f}{name}");
        let outcome = self.buckets.check(&[(key, interval, burst)], now);
        Some(RateHeaders::from_decision(&outcome.decision, burst))
    }

    /// Counts a request by `caller` on `pipe` (JWTs with `limits.rps` only): `Err` is the 429,
    /// `Ok(Some)` the headers for whatever the request then answers.
    pub fn enforce(
        &self,
        caller: &Caller,
        workspace: &str,
        pipe: &str,
    ) -> Result<Option<RateHeaders>, (ApiError, RateHeaders)> {
        let Caller::Jwt(Claims {
            name,
            limits: Some(Limits { rps }),
            ..
        }) = caller
        else {
            return Ok(None);
        };
        match self.check(workspace, pipe, name, *rps, Instant::now()) {
            Some(h) if h.retry_after.is_some() => Err((h.too_many_requests(pipe), h)),
            other => Ok(other),
        }
    }
}

impl RateHeaders {
    fn from_decision(d: &Decision, limit: u32) -> Self {
        let secs = |us: u64| us.div_ceil(1_000_000);
        Self {
            limit: u64::from(limit),
            remaining: u64::from(d.remaining),
            reset: secs(d.reset_us),
            retry_after: (!d.allowed).then(|| secs(d.retry_after_us).max(1)),
        }
    }

    /// The 429 for a spent bucket.
    fn too_many_requests(&self, pipe: &str) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many requests: the token's limits.rps ({}) for {pipe} is spent; retry in {} s",
                self.limit,
                self.retry_after.unwrap_or(1)
            ),
        )
    }

    /// Puts the headers on an answer (success or error), `Retry-After` when refused.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", self.limit.into());
        headers.insert("x-ratelimit-remaining", self.remaining.into());
        headers.insert("x-ratelimit-reset", self.reset.into());
        if let Some(wait) = self.retry_after {
            headers.insert("retry-after", wait.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn one_bucket_per_workspace_pipe_and_name_with_a_burst_of_rps() {
        let l = RpsLimiter::default();
        let t0 = Instant::now();
        let check = |pipe: &str, name: &str, at: Duration| l.check("ws", pipe, name, 2, t0 + at);
        assert_eq!(check("p", "a", MS(0)).unwrap().remaining, 1);
        assert_eq!(check("p", "a", MS(0)).unwrap().remaining, 0);
        let refused = check("p", "a", MS(100)).unwrap();
        assert_eq!(
            refused.retry_after,
            Some(1),
            "one request back after 500 ms"
        );
        assert!(
            check("q", "a", MS(100)).unwrap().retry_after.is_none(),
            "another pipe"
        );
        assert!(
            check("p", "b", MS(100)).unwrap().retry_after.is_none(),
            "another name"
        );
        assert!(
            l.check("other-ws", "p", "a", 2, t0)
                .unwrap()
                .retry_after
                .is_none()
        );
        // GCRA refills one request per 1/rps second.
        assert!(check("p", "a", MS(500)).unwrap().retry_after.is_none());
        assert!(check("p", "a", MS(600)).unwrap().retry_after.is_some());
        assert_eq!(l.check("ws", "p", "a", 0, t0), None, "rps <= 0 is no limit");
        assert_eq!(l.check("ws", "p", "a", -3, t0), None);
    }

    #[test]
    fn headers_say_limit_remaining_reset_and_retry_after_when_refused() {
        let l = RpsLimiter::default();
        let t0 = Instant::now();
        let ok = l.check("ws", "p", "n", 1, t0).unwrap();
        let mut h = HeaderMap::new();
        ok.apply(&mut h);
        assert_eq!(h["x-ratelimit-limit"], "1");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "1");
        assert!(h.get("retry-after").is_none());
        let refused = l.check("ws", "p", "n", 1, t0 + MS(10)).unwrap();
        let mut h = HeaderMap::new();
        refused.apply(&mut h);
        assert_eq!(h["retry-after"], "1");
    }
}
