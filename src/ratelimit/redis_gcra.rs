//! GCRA in Redis: one `EVALSHA` per check, atomic across every instance.
//!
//! The script is [`crate::tinybird::gcra::decide`] and [`crate::tinybird::gcra::combine`] in Lua, with Redis's own
//! clock (`TIME`), so instances with skewed clocks still share one schedule. Every key is
//! checked first and written only if all allow. Keys expire when their bucket is full again,
//! so idle users cost no memory. `redis::Script` sends `EVALSHA` and falls back to loading the
//! script on `NOSCRIPT` (after a Redis restart, for instance).

use std::sync::LazyLock;

use crate::redis::{Redis, RedisFailure};
use crate::tinybird::gcra::{Decision, Outcome};

/// KEYS: the buckets. ARGV: `interval_us, burst` per key. Returns
/// `{allowed, binding (1-based), remaining, reset_us, retry_after_us}`.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local deny_i, deny_retry, deny_reset = 0, -1, 0
local best_i, best_rem, best_reset = 0, -1, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    if allow_at - now > deny_retry then
      deny_i, deny_retry, deny_reset = i, allow_at - now, tat - now
    end
  else
    local rem = math.floor((now - allow_at) / interval)
    if best_rem < 0 or rem < best_rem then
      best_i, best_rem, best_reset = i, rem, new_tat - now
    end
  end
  tats[i] = new_tat
end
if deny_i > 0 then
  return {0, deny_i, 0, deny_reset, deny_retry}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
end
return {1, best_i, best_rem, best_reset, 0}
"#;

static GCRA: LazyLock<::redis::Script> = LazyLock::new(|| ::redis::Script::new(SCRIPT));

/// Checks `(key, interval_us, burst)` buckets together; keys get the Redis key prefix here.
pub async fn check(redis: &Redis, keys: &[(String, u64, u32)]) -> Result<Outcome, RedisFailure> {
    let mut invocation = GCRA.prepare_invoke();
    for (key, _, _) in keys {
        invocation.key(redis.key(key));
    }
    for (_, interval, burst) in keys {
        invocation.arg(*interval).arg(*burst);
    }
    let mut conn = redis.conn();
    let reply: ::redis::RedisResult<Vec<i64>> = invocation.invoke_async(&mut conn).await;
    let reply = redis.observe("ratelimit", reply)?;
    let [allowed, binding, remaining, reset, retry] = reply[..] else {
        return Err(RedisFailure {
            addr: redis.addr().to_owned(),
            op: "ratelimit",
            source: ::redis::RedisError::from((
                ::redis::ErrorKind::Parse,
                "unexpected reply from the rate-limit script",
            )),
        });
    };
    Ok(Outcome {
        allowed: allowed == 1,
        binding: (binding.max(1) - 1) as usize,
        decision: Decision {
            allowed: allowed == 1,
            new_tat: 0,
            remaining: remaining.max(0) as u32,
            reset_us: reset.max(0) as u64,
            retry_after_us: retry.max(0) as u64,
        },
    })
}
