//! The local endpoint's database: a project's data sources (the demo's, generated from a
//! seed, or a folder's fixtures), or a SQLite file from `--data`.
//!
//! The data lives in a shared-cache in-memory SQLite database so that a small pool of
//! read-only connections can query it at once. Every connection has the `ch_*` functions
//! the ClickHouse translation calls, and the database carries the translator (with its
//! catalog and cache) so pipes and `/v0/sql` translate against the same schema.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::clickhouse::catalog::Catalog;
use super::clickhouse::translate::ident;
use super::clickhouse::{Translator, sqlite};
use super::pipes::PipeLoadError;
use super::project::datasource::Datasource;
pub use super::project::demo::{DEMO_ORGS, DemoData};
use super::project::ingest::{self, Appended};
use super::project::materialize::{self, Materialization};
use super::project::{Project, fixtures};
use super::query::QueryLimits;

/// A fixed pool of read-only connections to one database, and its one writer.
pub struct Database {
    /// Kept open so an in-memory database lives as long as the endpoint; the only connection
    /// that writes (appends, see [`Database::write`]).
    owner: Mutex<Connection>,
    /// The project's data sources (empty for `--data`): what appends may write to.
    pub datasources: Vec<Datasource>,
    /// The project's materialized views, run on every append to their source.
    pub views: Vec<Materialization>,
    pool: Mutex<Vec<Connection>>,
    available: tokio::sync::Semaphore,
    /// ClickHouse SQL to SQLite, against this database's schema, cached per query text.
    pub translator: Translator,
}

/// What a database serves besides its rows: the translator over its schema, and the
/// project's data sources and materializations.
struct Data {
    translator: Translator,
    datasources: Vec<Datasource>,
    views: Vec<Materialization>,
}

/// A connection borrowed from the pool; returned on drop.
pub struct PooledConnection {
    db: Arc<Database>,
    conn: Option<Connection>,
}

impl std::ops::Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.pool.lock().expect("pool lock").push(conn);
            self.db.available.add_permits(1);
        }
    }
}

const POOL_SIZE: usize = 4;

impl Database {
    /// Generates the demo dataset in memory.
    pub fn generate(demo: &DemoData) -> rusqlite::Result<Arc<Self>> {
        Self::from_project(&Project::embedded_demo(), demo).map(|(db, _)| db)
    }

    /// Builds a project's tables in memory and fills them: the project's fixtures, or the
    /// demo's generated rows when it is the demo's shape without fixtures. Fixtures that do
    /// not load are returned as problems; the other tables still serve.
    pub fn from_project(
        project: &Project,
        demo: &DemoData,
    ) -> rusqlite::Result<(Arc<Self>, Vec<PipeLoadError>)> {
        let uri = format!(
            "file:tbdemo-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut owner = Connection::open_with_flags(&uri, flags)?;
        let mut catalog = Catalog::default();
        for ds in &project.datasources {
            let columns: Vec<String> = ds
                .columns
                .iter()
                .map(|c| {
                    let null = if c.ty.is_nullable() { "" } else { " NOT NULL" };
                    format!("{} {}{null}", ident(&c.name), c.ty.sqlite_decl())
                })
                .collect();
            owner.execute_batch(&format!(
                "CREATE TABLE {} ({})",
                ident(&ds.name),
                columns.join(", ")
            ))?;
            if !ds.sorting_key.is_empty() {
                let keys: Vec<String> = ds.sorting_key.iter().map(|k| ident(k)).collect();
                owner.execute_batch(&format!(
                    "CREATE INDEX {} ON {} ({})",
                    ident(&format!("{}_sorting_key", ds.name)),
                    ident(&ds.name),
                    keys.join(", ")
                ))?;
            }
            catalog.insert(&ds.name, ds.columns.clone());
            if ds.engine != super::project::engines::Engine::MergeTree {
                catalog.set_merging(&ds.name);
            }
        }
        let translator = Translator::new(Arc::new(catalog));
        // The writer runs materializations and merges, which call the `ch_*` functions.
        sqlite::register(&owner)?;
        let mut problems = Vec::new();
        let mut views = Vec::new();
        for (path, contents) in materialize::split(&project.pipes).0 {
            match materialize::load(path, contents, &project.datasources, &translator) {
                Ok(view) => views.push(view),
                Err(problem) => problems.push(problem),
            }
        }
        if project.wants_demo_rows() {
            super::project::demo::generate(&mut owner, demo)?;
        }
        for (name, path, fixture) in &project.fixtures {
            let Some(ds) = project.datasources.iter().find(|d| d.name == *name) else {
                problems.push(PipeLoadError {
                    file: path.clone(),
                    line: 0,
                    message: format!("fixture for {name}, but no {name}.datasource declares it"),
                });
                continue;
            };
            let tx = owner.transaction()?;
            let since = materialize::last_rowid(&tx, name)?;
            let loaded = fixtures::load(&tx, ds, fixture).and_then(|_| {
                let limits = QueryLimits::default();
                materialize::after_append(&tx, &project.datasources, &views, name, since, limits)
                    .map_err(|m| (0, m))
            });
            match loaded {
                Ok(()) => tx.commit()?,
                Err((line, message)) => problems.push(PipeLoadError {
                    file: path.clone(),
                    line,
                    message,
                }),
            }
        }
        owner.execute_batch("ANALYZE")?;
        let data = Data {
            translator,
            datasources: project.datasources.clone(),
            views,
        };
        let db = Self::with_readers(owner, &uri, flags, data)?;
        Ok((db, problems))
    }

    /// Opens an existing SQLite file read-only (`--data`). URI names are on so that the
    /// in-memory `tinybird` schema can be attached.
    pub fn open(path: &Path) -> rusqlite::Result<Arc<Self>> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let owner = Connection::open_with_flags(path, flags)?;
        // Fail now, not at the first request, if the file is not a database.
        owner.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let catalog = Catalog::from_sqlite(&owner)?;
        let data = Data {
            translator: Translator::new(Arc::new(catalog)),
            datasources: Vec::new(),
            views: Vec::new(),
        };
        Self::with_readers(owner, &path.to_string_lossy(), flags, data)
    }

    fn with_readers(
        owner: Connection,
        path: &str,
        flags: OpenFlags,
        data: Data,
    ) -> rusqlite::Result<Arc<Self>> {
        let read_flags =
            (flags - OpenFlags::SQLITE_OPEN_READ_WRITE - OpenFlags::SQLITE_OPEN_CREATE)
                | OpenFlags::SQLITE_OPEN_READ_ONLY;
        let mut pool = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let conn = Connection::open_with_flags(path, read_flags)?;
            // Pipes only read; this also stops a template from ever writing.
            conn.pragma_update(None, "query_only", true)?;
            // Readers take no table locks, so an append never makes a query fail with
            // "table is locked" (shared-cache locking); a query running during an append
            // may see part of it, as a ClickHouse read during an insert may.
            conn.pragma_update(None, "read_uncommitted", true)?;
            sqlite::register(&conn)?;
            pool.push(conn);
        }
        Ok(Arc::new(Self {
            owner: Mutex::new(owner),
            datasources: data.datasources,
            views: data.views,
            pool: Mutex::new(pool),
            available: tokio::sync::Semaphore::new(POOL_SIZE),
            translator: data.translator,
        }))
    }

    /// Appends NDJSON rows to the data source `name` (the Events API), then runs the
    /// materializations reading it and merges what they wrote, all in one transaction on the
    /// one writing connection (blocking: call it from `spawn_blocking`).
    pub fn append(&self, name: &str, text: &str, limits: QueryLimits) -> Result<Appended, String> {
        let ds = self
            .datasource(name)
            .ok_or_else(|| format!("no data source {name}"))?;
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        let tx = owner.transaction().map_err(|e| e.to_string())?;
        let since = materialize::last_rowid(&tx, name).map_err(|e| e.to_string())?;
        let done = ingest::append(&tx, ds, text, chrono::Utc::now()).map_err(|e| e.to_string())?;
        materialize::after_append(&tx, &self.datasources, &self.views, name, since, limits)?;
        tx.commit().map_err(|e| e.to_string())?;
        Ok(done)
    }

    /// The data source `name` of the project, if it declares one.
    pub fn datasource(&self, name: &str) -> Option<&Datasource> {
        self.datasources.iter().find(|d| d.name == name)
    }

    /// A free connection without waiting, if there is one (benchmarks and fuzzing, which
    /// have no async runtime).
    pub fn try_acquire(self: &Arc<Self>) -> Option<PooledConnection> {
        self.available.try_acquire().ok()?.forget();
        let conn = self.pool.lock().expect("pool lock").pop();
        Some(PooledConnection {
            db: Arc::clone(self),
            conn,
        })
    }

    /// Runs `setup` on every pooled connection (before serving: all are in the pool).
    pub fn for_each_connection(
        &self,
        setup: impl Fn(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let pool = self.pool.lock().expect("pool lock");
        pool.iter().try_for_each(setup)
    }

    /// Waits for a free connection.
    pub async fn acquire(self: &Arc<Self>) -> PooledConnection {
        self.available
            .acquire()
            .await
            .expect("never closed")
            .forget();
        let conn = self.pool.lock().expect("pool lock").pop();
        PooledConnection {
            db: Arc::clone(self),
            conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Database, sql: &str) -> i64 {
        let conn = db.pool.lock().unwrap().pop().unwrap();
        let n = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        db.pool.lock().unwrap().push(conn);
        n
    }

    #[test]
    fn same_seed_same_rows_and_every_tenant_has_data() {
        let demo = DemoData {
            anchor: chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            ..DemoData::default()
        };
        let a = Database::generate(&demo).unwrap();
        let b = Database::generate(&demo).unwrap();
        let checksum = "SELECT sum(order_id * quantity) + CAST(sum(amount) AS INTEGER) FROM orders";
        assert_eq!(count(&a, checksum), count(&b, checksum));
        assert_eq!(count(&a, "SELECT count(*) FROM orders"), 40_000);
        for (org, _, _) in DEMO_ORGS {
            assert!(
                count(
                    &a,
                    &format!("SELECT count(*) FROM orders WHERE org_id = '{org}'")
                ) > 5_000
            );
        }
        assert_eq!(
            count(&a, "SELECT count(*) FROM orders WHERE day > '2026-01-31'"),
            0
        );
    }

    #[test]
    fn readers_cannot_write() {
        let db = Database::generate(&DemoData {
            orders: 10,
            ..DemoData::default()
        })
        .unwrap();
        let conn = db.pool.lock().unwrap().pop().unwrap();
        assert!(conn.execute("DELETE FROM orders", []).is_err());
    }
}
