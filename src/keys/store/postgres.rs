//! The shared key store: PostgreSQL, for several instances (tokio-postgres, a light client
//! with no ORM). A few connections, each used by one call at a time and reopened when it
//! breaks; TLS through rustls (the platform's roots) unless the URL says `sslmode=disable`.
//! Migrations and key creation take a transaction-scoped advisory lock, so instances starting
//! together migrate once, and two creations cannot both pass the per-tenant limit.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};

use super::{
    COLUMNS, Counted, KeyStore, MIGRATIONS_TABLE, Raw, StoreError, Used, json_columns, pending,
};
use crate::keys::record::KeyRecord;
use crate::keys::secret::SecretHash;

/// The advisory lock migrations hold (any constant unlikely to clash with an application's).
const MIGRATION_LOCK: i64 = 0x7462_6666_6b65_7973; // "tbffkeys"

/// A PostgreSQL key store.
pub struct Postgres {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    conns: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password: only where it points.
        f.debug_struct("Postgres")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish()
    }
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    // tokio-postgres says "db error" and keeps the server's words in the source.
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    StoreError::Unavailable(text)
}

impl Postgres {
    /// A store for `url` (`postgres://user:password@host:5432/db`), with `pool` connections
    /// and `timeout` per call (connecting included). Nothing is opened until first use.
    pub fn new(url: &str, pool: usize, timeout: Duration) -> Result<Self, String> {
        let mut config = Config::from_str(url).map_err(|e| {
            format!("not a PostgreSQL URL ({e}); write postgres://user:password@host:5432/dbname")
        })?;
        config.connect_timeout(timeout);
        config.application_name("tinybird-bff");
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?;
                let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)
                    .map_err(|e| e.to_string())?
                    .with_no_client_auth();
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        };
        Ok(Self {
            config,
            tls,
            conns: (0..pool.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, task) = match &self.tls {
            None => {
                let (c, conn) = self.config.connect(NoTls).await.map_err(unavailable)?;
                (c, tokio::spawn(conn))
            }
            Some(tls) => {
                let (c, conn) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(unavailable)?;
                (c, tokio::spawn(conn))
            }
        };
        // The connection task ends with the client; its error shows as a closed client.
        drop(task);
        Ok(client)
    }

    /// A free connection (the next one in turn when all are busy), opened if needed.
    async fn conn(&self) -> Result<MutexGuard<'_, Option<Client>>, StoreError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let free = (0..n).find_map(|i| self.conns[(start + i) % n].try_lock().ok());
        let mut guard = match free {
            Some(g) => g,
            None => self.conns[start % n].lock().await,
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect().await?);
        }
        Ok(guard)
    }

    /// `work` (which takes a connection with [`Self::conn`]), within the timeout.
    async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ))
            })?
    }

    /// The rows of one statement, on a pooled connection, within the timeout.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.within(async {
            let mut guard = self.conn().await?;
            let client = guard.as_mut().expect("opened by conn()");
            client.query(sql, params).await.map_err(unavailable)
        })
        .await
    }
}

fn raw(row: &Row) -> Result<Raw, StoreError> {
    let read = || -> Result<Raw, tokio_postgres::Error> {
        Ok(Raw {
            id: row.try_get(0)?,
            tenant: row.try_get(1)?,
            name: row.try_get(2)?,
            secret_sha256: row.try_get(3)?,
            previous_sha256: row.try_get(4)?,
            previous_until: row.try_get(5)?,
            scopes: row.try_get(6)?,
            attributes: row.try_get(7)?,
            expires_at: row.try_get(8)?,
            rps: row.try_get(9)?,
            quota_requests: row.try_get(10)?,
            quota_period: row.try_get(11)?,
            created_at: row.try_get(12)?,
            created_by: row.try_get(13)?,
            last_used_at: row.try_get(14)?,
            revoked_at: row.try_get(15)?,
            revoked_by: row.try_get(16)?,
            rolled_at: row.try_get(17)?,
        })
    };
    read().map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn records(rows: &[Row]) -> Result<Vec<KeyRecord>, StoreError> {
    rows.iter().map(|r| raw(r)?.into_record()).collect()
}

fn counted(row: &Row) -> Result<Counted, StoreError> {
    let read = || -> Result<Counted, tokio_postgres::Error> {
        Ok(Counted {
            id: row.try_get(0)?,
            period: row.try_get(1)?,
            requests: row.try_get::<_, i64>(2)?.max(0) as u64,
            errors: row.try_get::<_, i64>(3)?.max(0) as u64,
        })
    };
    read().map_err(|e| StoreError::Corrupt(e.to_string()))
}

const GET: &str = "SELECT id, tenant, name, secret_sha256, previous_sha256, previous_until, \
    scopes, attributes, expires_at, rps, quota_requests, quota_period, created_at, created_by, \
    last_used_at, revoked_at, revoked_by, rolled_at FROM api_keys";

#[async_trait]
impl KeyStore for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        self.within(async {
            let mut guard = self.conn().await?;
            let client = guard.as_mut().expect("opened by conn()");
            let tx = client.transaction().await.map_err(unavailable)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(unavailable)?;
            tx.batch_execute(MIGRATIONS_TABLE)
                .await
                .map_err(unavailable)?;
            let applied: Vec<i64> = tx
                .query("SELECT version FROM tbff_schema_migrations", &[])
                .await
                .map_err(unavailable)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut done = Vec::new();
            for (version, name, sql) in pending(&applied)? {
                tx.batch_execute(sql).await.map_err(unavailable)?;
                tx.execute(
                    "INSERT INTO tbff_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[version, name, &chrono::Utc::now().timestamp()],
                )
                .await
                .map_err(unavailable)?;
                done.push(*version);
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(done)
        })
        .await
    }

    async fn insert(&self, key: &KeyRecord, max_active: usize) -> Result<(), StoreError> {
        let (scopes, attributes) = json_columns(key);
        self.within(async {
            let mut guard = self.conn().await?;
            let client = guard.as_mut().expect("opened by conn()");
            let tx = client.transaction().await.map_err(unavailable)?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key.tenant])
                .await
                .map_err(unavailable)?;
            let active: i64 = tx
                .query_one(
                    "SELECT count(*) FROM api_keys WHERE tenant = $1 AND revoked_at IS NULL",
                    &[&key.tenant],
                )
                .await
                .map_err(unavailable)?
                .get(0);
            if active as usize >= max_active {
                return Err(StoreError::TooManyKeys {
                    tenant: key.tenant.clone(),
                    max: max_active,
                });
            }
            tx.execute(
                &format!(
                    "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, NULL, NULL)"
                ),
                &[
                    &key.id,
                    &key.tenant,
                    &key.name,
                    &key.secret_hash.to_hex(),
                    &scopes,
                    &attributes,
                    &key.expires_at,
                    &key.rps.map(i64::from),
                    &key.quota.map(|q| q.requests as i64),
                    &key.quota.map(|q| q.period.as_str()),
                    &key.created_at,
                    &key.created_by,
                ],
            )
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let rows = self.query(&format!("{GET} WHERE id = $1"), &[&id]).await?;
        Ok(records(&rows)?.into_iter().next())
    }

    async fn get_many(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .query(&format!("{GET} WHERE id = ANY($1)"), &[&ids])
            .await?;
        records(&rows)
    }

    async fn list(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "{GET} WHERE $1::TEXT IS NULL OR tenant = $1 ORDER BY created_at DESC, id"
                ),
                &[&tenant],
            )
            .await?;
        records(&rows)
    }

    async fn revoke(&self, id: &str, at: i64, by: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.within(async {
            let mut guard = self.conn().await?;
            let client = guard.as_mut().expect("opened by conn()");
            client
                .execute(
                    "UPDATE api_keys SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &at, &by],
                )
                .await
                .map_err(unavailable)?;
            let rows = client
                .query(&format!("{GET} WHERE id = $1"), &[&id])
                .await
                .map_err(unavailable)?;
            Ok(records(&rows)?.into_iter().next())
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
        let rows = self
            .query(
                &format!(
                    "UPDATE api_keys SET previous_sha256 = secret_sha256, previous_until = $3, \
                     secret_sha256 = $2, rolled_at = $4 WHERE id = $1 AND revoked_at IS NULL \
                     RETURNING {COLUMNS}"
                ),
                &[&id, &secret.to_hex(), &previous_until, &at],
            )
            .await?;
        Ok(records(&rows)?.into_iter().next())
    }

    async fn record(&self, used: &[Used]) -> Result<Vec<Counted>, StoreError> {
        self.within(async {
            let mut guard = self.conn().await?;
            let client = guard.as_mut().expect("opened by conn()");
            let tx = client.transaction().await.map_err(unavailable)?;
            let mut out = Vec::new();
            for u in used {
                tx.execute(
                    "UPDATE api_keys SET last_used_at = GREATEST(coalesce(last_used_at, 0), $2) WHERE id = $1",
                    &[&u.id, &u.last_used_at],
                )
                .await
                .map_err(unavailable)?;
                for period in &u.periods {
                    let rows = tx
                        .query(
                            "INSERT INTO api_key_usage (key_id, period, requests, errors) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (key_id, period) DO UPDATE SET requests = api_key_usage.requests + EXCLUDED.requests, \
                             errors = api_key_usage.errors + EXCLUDED.errors RETURNING key_id, period, requests, errors",
                            &[&u.id, period, &(u.requests as i64), &(u.errors as i64)],
                        )
                        .await
                        .map_err(unavailable)?;
                    for row in &rows {
                        out.push(counted(row)?);
                    }
                }
            }
            tx.commit().await.map_err(unavailable)?;
            Ok(out)
        })
        .await
    }

    async fn counts(&self, ids: &[String], periods: &[String]) -> Result<Vec<Counted>, StoreError> {
        let rows = self
            .query(
                "SELECT key_id, period, requests, errors FROM api_key_usage WHERE key_id = ANY($1) AND period = ANY($2)",
                &[&ids, &periods],
            )
            .await?;
        rows.iter().map(counted).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }
}
