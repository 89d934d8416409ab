//! `limits.rps` as Tinybird applies it: one bucket per JWT `name`, shared by every token
//! that carries that name, so a per-user limit needs per-user names.
//!
//! A fixed one-second window per name: simple, and what an `rps` figure means. Tinybird does
//! not document its rate-limit headers for JWTs; we send `Retry-After` (which clients read
//! first) plus `X-RateLimit-Limit/Remaining/Reset`, with `Reset` in seconds to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
