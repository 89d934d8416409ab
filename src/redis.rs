//! The shared Redis (or Valkey) connection: sessions and rate limits of every instance live
//! there, so N instances behind a load balancer act as one.
//!
//! One server, a master found through Redis Sentinel, or a Redis Cluster ([`config`] reads
//! which from `redis.url`), plain or TLS, with an ACL user and the password from the
//! environment. One multiplexed connection per instance ([`link`]), created lazily so the BFF
//! starts even while Redis is down, and reconnected on its own after an outage or a failover.
//!
//! The key layout is the same on all three: keys that one command or script reads together
//! share a hash tag ([`tag`]), so a Cluster keeps them in one slot.
//! Every operation has a short timeout: when Redis is gone, requests fail fast (503 for
//! sessions, open or closed for limits) instead of piling up. Failures are counted in
//! `tbff_redis_errors_total{op}`, and the transitions (down, back up) are logged once each
//! rather than once per request.
//!
//! There is deliberately no in-process cache in front of Redis: a logout on one instance must
//! end the session on all of them at once.

mod config;
pub mod link;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use config::{RedisConfig, RedisSettings, Topology, validate};
pub use link::Conn;

use crate::metrics::Metrics;

/// What to do when the shared store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Let requests through (and count `tbff_redis_errors_total`).
    #[default]
    Open,
    /// Refuse with 503.
    Closed,
}

struct Inner {
    conn: Conn,
    prefix: String,
    addr: String,
    metrics: Metrics,
    /// Whether the last operation succeeded; only transitions are logged.
    healthy: AtomicBool,
}

/// A handle on the shared Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("addr", &self.0.addr).finish()
    }
}

/// A failed Redis operation (already logged and counted).
#[derive(Debug, thiserror::Error)]
#[error("Redis at {addr} failed during {op}: {source}")]
pub struct RedisFailure {
    /// Host:port.
    pub addr: String,
    /// What was being done.
    pub op: &'static str,
    /// The client's error.
    #[source]
    pub source: ::redis::RedisError,
}

impl Redis {
    /// Prepares the connection; nothing is sent until the first operation. Needs a Tokio
    /// runtime (the manager spawns its reconnect task).
    pub fn new(settings: &RedisSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let conn = link::open(settings)
            .map_err(|e| anyhow::anyhow!("redis.url {}: {e}", settings.display_addr()))?;
        // Presumed up until an operation fails, like `healthy` below.
        metrics.redis_ok();
        Ok(Self(Arc::new(Inner {
            conn,
            prefix: settings.key_prefix.clone(),
            addr: settings.display_addr(),
            metrics,
            healthy: AtomicBool::new(true),
        })))
    }

    /// A connection handle for one operation (a clone of the multiplexed connection).
    pub fn conn(&self) -> Conn {
        self.0.conn.clone()
    }

    /// `<prefix><rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.0.prefix)
    }

    /// With Sentinel, the master's `host:port` as last named by the sentinels.
    pub fn sentinel_master(&self) -> Option<String> {
        match &self.0.conn {
            Conn::Sentinel(link) => link.master_addr(),
            _ => None,
        }
    }

    /// Host:port (or the sentinels, or the cluster's seed nodes), for logs and readiness.
    pub fn addr(&self) -> &str {
        &self.0.addr
    }

    /// Counts and logs the outcome of an operation named `op`.
    pub fn observe<T>(
        &self,
        op: &'static str,
        result: ::redis::RedisResult<T>,
    ) -> Result<T, RedisFailure> {
        match result {
            Ok(v) => {
                self.0.metrics.redis_ok();
                if !self.0.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(redis = %self.0.addr, "redis reachable again");
                }
                Ok(v)
            }
            Err(source) => {
                self.0.metrics.redis_error(op);
                if self.0.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(redis = %self.0.addr, op, error = %source, "redis unavailable");
                } else {
                    tracing::debug!(redis = %self.0.addr, op, error = %source, "redis still unavailable");
                }
                Err(RedisFailure {
                    addr: self.0.addr.clone(),
                    op,
                    source,
                })
            }
        }
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> Result<(), RedisFailure> {
        let mut conn = self.conn();
        let result: ::redis::RedisResult<String> =
            ::redis::cmd("PING").query_async(&mut conn).await;
        self.observe("ping", result).map(|_| ())
    }
}

/// `{text}` as a Redis hash tag: keys that one command or script uses together carry the same
/// tag, so a Cluster stores them in one slot (Cluster hashes only what is between the first
/// `{` and the next `}`). Braces inside `text` are replaced so the tag always ends where it
/// should, and an empty `text` (an empty tag would hash the whole key) becomes `_`. The
/// replacement only chooses the slot: the rest of the key keeps `text` as it is.
pub fn tag(text: &str) -> String {
    if text.is_empty() {
        return "{_}".into();
    }
    let inner: String = text
        .chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            c => c,
        })
        .collect();
    format!("{{{inner}}}")
}

#[cfg(test)]
mod tests {
    use super::tag;

    /// What Cluster hashes to pick a key's slot: the text between the first `{` and the next
    /// `}` when that is not empty, else the whole key.
    fn hashed(key: &str) -> &str {
        match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        }
    }

    #[test]
    fn keys_with_one_tag_share_a_slot_whatever_the_text() {
        for text in ["acme", "", "}", "{", "a}b", "{x}", "ünï"] {
            let t = tag(text);
            let (a, b) = (
                format!("tbff:rl:{t}:user:1"),
                format!("tbff:rl:{t}:tenant:{text}"),
            );
            assert_eq!(hashed(&a), hashed(&b), "{a} / {b}");
        }
        assert_ne!(
            hashed(&tag("acme")),
            hashed(&tag("globex")),
            "tenants spread out"
        );
    }
}
