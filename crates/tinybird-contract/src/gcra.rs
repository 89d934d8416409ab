//! GCRA (the generic cell rate algorithm): a token bucket stored as one number per key.
//!
//! A limit of `count` per `period` with `burst` has an emission interval `T = period / count`.
//! Each key remembers its theoretical arrival time (TAT). A request at `now` is allowed when
//! `max(TAT, now) + T - burst * T <= now`, and then moves TAT forward by `T`. So `burst`
//! requests pass at once from a fresh key, then one per `T`; an idle key refills at the same
//! pace. Forgetting a key whose TAT is in the past loses nothing, which keeps memory bounded.
//!
//! [`decide`] is the whole algorithm as a pure function; the in-memory buckets below and the
//! Redis script (the BFF's `ratelimit::redis_gcra`, which mirrors it line by line in Lua) both use
//! its rules, with times in microseconds. It lives with the Tinybird contract because
//! Tinybird's server counts `limits.rps` this way too: the local endpoint's buckets are these.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A rate: `count` requests per `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period (at least 1).
    pub count: u32,
    /// The period.
    pub period: Duration,
    /// Requests allowed at once (at least 1; defaults to `count`).
    pub burst: u32,
}

impl Rate {
    /// Parses `"20/s"`, `"100/m burst 20"`, `"5/10s"`, `"1000/h"`; `"off"` is `Ok(None)`.
    pub fn parse(text: &str) -> Result<Option<Rate>, String> {
        const HELP: &str =
            "write \"<count>/<period> [burst <n>]\", e.g. \"20/s burst 40\", \"600/m\" or \"off\"";
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let mut words = text.split_whitespace();
        let rate = words.next().unwrap_or("");
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => None,
            (Some("burst"), Some(n), None) => {
                Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("{text:?}: burst must be a whole number >= 1; {HELP}")
                })?)
            }
            _ => return Err(format!("{text:?} is not a rate; {HELP}")),
        };
        let (count, period) = rate
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a rate; {HELP}"))?;
        let count = count
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{text:?}: the count must be a whole number >= 1; {HELP}"))?;
        let period = match period {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other)
                .map_err(|_| format!("{text:?}: unknown period {other:?}; {HELP}"))?,
        };
        if period.is_zero() || period > Duration::from_secs(86_400) {
            return Err(format!(
                "{text:?}: the period must be between 1µs and 1 day"
            ));
        }
        Ok(Some(Rate {
            count,
            period,
            burst: burst.unwrap_or(count),
        }))
    }

    /// The emission interval `T`, in microseconds (at least 1).
    pub fn interval_us(&self) -> u64 {
        (self.period.as_micros() as u64 / u64::from(self.count)).max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} burst {}",
            self.count,
            humantime::format_duration(self.period),
            self.burst
        )
    }
}

/// The outcome for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may pass.
    pub allowed: bool,
    /// The TAT to store when every key of the check allowed.
    pub new_tat: u64,
    /// Requests still allowed right now after this one (0 when refused).
    pub remaining: u32,
    /// Microseconds until the bucket is full again.
    pub reset_us: u64,
    /// Microseconds until a refused request would pass (0 when allowed).
    pub retry_after_us: u64,
}

/// GCRA for one key: `tat` is the stored TAT (`None` for a fresh key), times in µs.
pub fn decide(now: u64, tat: Option<u64>, interval: u64, burst: u32) -> Decision {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    // Signed: `allow_at` is before the clock's zero when the burst spans more than `now`.
    let allow_at = i128::from(new_tat) - i128::from(interval) * i128::from(burst);
    let now_signed = i128::from(now);
    if now_signed < allow_at {
        Decision {
            allowed: false,
            new_tat: tat,
            remaining: 0,
            reset_us: tat - now,
            retry_after_us: (allow_at - now_signed) as u64,
        }
    } else {
        Decision {
            allowed: true,
            new_tat,
            remaining: ((now_signed - allow_at) / i128::from(interval)) as u32,
            reset_us: new_tat - now,
            retry_after_us: 0,
        }
    }
}

/// The combined outcome of several keys checked together (user and tenant buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every key allowed.
    pub allowed: bool,
    /// Which key decided: when refused, the one with the longest wait; when allowed, the one
    /// with the fewest requests left.
    pub binding: usize,
    /// That key's decision.
    pub decision: Decision,
}

/// Combines per-key decisions: all must allow, and then all advance; a refusal consumes
/// nothing anywhere (a tenant-wide refusal does not eat into the user's own budget).
pub fn combine(decisions: &[Decision]) -> Outcome {
    let refused = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.allowed)
        .max_by_key(|(_, d)| d.retry_after_us);
    let (binding, decision) = refused.unwrap_or_else(|| {
        decisions
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| d.remaining)
            .expect("at least one key")
    });
    Outcome {
        allowed: refused.is_none(),
        binding,
        decision: *decision,
    }
}

/// How many keys the in-memory buckets hold before dropping full (forgettable) ones.
const SWEEP_AT: usize = 10_000;

/// GCRA buckets in this process (no Redis): exact for one instance, N times the limit for N.
#[derive(Debug)]
pub struct MemoryBuckets {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryBuckets {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBuckets {
    /// Empty buckets.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `(key, interval_us, burst)` buckets together at `now`, atomically.
    pub fn check(&self, keys: &[(String, u64, u32)], now: Instant) -> Outcome {
        let now = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= SWEEP_AT {
            // A TAT in the past is a full bucket: dropping it changes no decision.
            tats.retain(|_, tat| *tat > now);
        }
        let decisions: Vec<Decision> = keys
            .iter()
            .map(|(key, interval, burst)| decide(now, tats.get(key).copied(), *interval, *burst))
            .collect();
        let outcome = combine(&decisions);
        if outcome.allowed {
            for ((key, _, _), d) in keys.iter().zip(&decisions) {
                tats.insert(key.clone(), d.new_tat);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap().unwrap()
    }

    #[test]
    fn rates_parse_with_units_bursts_and_off() {
        assert_eq!(
            rate("20/s burst 40"),
            Rate {
                count: 20,
                period: Duration::from_secs(1),
                burst: 40
            }
        );
        assert_eq!(rate("600/m").burst, 600);
        assert_eq!(rate("5/10s").period, Duration::from_secs(10));
        assert_eq!(rate("1000/hour").interval_us(), 3_600 * SEC / 1000);
        assert_eq!(Rate::parse("off"), Ok(None));
        for bad in [
            "",
            "20",
            "0/s",
            "20/s burst",
            "20/s burst 0",
            "x/s",
            "20/fortnight",
            "20/s burst 4 x",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(rate("20/s burst 40").to_string(), "20/1s burst 40");
    }

    #[test]
    fn a_fresh_key_allows_the_burst_then_one_per_interval() {
        let (interval, burst) = (SEC / 10, 3); // 10/s burst 3
        let mut tat = None;
        let now = 1_000 * SEC;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let d = decide(now, tat, interval, burst);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = Some(d.new_tat);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = decide(now, tat, interval, burst);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_us, interval);
        assert_eq!(refused.reset_us, 3 * interval);
        // One interval later exactly one more passes.
        let later = decide(now + interval, tat, interval, burst);
        assert!(later.allowed && later.remaining == 0);
        // After a full refill the burst is back.
        let idle = decide(now + 10 * SEC, tat, interval, burst);
        assert_eq!(idle.remaining, 2);
    }

    #[test]
    fn a_sustained_rate_is_held_to_count_per_period_plus_burst() {
        // 5/s burst 5, hammered every 10 ms for 10 s: 5 (burst) + 10 s * 5/s = 55 pass.
        let r = rate("5/s");
        let mut tat = None;
        let mut passed = 0;
        let mut now = 0;
        while now < 10 * SEC {
            let d = decide(now, tat, r.interval_us(), r.burst);
            if d.allowed {
                passed += 1;
                tat = Some(d.new_tat);
            }
            now += SEC / 100;
        }
        assert!((54..=55).contains(&passed), "{passed}");
    }

    #[test]
    fn combined_keys_all_advance_or_none_do() {
        let b = MemoryBuckets::new();
        let t0 = Instant::now();
        let user = ("user:alice".to_owned(), SEC, 2);
        let tenant = ("tenant:acme".to_owned(), SEC, 3);
        let both = [user.clone(), tenant.clone()];
        assert!(b.check(&both, t0).allowed);
        let o = b.check(&both, t0);
        assert!(o.allowed);
        assert_eq!((o.binding, o.decision.remaining), (0, 0));
        // The user bucket is empty: refused, and the tenant keeps its last request.
        let o = b.check(&both, t0);
        assert!(!o.allowed && o.binding == 0);
        let bob = [("user:bob".to_owned(), SEC, 2), tenant];
        let o = b.check(&bob, t0);
        assert!(o.allowed && o.binding == 1 && o.decision.remaining == 0);
        // Now the tenant is empty too: bob is refused on the tenant bucket.
        let o = b.check(&bob, t0);
        assert!(!o.allowed && o.binding == 1);
    }
}
