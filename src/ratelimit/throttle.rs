//! Failed-login throttling: after too many failures for one key, that key is locked out.
//!
//! The login handler checks two keys per attempt, `account:<id>` and `client:<ip>`, so both
//! guessing many passwords for one account and spraying one password over many accounts from
//! one client get slowed down. Counting uses a fixed window that starts at the first failure;
//! the lockout has a fixed length (no growth) to stay predictable for users and operators.
//! Time is passed in (`now`) so tests never sleep.
//!
//! An attempt is checked and counted as a failure in one step ([`LoginThrottle::attempt`]), so
//! parallel guesses cannot all pass the check before any is counted. A correct password then
//! clears the account's failures ([`LoginThrottle::record_success`]) but only takes its own
//! attempt back from the client's ([`LoginThrottle::forgive`]): otherwise one known password
//! would let a client guess at every other account forever.
//!
//! Memory is bounded: the map holds at most `max_keys` entries. When full, entries that no
//! longer matter (window over, lockout over) go first, then entries that are counting but not
//! locked, and only then the locks that end soonest. A flood of new keys can therefore reset
//! partial counts, but not lift lockouts while there is any other room to make.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many keys [`LoginThrottle::new`] remembers at most.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// When a key gets locked out and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that trigger a lockout (0 behaves like 1).
    pub max_failures: u32,
    /// How long failures are counted, starting at the first one.
    pub window: Duration,
    /// How long a key stays locked once it hits `max_failures`.
    pub lockout: Duration,
}

impl Default for ThrottleConfig {
    /// 5 failures within 15 minutes lock the key for 15 minutes.
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// What is remembered about one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// First failure of the current counting window.
    window_start: Instant,
    /// Failures since `window_start`.
    failures: u32,
    /// Set when the key hit the limit; the key is locked while `now` is before it.
    locked_until: Option<Instant>,
}

impl Entry {
    fn locked_at(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Nothing worth remembering: not locked, and the counting window is over.
    fn forgotten_at(&self, now: Instant, window: Duration) -> bool {
        !self.locked_at(now)
            && (self.locked_until.is_some()
                || now.saturating_duration_since(self.window_start) >= window)
    }
}

/// Counts failed logins per key and locks a key out after too many. Shareable across tasks.
pub struct LoginThrottle {
    cfg: ThrottleConfig,
    max_keys: usize,
    /// Critical sections are a few map operations, so a plain mutex is cheaper than anything
    /// async; it is never held across an `.await`.
    entries: Mutex<HashMap<String, Entry>>,
}

impl fmt::Debug for LoginThrottle {
    // The keys (account ids, client IPs) are left out: they belong in audit logs, not Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("cfg", &self.cfg)
            .field("max_keys", &self.max_keys)
            .field("keys", &self.len())
            .finish()
    }
}

impl LoginThrottle {
    /// A throttle remembering at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self::with_max_keys(cfg, DEFAULT_MAX_KEYS)
    }

    /// A throttle remembering at most `max_keys` keys (at least 1).
    pub fn with_max_keys(cfg: ThrottleConfig, max_keys: usize) -> Self {
        Self {
            cfg,
            max_keys: max_keys.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` if the key is locked out now.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.lock().get(key).and_then(|e| e.locked_until) {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// One login attempt for `key`, checked and counted in one step: `Err(retry_after)` while
    /// the key is locked out, or while `max_failures` attempts are already counted in the
    /// window (parallel guesses still being checked: retry in a second); else the attempt
    /// counts as a failure until [`Self::forgive`] takes it back or [`Self::record_success`]
    /// clears the key. [`Self::failed`] then locks the key once the count reaches the limit.
    pub fn attempt(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut entries = self.lock();
        if !entries.contains_key(key) && entries.len() >= self.max_keys {
            self.make_room(&mut entries, now);
        }
        let fresh = Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        };
        let entry = entries.entry(key.to_owned()).or_insert(fresh);
        if let Some(until) = entry.locked_until.filter(|&until| now < until) {
            return Err(until - now);
        }
        if entry.forgotten_at(now, self.cfg.window) {
            *entry = fresh;
        }
        if entry.failures >= self.cfg.max_failures.max(1) {
            return Err(Duration::from_secs(1));
        }
        entry.failures += 1;
        Ok(())
    }

    /// The attempt's password was wrong: locks `key` when its count has reached the limit.
    /// Failures while locked are ignored, so hammering a locked key does not extend its
    /// lockout.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key)
            && !entry.locked_at(now)
            && entry.failures >= self.cfg.max_failures.max(1)
        {
            entry.locked_until = Some(add(now, self.cfg.lockout));
            entry.failures = 0;
        }
    }

    /// A failed login for `key` in one call ([`Self::attempt`], then [`Self::failed`]).
    pub fn record_failure(&self, key: &str, now: Instant) {
        if self.attempt(key, now).is_ok() {
            self.failed(key, now);
        }
    }

    /// Forgets the key: a successful login clears its failures and any lockout.
    pub fn record_success(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Takes back the failure [`Self::attempt`] counted for an attempt whose password was
    /// right, keeping every other failure and any lockout.
    pub fn forgive(&self, key: &str) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(key)
            && entry.locked_until.is_none()
        {
            entry.failures = entry.failures.saturating_sub(1);
            if entry.failures == 0 {
                entries.remove(key);
            }
        }
    }

    /// How many keys are remembered (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere cannot leave an entry half-updated in a harmful way.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frees at least one slot, dropping the least valuable entries first.
    fn make_room(&self, entries: &mut HashMap<String, Entry>, now: Instant) {
        let window = self.cfg.window;
        entries.retain(|_, e| !e.forgotten_at(now, window));
        if entries.len() < self.max_keys {
            return;
        }
        entries.retain(|_, e| e.locked_at(now));
        if entries.len() < self.max_keys {
            return;
        }
        // Everything is locked: drop the ~1% of locks that end soonest, so the next inserts
        // do not each pay for a full scan.
        let evict = (entries.len() / 100).max(1);
        let mut ends: Vec<Instant> = entries.values().filter_map(|e| e.locked_until).collect();
        let (_, &mut cutoff, _) = ends.select_nth_unstable(evict - 1);
        let mut left = evict;
        entries.retain(|_, e| {
            let drop = left > 0 && e.locked_until.is_some_and(|u| u <= cutoff);
            left -= usize::from(drop);
            !drop
        });
    }
}

/// `now + d`, saturating at a far-future instant instead of panicking on absurd configs.
fn add(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig::default())
    }

    fn fail(t: &LoginThrottle, key: &str, now: Instant, times: u32) {
        for _ in 0..times {
            t.record_failure(key, now);
        }
    }

    #[test]
    fn locks_after_max_failures_and_reports_time_left() {
        let (t, t0) = (throttle(), Instant::now());
        fail(&t, "account:alice", t0, 4);
        assert_eq!(t.check("account:alice", t0), Ok(()));
        t.record_failure("account:alice", t0);
        assert_eq!(t.check("account:alice", t0), Err(15 * MIN));
        assert_eq!(t.check("account:alice", t0 + 5 * MIN), Err(10 * MIN));
        // Other keys, including the same id under the other prefix, are unaffected.
        assert_eq!(t.check("account:bob", t0), Ok(()));
        assert_eq!(t.check("client:alice", t0), Ok(()));
    }

    #[test]
    fn lockout_ends_and_failures_while_locked_do_not_extend_it() {
        let (t, t0) = (throttle(), Instant::now());
        fail(&t, "client:10.0.0.1", t0, 5);
        fail(&t, "client:10.0.0.1", t0 + 10 * MIN, 20);
        assert!(
            t.check("client:10.0.0.1", t0 + 15 * MIN - Duration::from_secs(1))
                .is_err()
        );
        assert_eq!(t.check("client:10.0.0.1", t0 + 15 * MIN), Ok(()));
        // After the lockout the count starts from zero again.
        fail(&t, "client:10.0.0.1", t0 + 16 * MIN, 4);
        assert_eq!(t.check("client:10.0.0.1", t0 + 16 * MIN), Ok(()));
    }

    #[test]
    fn success_clears_failures_and_lockout() {
        let (t, t0) = (throttle(), Instant::now());
        fail(&t, "account:alice", t0, 4);
        t.record_success("account:alice");
        fail(&t, "account:alice", t0, 4);
        assert_eq!(t.check("account:alice", t0), Ok(()));
        t.record_failure("account:alice", t0);
        assert!(t.check("account:alice", t0).is_err());
        t.record_success("account:alice");
        assert_eq!(t.check("account:alice", t0), Ok(()));
        assert!(t.is_empty());
    }

    #[test]
    fn an_attempt_is_checked_and_counted_at_once_and_a_success_takes_back_only_itself() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 3,
            ..ThrottleConfig::default()
        });
        let t0 = Instant::now();
        // Two failed attempts, then a right password: the client keeps its two failures.
        t.record_failure("client:1", t0);
        t.record_failure("client:1", t0);
        assert_eq!(t.attempt("client:1", t0), Ok(()));
        t.forgive("client:1");
        // The third failure locks: the right password did not reset the count.
        t.record_failure("client:1", t0);
        assert_eq!(t.attempt("client:1", t0), Err(15 * MIN));
        // A forgiven lock stays a lock.
        t.forgive("client:1");
        assert!(t.attempt("client:1", t0).is_err());
        // Ten attempts at once on a fresh key: exactly max_failures pass the check; the rest
        // wait a second; once they fail, the key is locked.
        let passed = (0..10)
            .filter(|_| t.attempt("client:2", t0).is_ok())
            .count();
        assert_eq!(passed, 3);
        assert_eq!(t.attempt("client:2", t0), Err(Duration::from_secs(1)));
        t.failed("client:2", t0);
        assert_eq!(t.attempt("client:2", t0), Err(15 * MIN));
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let (t, t0) = (throttle(), Instant::now());
        fail(&t, "account:alice", t0, 4);
        fail(&t, "account:alice", t0 + 15 * MIN, 4);
        assert_eq!(t.check("account:alice", t0 + 15 * MIN), Ok(()));
        t.record_failure("account:alice", t0 + 20 * MIN);
        assert!(t.check("account:alice", t0 + 20 * MIN).is_err());
    }

    #[test]
    fn memory_stays_capped_and_locks_survive_a_flood() {
        let t = LoginThrottle::with_max_keys(ThrottleConfig::default(), 100);
        let t0 = Instant::now();
        fail(&t, "account:victim", t0, 5);
        for i in 0..1_000 {
            t.record_failure(&format!("client:{i}"), t0 + MIN);
            assert!(t.len() <= 100);
        }
        assert!(t.check("account:victim", t0 + MIN).is_err());
    }

    #[test]
    fn a_full_map_drops_entries_that_no_longer_matter_first() {
        let t = LoginThrottle::with_max_keys(ThrottleConfig::default(), 100);
        let t0 = Instant::now();
        for i in 0..100 {
            t.record_failure(&format!("client:{i}"), t0);
        }
        t.record_failure("client:new", t0 + 15 * MIN);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn when_everything_is_locked_the_soonest_to_end_go_first() {
        let t = LoginThrottle::with_max_keys(ThrottleConfig::default(), 10);
        let t0 = Instant::now();
        for i in 0..10u32 {
            fail(&t, &format!("k{i}"), t0 + Duration::from_secs(i.into()), 5);
        }
        fail(&t, "late", t0 + MIN, 5);
        assert_eq!(t.len(), 10);
        assert_eq!(
            t.check("k0", t0 + MIN),
            Ok(()),
            "earliest-ending lock evicted"
        );
        assert!(t.check("k9", t0 + MIN).is_err());
        assert!(t.check("late", t0 + MIN).is_err());
    }
}
