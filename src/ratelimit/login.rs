//! Failed-login throttling on the rate limiter's store: in memory for one instance
//! ([`LoginThrottle`]), in Redis when configured, so a lockout on one instance holds on all.
//!
//! The Redis version keeps exactly the in-memory semantics (see [`super::throttle`]): failures
//! are counted in a fixed window that starts at the first one; reaching `max_failures` sets a
//! lock for `lockout` and resets the count; failures while locked do not extend the lock; an
//! attempt is checked and counted in one step (one script: parallel guesses on several
//! instances cannot all pass the check first; past `max_failures` counted they wait a second),
//! and a wrong password then sets the lock once the count is reached; a success clears the
//! account's count and lock but only takes its own attempt back from the client's. The count
//! and the lock are two keys with Redis expiries.
//!
//! While Redis is down, `limits.on_redis_error` decides: `open` lets logins through
//! unthrottled, `closed` answers 503.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::FailMode;
use super::throttle::{LoginThrottle, ThrottleConfig};
use crate::error::AppError;
use crate::redis::Redis;

/// KEYS: count, lock. ARGV: max_failures, window_ms. Returns the milliseconds to wait when
/// the key is locked or already has `max_failures` attempts counted (nothing counted then),
/// else 0 after counting the attempt as a failure.
const ATTEMPT_SCRIPT: &str = r#"
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return left end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 1000
end
return 0
"#;

/// KEYS: count, lock. ARGV: max_failures, lockout_ms. A wrong password: locks the key once
/// its count has reached `max_failures`.
const FAILED_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// KEYS: count, lock. Takes one counted failure back, unless the key is locked.
const FORGIVE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 0
"#;

static ATTEMPT: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(ATTEMPT_SCRIPT));
static FAILED: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(FAILED_SCRIPT));
static FORGIVE: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(FORGIVE_SCRIPT));

enum Backend {
    Memory(LoginThrottle),
    Redis(Redis),
}

/// One throttle (per account, or per client address).
pub struct SharedThrottle {
    /// `account` or `client`: part of the Redis key, so the two never mix.
    kind: &'static str,
    cfg: ThrottleConfig,
    backend: Backend,
    fail: FailMode,
}

impl std::fmt::Debug for SharedThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedThrottle")
            .field("kind", &self.kind)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl SharedThrottle {
    /// In Redis when given, else in memory.
    pub fn new(
        kind: &'static str,
        cfg: ThrottleConfig,
        redis: Option<Redis>,
        fail: FailMode,
    ) -> Self {
        let backend = match redis {
            Some(r) => Backend::Redis(r),
            None => Backend::Memory(LoginThrottle::new(cfg)),
        };
        Self {
            kind,
            cfg,
            backend,
            fail,
        }
    }

    /// The counter and the lock, read together by one script: one hash tag (Cluster slot).
    fn keys(&self, redis: &Redis, key: &str) -> (String, String) {
        let tag = crate::redis::tag(&format!("{}:{key}", self.kind));
        (
            redis.key(&format!("login:{tag}:failures")),
            redis.key(&format!("login:{tag}:lock")),
        )
    }

    /// One login attempt for `key`: 429 while it is locked out (or `max_failures` attempts
    /// are already counted), else counted as a failure in the same step (see the module doc);
    /// a wrong password then calls [`Self::failed`], a right one [`Self::record_success`]
    /// (accounts) or [`Self::forgive`] (clients).
    pub async fn attempt(&self, key: &str, now: Instant) -> Result<(), AppError> {
        let wait = match &self.backend {
            Backend::Memory(t) => t.attempt(key, now).err(),
            Backend::Redis(r) => {
                let (count, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let result: ::redis::RedisResult<i64> = ATTEMPT
                    .key(count)
                    .key(lock)
                    .arg(self.cfg.max_failures.max(1))
                    .arg(self.cfg.window.as_millis().max(1) as u64)
                    .invoke_async(&mut conn)
                    .await;
                match r.observe("login_throttle", result) {
                    Ok(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
                    Ok(_) => None,
                    Err(_) if self.fail == FailMode::Open => None,
                    Err(_) => {
                        return Err(AppError::Unavailable(
                            "login throttling is unavailable (shared store down); try again shortly".into(),
                        ));
                    }
                }
            }
        };
        match wait {
            Some(wait) => Err(AppError::TooManyRequests {
                message: "too many failed logins: wait before trying again".into(),
                retry_after: wait.as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    /// The attempt's password was wrong: locks `key` once its count has reached the limit
    /// (errors are logged and counted, never shown to the user).
    pub async fn failed(&self, key: &str, now: Instant) {
        match &self.backend {
            Backend::Memory(t) => t.failed(key, now),
            Backend::Redis(r) => {
                let (count, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let result: ::redis::RedisResult<i64> = FAILED
                    .key(count)
                    .key(lock)
                    .arg(self.cfg.max_failures.max(1))
                    .arg(self.cfg.lockout.as_millis().max(1) as u64)
                    .invoke_async(&mut conn)
                    .await;
                let _ = r.observe("login_throttle", result);
            }
        }
    }

    /// Takes back the failure [`Self::attempt`] counted for an attempt whose password was
    /// right, keeping the key's other failures and any lockout (errors are logged and
    /// counted, never shown to the user).
    pub async fn forgive(&self, key: &str) {
        match &self.backend {
            Backend::Memory(t) => t.forgive(key),
            Backend::Redis(r) => {
                let (count, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let result: ::redis::RedisResult<i64> =
                    FORGIVE.key(count).key(lock).invoke_async(&mut conn).await;
                let _ = r.observe("login_throttle", result);
            }
        }
    }

    /// Clears the key's failures and lockout after a successful login.
    pub async fn record_success(&self, key: &str) {
        match &self.backend {
            Backend::Memory(t) => t.record_success(key),
            Backend::Redis(r) => {
                let (count, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let result: ::redis::RedisResult<i64> = ::redis::cmd("DEL")
                    .arg(count)
                    .arg(lock)
                    .query_async(&mut conn)
                    .await;
                let _ = r.observe("login_throttle", result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_throttle_locks_after_max_failures_and_clears_on_success() {
        let cfg = ThrottleConfig {
            max_failures: 2,
            ..ThrottleConfig::default()
        };
        let t = SharedThrottle::new("account", cfg, None, FailMode::Open);
        let now = Instant::now();
        for _ in 0..2 {
            assert!(t.attempt("alice", now).await.is_ok());
            t.failed("alice", now).await;
        }
        let err = t.attempt("alice", now).await.unwrap_err();
        assert!(
            matches!(
                err,
                AppError::TooManyRequests {
                    retry_after: 900,
                    ..
                }
            ),
            "{err:?}"
        );
        t.record_success("alice").await;
        assert!(t.attempt("alice", now).await.is_ok());
    }
}
