//! Sessions in Redis, shared by every instance, and how any session-store failure becomes a
//! 503 JSON answer instead of the session layer's bare 500.
//!
//! [`RedisSessionStore`] keeps one key per session, named by the SHA-256 of the session id
//! (like the file store's file names: a key listing or `MONITOR` output is no session
//! cookie), expiring with the session. No cache sits in front of it, so a logout on one
//! instance ends the session on all of them at once.
//!
//! A store failure on *load* reaches the handler as a `tower_sessions` error, which
//! [`AppError`](crate::error::AppError) already answers with 503. A failure on *save* happens
//! inside the session layer after the handler, which answers an empty 500. [`ObservedStore`]
//! wraps every store, counts failures in the metrics and flags the request ([`watch_failures`]);
//! a middleware outside the session layer (`crate::http::middleware::sessions`) turns a
//! flagged 500 into the same 503 JSON a load failure gets.

use std::cell::Cell;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::auth::session::LoginCache;
use crate::metrics::Metrics;
use crate::redis::Redis;

/// What is stored under a session's key (the id is the key, hashed).
#[derive(Serialize, Deserialize)]
struct Stored {
    data: std::collections::HashMap<String, serde_json::Value>,
    expires_unix: i64,
    expires_nanos: u32,
}

/// A [`SessionStore`] in the shared Redis.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: Redis,
}

impl RedisSessionStore {
    /// Sessions under `<prefix>session:<sha256(id)>`.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn key(&self, id: &Id) -> String {
        let digest = Sha256::digest(id.to_string().as_bytes());
        self.redis.key(&format!("session:{}", hex::encode(digest)))
    }

    /// `SET key value PX ttl [NX]`; `Ok(false)` when NX found the key taken.
    async fn set(&self, record: &Record, only_new: bool) -> session_store::Result<bool> {
        let ttl_ms = (record.expiry_date - OffsetDateTime::now_utc()).whole_milliseconds();
        if ttl_ms <= 0 {
            // Already expired: storing it would only resurrect it until Redis drops it.
            self.delete(&record.id).await?;
            return Ok(true);
        }
        let value = serde_json::to_string(&Stored {
            data: record.data.clone(),
            expires_unix: record.expiry_date.unix_timestamp(),
            expires_nanos: record.expiry_date.nanosecond(),
        })
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(&record.id))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms as u64);
        if only_new {
            cmd.arg("NX");
        }
        let mut conn = self.redis.conn();
        let reply: ::redis::RedisResult<Option<String>> = cmd.query_async(&mut conn).await;
        let reply = self.redis.observe("session", reply).map_err(backend)?;
        Ok(reply.is_some())
    }
}

fn backend(e: crate::redis::RedisFailure) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Collision mitigation as the trait asks: a fresh id until SET NX succeeds.
        while !self.set(record, true).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.set(record, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut conn = self.redis.conn();
        let reply: ::redis::RedisResult<Option<String>> = ::redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await;
        let Some(text) = self.redis.observe("session", reply).map_err(backend)? else {
            return Ok(None);
        };
        // Unreadable contents (another version's format) read as "no session": log in again.
        let Ok(stored) = serde_json::from_str::<Stored>(&text) else {
            tracing::warn!("unreadable session record in redis; treating it as logged out");
            return Ok(None);
        };
        let nanos =
            i128::from(stored.expires_unix) * 1_000_000_000 + i128::from(stored.expires_nanos);
        let Ok(expiry_date) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            return Ok(None);
        };
        Ok((expiry_date > OffsetDateTime::now_utc()).then_some(Record {
            id: *id,
            data: stored.data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut conn = self.redis.conn();
        let reply: ::redis::RedisResult<i64> = ::redis::cmd("DEL")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await;
        self.redis
            .observe("session", reply)
            .map(|_| ())
            .map_err(backend)
    }
}

tokio::task_local! {
    /// Set when a session-store call failed while serving this request.
    static STORE_FAILED: Cell<bool>;
}

/// Wraps a store: counts failures, flags the request for [`watch_failures`], and makes the
/// decoded-login cache forget every session the store writes or deletes.
#[derive(Debug, Clone)]
pub struct ObservedStore {
    inner: Arc<dyn SessionStore>,
    metrics: Metrics,
    logins: Option<Arc<LoginCache>>,
}

impl ObservedStore {
    /// Observes `inner`; `logins` is the cache of its decoded logins, if any.
    pub fn new(
        inner: Arc<dyn SessionStore>,
        metrics: Metrics,
        logins: Option<Arc<LoginCache>>,
    ) -> Self {
        Self {
            inner,
            metrics,
            logins,
        }
    }

    fn forget(&self, id: &Id) {
        if let Some(logins) = &self.logins {
            logins.forget(id);
        }
    }

    fn seen<T>(&self, result: session_store::Result<T>) -> session_store::Result<T> {
        if let Err(e) = &result {
            self.metrics.session_store_error();
            let _ = STORE_FAILED.try_with(|flag| flag.set(true));
            tracing::debug!(error = %e, "session store failed");
        }
        result
    }
}

#[async_trait]
impl SessionStore for ObservedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let result = self.inner.create(record).await;
        self.forget(&record.id);
        self.seen(result)
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.forget(&record.id);
        let result = self.inner.save(record).await;
        self.forget(&record.id);
        self.seen(result)
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let result = self.inner.load(id).await;
        self.seen(result)
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.forget(id);
        let result = self.inner.delete(id).await;
        self.forget(id);
        self.seen(result)
    }
}

/// Runs `request` (a whole request, session layer included) and says whether any session
/// store call failed while serving it.
pub async fn watch_failures<F: std::future::Future>(request: F) -> (bool, F::Output) {
    STORE_FAILED
        .scope(Cell::new(false), async {
            let output = request.await;
            (STORE_FAILED.with(Cell::get), output)
        })
        .await
}
