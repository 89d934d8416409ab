//! The embedded key store: one SQLite file (WAL, so the CLI can write while a server reads),
//! created mode 0600. One instance per file: several instances need [`super::postgres`].
//!
//! rusqlite is synchronous: each call runs on the blocking pool with the one connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    COLUMNS, Counted, KeyStore, MIGRATIONS_TABLE, Raw, StoreError, Used, json_columns, pending,
};
use crate::keys::record::KeyRecord;
use crate::keys::secret::SecretHash;

/// A SQLite key store.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    /// Where, for messages (`:memory:` for the demo and tests).
    path: PathBuf,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Sqlite {
    /// Opens (creating) the file at `path`; `:memory:` keeps keys in this process only.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = if path == Path::new(":memory:") {
            Connection::open_in_memory()
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
            }
            // Hashes only, but still nobody else's business: 0600 before SQLite opens it.
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(path)
                .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
            Connection::open(path)
        }
        .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .map_err(unavailable)?;
        if path != Path::new(":memory:") {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(unavailable)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }
}

fn raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: row.get(0)?,
        tenant: row.get(1)?,
        name: row.get(2)?,
        secret_sha256: row.get(3)?,
        previous_sha256: row.get(4)?,
        previous_until: row.get(5)?,
        scopes: row.get(6)?,
        attributes: row.get(7)?,
        expires_at: row.get(8)?,
        rps: row.get(9)?,
        quota_requests: row.get(10)?,
        quota_period: row.get(11)?,
        created_at: row.get(12)?,
        created_by: row.get(13)?,
        last_used_at: row.get(14)?,
        revoked_at: row.get(15)?,
        revoked_by: row.get(16)?,
        rolled_at: row.get(17)?,
    })
}

fn get_one(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
        [id],
        raw,
    )
    .optional()
    .map_err(unavailable)?
    .map(Raw::into_record)
    .transpose()
}

fn counted(row: &rusqlite::Row<'_>) -> rusqlite::Result<Counted> {
    Ok(Counted {
        id: row.get(0)?,
        period: row.get(1)?,
        requests: row.get::<_, i64>(2)?.max(0) as u64,
        errors: row.get::<_, i64>(3)?.max(0) as u64,
    })
}

#[async_trait]
impl KeyStore for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        self.run(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            tx.execute_batch(MIGRATIONS_TABLE).map_err(unavailable)?;
            let applied: Vec<i64> = tx
                .prepare("SELECT version FROM tbff_schema_migrations")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(unavailable)?;
            let mut done = Vec::new();
            for (version, name, sql) in pending(&applied)? {
                tx.execute_batch(sql).map_err(unavailable)?;
                tx.execute(
                    "INSERT INTO tbff_schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    params![version, name, chrono::Utc::now().timestamp()],
                )
                .map_err(unavailable)?;
                done.push(*version);
            }
            tx.commit().map_err(unavailable)?;
            Ok(done)
        })
        .await
    }

    async fn insert(&self, key: &KeyRecord, max_active: usize) -> Result<(), StoreError> {
        let key = key.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let active: i64 = tx
                .query_row(
                    "SELECT count(*) FROM api_keys WHERE tenant = ?1 AND revoked_at IS NULL",
                    [&key.tenant],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            if active as usize >= max_active {
                return Err(StoreError::TooManyKeys {
                    tenant: key.tenant.clone(),
                    max: max_active,
                });
            }
            let (scopes, attributes) = json_columns(&key);
            tx.execute(
                &format!(
                    "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, NULL, NULL, NULL)"
                ),
                params![
                    key.id,
                    key.tenant,
                    key.name,
                    key.secret_hash.to_hex(),
                    scopes,
                    attributes,
                    key.expires_at,
                    key.rps.map(i64::from),
                    key.quota.map(|q| q.requests as i64),
                    key.quota.map(|q| q.period.as_str()),
                    key.created_at,
                    key.created_by,
                ],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn| get_one(conn, &id)).await
    }

    async fn get_many(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                out.extend(get_one(conn, id)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        self.run(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM api_keys WHERE ?1 IS NULL OR tenant = ?1 ORDER BY created_at DESC, id"
            );
            let rows: Vec<Raw> = conn
                .prepare(&sql)
                .and_then(|mut s| s.query_map([&tenant], raw)?.collect())
                .map_err(unavailable)?;
            rows.into_iter().map(Raw::into_record).collect()
        })
        .await
    }

    async fn revoke(&self, id: &str, at: i64, by: &str) -> Result<Option<KeyRecord>, StoreError> {
        let (id, by) = (id.to_owned(), by.to_owned());
        self.run(move |conn| {
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at, by],
            )
            .map_err(unavailable)?;
            get_one(conn, &id)
        })
        .await
    }

    async fn roll(
        &self,
        id: &str,
        secret: SecretHash,
        previous_until: i64,
        at: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE api_keys SET previous_sha256 = secret_sha256, previous_until = ?3, \
                     secret_sha256 = ?2, rolled_at = ?4 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, secret.to_hex(), previous_until, at],
                )
                .map_err(unavailable)?;
            if changed == 0 {
                return Ok(None);
            }
            get_one(conn, &id)
        })
        .await
    }

    async fn record(&self, used: &[Used]) -> Result<Vec<Counted>, StoreError> {
        let used = used.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let mut out = Vec::new();
            for u in &used {
                tx.execute(
                    "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
                    params![u.id, u.last_used_at],
                )
                .map_err(unavailable)?;
                for period in &u.periods {
                    let row = tx
                        .query_row(
                            "INSERT INTO api_key_usage (key_id, period, requests, errors) VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT (key_id, period) DO UPDATE SET requests = requests + excluded.requests, \
                             errors = errors + excluded.errors RETURNING key_id, period, requests, errors",
                            params![u.id, period, u.requests as i64, u.errors as i64],
                            counted,
                        )
                        .optional()
                        .map_err(unavailable)?;
                    out.extend(row);
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(out)
        })
        .await
    }

    async fn counts(&self, ids: &[String], periods: &[String]) -> Result<Vec<Counted>, StoreError> {
        let (ids, periods) = (ids.to_vec(), periods.to_vec());
        self.run(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key_id, period, requests, errors FROM api_key_usage WHERE key_id = ?1 AND period = ?2",
                )
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for id in &ids {
                for period in &periods {
                    out.extend(
                        stmt.query_row(params![id, period], counted)
                            .optional()
                            .map_err(unavailable)?,
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
                .map_err(unavailable)
        })
        .await
    }
}
