//! Failed-login throttling on the rate limiter's store: in memory for one instance
//! ([`LoginThrottle`]), in Redis when configured, so a lockout on one instance holds on all.
//!
//! The Redis version keeps exactly the in-memory semantics (see `auth::throttle`): failures
//! are counted in a fixed window that starts at the first one; reaching `max_failures` sets a
//! lock for `lockout` and resets the count; failures while locked do not extend the lock; a
//! success clears both. The count and the lock are two keys with Redis expiries, updated by
//! one script, so the check and the update stay one round trip each.
//!
//! While Redis is down, `limits.on_redis_error` decides: `open` lets logins through
//! unthrottled, `closed` answers 503.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::FailMode;
use crate::auth::throttle::{LoginThrottle, ThrottleConfig};
use crate::error::AppError;
use crate::redis::Redis;

/// KEYS: count, lock. ARGV: max_failures, window_ms, lockout_ms. Returns 1 when it locked.
const RECORD_FAILURE: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

static RECORD: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(RECORD_FAILURE));

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

    fn keys(&self, redis: &Redis, key: &str) -> (String, String) {
        (
            redis.key(&format!("login:{}:{key}:failures", self.kind)),
            redis.key(&format!("login:{}:{key}:lock", self.kind)),
        )
    }

    /// 429 while `key` is locked out.
    pub async fn check(&self, key: &str, now: Instant) -> Result<(), AppError> {
        let wait = match &self.backend {
            Backend::Memory(t) => t.check(key, now).err(),
            Backend::Redis(r) => {
                let (_, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let ttl: ::redis::RedisResult<i64> =
                    ::redis::cmd("PTTL").arg(&lock).query_async(&mut conn).await;
                match r.observe("login_throttle", ttl) {
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

    /// Counts a failure (errors are logged and counted, never shown to the user).
    pub async fn record_failure(&self, key: &str, now: Instant) {
        match &self.backend {
            Backend::Memory(t) => t.record_failure(key, now),
            Backend::Redis(r) => {
                let (count, lock) = self.keys(r, key);
                let mut conn = r.conn();
                let result: ::redis::RedisResult<i64> = RECORD
                    .key(count)
                    .key(lock)
                    .arg(self.cfg.max_failures.max(1))
                    .arg(self.cfg.window.as_millis().max(1) as u64)
                    .arg(self.cfg.lockout.as_millis().max(1) as u64)
                    .invoke_async(&mut conn)
                    .await;
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
        t.record_failure("alice", now).await;
        assert!(t.check("alice", now).await.is_ok());
        t.record_failure("alice", now).await;
        let err = t.check("alice", now).await.unwrap_err();
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
        assert!(t.check("alice", now).await.is_ok());
    }
}
