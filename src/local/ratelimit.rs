//! `limits.rps` as Tinybird applies it: one bucket per JWT `name`, shared by every token
//! that carries that name, so a per-user limit needs per-user names.
//!
//! A fixed one-second window per name: simple, and what an `rps` figure means. Tinybird does
//! not document its rate-limit headers for JWTs; we send `Retry-After` (which clients read
//! first) plus `X-RateLimit-Limit/Remaining/Reset`, with `Reset` in seconds to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};

use super::auth::Caller;
use super::error::ApiError;
use crate::tinybird::claims::{Claims, Limits};

/// The outcome of one check, with what the headers should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit in requests per second.
    pub limit: u64,
    /// Requests left in the current window.
    pub remaining: u64,
    /// Time until the window resets.
    pub reset: Duration,
}

/// Counters per JWT name. Memory is bounded: stale windows are dropped when the map grows.
#[derive(Default)]
pub struct RpsLimiter {
    windows: Mutex<HashMap<String, (Instant, u64)>>,
}

const WINDOW: Duration = Duration::from_secs(1);
const PRUNE_AT: usize = 10_000;

impl RpsLimiter {
    /// Counts one request for `name` against `rps` at `now`; `rps <= 0` is unlimited (`None`).
    pub fn check(&self, name: &str, rps: i64, now: Instant) -> Option<Decision> {
        if rps <= 0 {
            return None;
        }
        let limit = rps as u64;
        let mut windows = self.windows.lock().expect("limiter lock");
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(name.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        let reset = WINDOW.saturating_sub(now.duration_since(entry.0));
        if entry.1 >= limit {
            return Some(Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset,
            });
        }
        entry.1 += 1;
        Some(Decision {
            allowed: true,
            limit,
            remaining: limit - entry.1,
            reset,
        })
    }
}

impl RpsLimiter {
    /// Counts a request by `caller` (JWTs with `limits.rps` only): `Err` is the 429 to send,
    /// `Ok(Some)` the decision whose headers go on the answer.
    pub fn enforce(&self, caller: &Caller) -> Result<Option<Decision>, ApiError> {
        let Caller::Jwt(Claims {
            name,
            limits: Some(Limits { rps }),
            ..
        }) = caller
        else {
            return Ok(None);
        };
        match self.check(name, *rps, Instant::now()) {
            Some(d) if !d.allowed => Err(d.too_many_requests()),
            other => Ok(other),
        }
    }
}

impl Decision {
    /// Seconds to wait, as `Retry-After` and `X-RateLimit-Reset` say it (at least 1 when refused).
    fn wait_seconds(&self) -> u64 {
        let wait = self.reset.as_secs_f64().ceil() as u64;
        if self.allowed { wait } else { wait.max(1) }
    }

    /// The 429 for a spent window, with the headers clients wait on.
    fn too_many_requests(&self) -> ApiError {
        let wait = self.wait_seconds();
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: the token name's limit is {} requests per second",
                self.limit
            ),
        )
        .with_header("retry-after", wait)
        .with_header("x-ratelimit-limit", self.limit)
        .with_header("x-ratelimit-remaining", 0)
        .with_header("x-ratelimit-reset", wait)
    }

    /// Puts `X-RateLimit-Limit/Remaining/Reset` on a successful answer.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", self.limit.into());
        headers.insert("x-ratelimit-remaining", self.remaining.into());
        headers.insert("x-ratelimit-reset", self.wait_seconds().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_per_name_and_resets_each_second() {
        let l = RpsLimiter::default();
        let t0 = Instant::now();
        assert!(l.check("a", 2, t0).unwrap().allowed);
        assert_eq!(l.check("a", 2, t0).unwrap().remaining, 0);
        let denied = l.check("a", 2, t0 + Duration::from_millis(300)).unwrap();
        assert!(!denied.allowed);
        assert_eq!(denied.reset, Duration::from_millis(700));
        assert!(
            l.check("b", 2, t0).unwrap().allowed,
            "another name has its own bucket"
        );
        assert!(l.check("a", 2, t0 + WINDOW).unwrap().allowed);
        assert_eq!(l.check("a", 0, t0), None);
        assert_eq!(l.check("a", -1, t0), None);
    }
}
