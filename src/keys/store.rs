//! Where keys live: a real database, because keys are durable data (never only in Redis or in
//! memory). [`sqlite`] (an embedded file, the default, for one instance) and [`postgres`]
//! (shared by several instances) implement [`KeyStore`] over the same schema; the
//! [`MIGRATIONS`] are applied at start, each once, recorded in `tbff_schema_migrations`.
//!
//! Times are Unix seconds (`BIGINT`), hashes hex `TEXT`, scopes and attributes JSON `TEXT`: one
//! schema both engines read the same way.

pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::record::{KeyRecord, KeyScopes, Period, Quota};
use super::secret::SecretHash;

/// Schema changes, in order; a version is never edited once released, only added.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "api keys and their usage counters",
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        previous_sha256 TEXT,
        previous_until BIGINT,
        scopes TEXT NOT NULL,
        attributes TEXT NOT NULL,
        expires_at BIGINT,
        rps BIGINT,
        quota_requests BIGINT,
        quota_period TEXT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT,
        revoked_by TEXT,
        rolled_at BIGINT
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
    CREATE TABLE api_key_usage (
        key_id TEXT NOT NULL REFERENCES api_keys (id),
        period TEXT NOT NULL,
        requests BIGINT NOT NULL DEFAULT 0,
        errors BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (key_id, period)
    );",
)];

/// The table that records which migrations ran.
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS tbff_schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The columns of `api_keys`, in [`Raw`]'s order.
pub const COLUMNS: &str = "id, tenant, name, secret_sha256, previous_sha256, previous_until, \
    scopes, attributes, expires_at, rps, quota_requests, quota_period, created_at, created_by, \
    last_used_at, revoked_at, revoked_by, rolled_at";

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed; the message is for operators (no secrets).
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// A row the store cannot read back (edited by hand, or a newer schema).
    #[error("the key store holds a row it cannot read: {0}")]
    Corrupt(String),
    /// The tenant already has as many active keys as `keys.max_keys_per_tenant` allows.
    #[error(
        "tenant {tenant} already has {max} active keys (keys.max_keys_per_tenant): revoke one first"
    )]
    TooManyKeys {
        /// The tenant.
        tenant: String,
        /// The limit.
        max: usize,
    },
    /// The database was migrated by a newer binary.
    #[error(
        "the key database is at schema version {found}, newer than this binary knows ({known}): run the newer tinybird-bff"
    )]
    TooNew {
        /// The version found.
        found: i64,
        /// The newest this binary has.
        known: i64,
    },
}

/// What an instance used a key for since it last wrote down: added to the counters of every
/// `periods` (today's and this month's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    /// The key id.
    pub id: String,
    /// The period keys the counts go to (`2026-05-20`, `2026-05`).
    pub periods: Vec<String>,
    /// Requests.
    pub requests: u64,
    /// Of which answered 400 or above.
    pub errors: u64,
    /// The last use (Unix seconds).
    pub last_used_at: i64,
}

/// A key's counters in one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The key id.
    pub id: String,
    /// The period key.
    pub period: String,
    /// Requests.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
}

/// A key store. Every method is one short transaction or statement.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and `check`.
    fn kind(&self) -> &'static str;
    /// Applies the migrations not yet applied; returns their versions.
    async fn migrate(&self) -> Result<Vec<i64>, StoreError>;
    /// Stores a new key, unless its tenant already has `max_active` active keys.
    async fn insert(&self, key: &KeyRecord, max_active: usize) -> Result<(), StoreError>;
    /// One key.
    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// The keys among `ids` that exist.
    async fn get_many(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError>;
    /// A tenant's keys (every tenant's with `None`), newest first.
    async fn list(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError>;
    /// Revokes a key (a revoked key stays revoked as it was); the key after, if it exists.
    async fn revoke(&self, id: &str, at: i64, by: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Gives a key a new secret; the current one keeps working until `previous_until`. Only
    /// an active key rolls: `None` when it does not exist or is revoked.
    async fn roll(
        &self,
        id: &str,
        secret: SecretHash,
        previous_until: i64,
        at: i64,
    ) -> Result<Option<KeyRecord>, StoreError>;
    /// Adds usage (and moves `last_used_at` forward); returns the counters after.
    async fn record(&self, used: &[Used]) -> Result<Vec<Counted>, StoreError>;
    /// The counters of `ids` in `periods` (absent ones are zero and not returned).
    async fn counts(&self, ids: &[String], periods: &[String]) -> Result<Vec<Counted>, StoreError>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// One `api_keys` row as both engines read it, before its JSON and hex are checked.
#[derive(Debug)]
pub struct Raw {
    /// `id`.
    pub id: String,
    /// `tenant`.
    pub tenant: String,
    /// `name`.
    pub name: String,
    /// `secret_sha256`.
    pub secret_sha256: String,
    /// `previous_sha256`.
    pub previous_sha256: Option<String>,
    /// `previous_until`.
    pub previous_until: Option<i64>,
    /// `scopes`.
    pub scopes: String,
    /// `attributes`.
    pub attributes: String,
    /// `expires_at`.
    pub expires_at: Option<i64>,
    /// `rps`.
    pub rps: Option<i64>,
    /// `quota_requests`.
    pub quota_requests: Option<i64>,
    /// `quota_period`.
    pub quota_period: Option<String>,
    /// `created_at`.
    pub created_at: i64,
    /// `created_by`.
    pub created_by: String,
    /// `last_used_at`.
    pub last_used_at: Option<i64>,
    /// `revoked_at`.
    pub revoked_at: Option<i64>,
    /// `revoked_by`.
    pub revoked_by: Option<String>,
    /// `rolled_at`.
    pub rolled_at: Option<i64>,
}

impl Raw {
    /// The record, or why the row is unreadable.
    pub fn into_record(self) -> Result<KeyRecord, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("key {}: {what}", self.id));
        let secret_hash = SecretHash::from_hex(&self.secret_sha256).ok_or_else(|| bad("hash"))?;
        let previous = match (&self.previous_sha256, self.previous_until) {
            (Some(h), Some(until)) => {
                Some((SecretHash::from_hex(h).ok_or_else(|| bad("hash"))?, until))
            }
            _ => None,
        };
        let scopes: KeyScopes = serde_json::from_str(&self.scopes).map_err(|_| bad("scopes"))?;
        let attributes: BTreeMap<String, String> =
            serde_json::from_str(&self.attributes).map_err(|_| bad("attributes"))?;
        let quota = match (self.quota_requests, &self.quota_period) {
            (Some(n), Some(p)) => Some(Quota {
                requests: u64::try_from(n).map_err(|_| bad("quota"))?,
                period: Period::parse(p).ok_or_else(|| bad("quota period"))?,
            }),
            _ => None,
        };
        let rps = self
            .rps
            .map(u32::try_from)
            .transpose()
            .map_err(|_| bad("rps"))?;
        Ok(KeyRecord {
            revoked: self
                .revoked_at
                .map(|at| (at, self.revoked_by.clone().unwrap_or_default())),
            id: self.id,
            tenant: self.tenant,
            name: self.name,
            secret_hash,
            previous,
            scopes,
            attributes,
            expires_at: self.expires_at,
            rps,
            quota,
            created_at: self.created_at,
            created_by: self.created_by,
            last_used_at: self.last_used_at,
            rolled_at: self.rolled_at,
        })
    }
}

/// A record's JSON columns: `(scopes, attributes)`.
pub fn json_columns(key: &KeyRecord) -> (String, String) {
    (
        serde_json::to_string(&key.scopes).expect("strings"),
        serde_json::to_string(&key.attributes).expect("strings"),
    )
}

/// The migrations after `applied` (versions already recorded), or [`StoreError::TooNew`].
pub fn pending(
    applied: &[i64],
) -> Result<Vec<&'static (i64, &'static str, &'static str)>, StoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(&found) = applied.iter().max()
        && found > known
    {
        return Err(StoreError::TooNew { found, known });
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_in_order_and_a_newer_database_is_refused() {
        assert_eq!(pending(&[]).unwrap().len(), MIGRATIONS.len());
        let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(pending(&all).unwrap().is_empty());
        assert!(all.windows(2).all(|w| w[0] < w[1]), "ordered");
        let err = pending(&[999]).unwrap_err().to_string();
        assert!(err.contains("999") && err.contains("newer"), "{err}");
    }
}
