//! Runs one `/v0/sql` statement on a pooled connection, each data source seen only through
//! the token's filter. The enforcement is SQLite's, not string matching: see the parent
//! module doc for the design; this file is its mechanics.
//!
//! Temp objects live on a pooled connection that pipe calls reuse, so a [`Session`] guard
//! wipes the `temp` schema before and after every request (also on error or panic), removes
//! the authorizer, and restores `query_only` and the length limit.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::hooks::{AuthContext, Authorization};
use rusqlite::{Connection, ErrorCode};

use super::policy::{Denial, Mode, Policy};
use super::{SqlAccess, SqlError};
use crate::clickhouse::OutColumn;
use crate::query::{self, QueryError, QueryLimits, QueryOutput};
use crate::template::RenderedSql;

/// Executes `sql` (SQLite SQL) for `access`. Blocking: call from `spawn_blocking`.
pub fn run(
    conn: &Connection,
    sql: &str,
    access: &SqlAccess,
    limits: QueryLimits,
) -> Result<QueryOutput, SqlError> {
    let deadline = Instant::now() + limits.timeout;
    run_typed(conn, sql, None, access, limits, deadline)
}

/// Same, typing the result with the translator's `columns` where known, to end by
/// `deadline` (the request's: its translation counts too).
pub fn run_typed(
    conn: &Connection,
    sql: &str,
    columns: Option<&[OutColumn]>,
    access: &SqlAccess,
    limits: QueryLimits,
    deadline: Instant,
) -> Result<QueryOutput, SqlError> {
    let session = Session::open(conn)?;
    match access {
        SqlAccess::Admin => {
            session.lock()?;
            let denial = session.authorize(Policy::admin());
            check_statement(conn, sql, &denial)?;
            session.execute(sql, columns, (limits, deadline), &denial, "")
        }
        SqlAccess::Filtered(scopes) => {
            let schema = MainSchema::read(conn)?;
            // Scopes for names `main` does not have get no object, so such names stay
            // unknown tables rather than becoming something the user could read.
            let granted: Vec<(&str, Option<&str>)> = scopes
                .iter()
                .filter(|(name, _)| schema.tables.contains(name.as_str()))
                .map(|(name, filter)| (name.as_str(), filter.as_deref()))
                .collect();

            let names: Vec<&str> = granted.iter().map(|(name, _)| *name).collect();
            // Service data sources (`tinybird.pipe_stats_rt`) are read in place, unfiltered:
            // only a static token's scopes name them (see `SqlAccess::for_caller`).
            let service: Vec<&str> = scopes
                .keys()
                .filter_map(|name| name.strip_prefix("tinybird."))
                .collect();
            check_pass(&session, sql, &schema, &names, &service)?;
            session.reset()?;
            let secret = format!("tbrls_{}", uuid::Uuid::new_v4().simple());
            let filter_views = create_filter_views(&session, &granted, &secret)?;
            session.lock()?;
            let denial = session.authorize(
                Policy::new(
                    Mode::Run,
                    names.iter().copied(),
                    filter_views.iter().map(String::as_str),
                )
                .with_service(service.iter().copied()),
            );
            session.execute(sql, columns, (limits, deadline), &denial, &secret)
        }
    }
}

/// Pass 1: empty stand-ins with the data sources' names and columns, and a policy that
/// refuses every read of `main`. Then the bytecode must open no `main` b-tree: that catches
/// what the authorizer is never asked about (the columns of `USING` joins).
fn check_pass(
    session: &Session<'_>,
    sql: &str,
    schema: &MainSchema,
    names: &[&str],
    service: &[&str],
) -> Result<(), SqlError> {
    for name in names {
        session.ddl(&format!(
            "CREATE TEMP TABLE {0} AS SELECT * FROM main.{0} WHERE 0",
            ident(name)
        ))?;
    }
    let policy =
        Policy::new(Mode::Check, names.iter().copied(), []).with_service(service.iter().copied());
    let denial = session.authorize(policy);
    check_statement(session.conn, sql, &denial)?;
    let service_db = (!service.is_empty()).then_some(schema.service_db).flatten();
    check_bytecode(session.conn, sql, schema, names, service_db, &denial)
}

/// Pass 2's views: the public `orders` reads the secret-named view that alone may read
/// `main.orders`, so a CTE or view the user names `orders` cannot pass for it. Returns the
/// secret views' names.
fn create_filter_views(
    session: &Session<'_>,
    granted: &[(&str, Option<&str>)],
    secret: &str,
) -> Result<Vec<String>, SqlError> {
    let mut filter_views = Vec::with_capacity(granted.len());
    for (i, (name, filter)) in granted.iter().enumerate() {
        let inner = format!("{secret}_{i}");
        let filter = filter.map_or(String::new(), |f| format!(" WHERE ({f})"));
        let create = || -> rusqlite::Result<()> {
            let conn = session.conn;
            conn.execute(
                &format!(
                    "CREATE TEMP VIEW {} AS SELECT * FROM main.{}{filter}",
                    ident(&inner),
                    ident(name)
                ),
                [],
            )?;
            conn.execute(
                &format!(
                    "CREATE TEMP VIEW {} AS SELECT * FROM temp.{}",
                    ident(name),
                    ident(&inner)
                ),
                [],
            )?;
            // Views compile lazily: a filter that does not work should fail here, named.
            conn.prepare(&format!("SELECT * FROM temp.{} LIMIT 0", ident(name)))
                .map(drop)
        };
        create().map_err(|e| SqlError::BadFilter {
            datasource: (*name).to_owned(),
            message: scrub(&e.to_string(), secret),
        })?;
        filter_views.push(inner);
    }
    Ok(filter_views)
}

/// The first refusal the authorizer recorded, to replace SQLite's terse "not authorized".
type DenialSlot = Arc<Mutex<Option<Denial>>>;

/// One request's hold on a pooled connection; cleans up on drop.
struct Session<'c> {
    conn: &'c Connection,
}

impl<'c> Session<'c> {
    fn open(conn: &'c Connection) -> Result<Self, SqlError> {
        let session = Session { conn };
        session.reset()?;
        Ok(session)
    }

    /// No authorizer, writable `temp`, empty `temp`.
    fn reset(&self) -> Result<(), SqlError> {
        self.conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        self.conn
            .pragma_update(None, "query_only", false)
            .map_err(internal)?;
        let objects: Vec<(String, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT type, name FROM temp.sqlite_schema WHERE type IN ('view', 'table') ORDER BY type = 'table'")
                .map_err(internal)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(internal)?
        };
        for (kind, name) in objects {
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            self.conn
                .execute_batch(&format!("DROP {kind} IF EXISTS temp.{}", ident(&name)))
                .map_err(internal)?;
        }
        Ok(())
    }

    /// One DDL statement: `execute` refuses a second one, so a filter holding `;` cannot
    /// smuggle one in (filters are signed, but this is cheap insurance).
    fn ddl(&self, sql: &str) -> Result<(), SqlError> {
        self.conn
            .execute(sql, [])
            .map(drop)
            .map_err(|e| SqlError::Sql(e.to_string()))
    }

    /// Installs `policy`, returning where its first refusal will be recorded.
    fn authorize(&self, policy: Policy) -> DenialSlot {
        let slot = DenialSlot::default();
        let record = Arc::clone(&slot);
        self.conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match policy.decide(&ctx) {
                Ok(()) => Authorization::Allow,
                Err(denial) => {
                    record.lock().expect("denial slot").get_or_insert(denial);
                    Authorization::Deny
                }
            }
        }));
        slot
    }

    /// Makes the connection read-only again, before the authorizer (which refuses pragmas)
    /// goes in for the run.
    fn lock(&self) -> Result<(), SqlError> {
        self.conn
            .pragma_update(None, "query_only", true)
            .map_err(internal)
    }

    /// Runs the user's statement with the time, row and byte limits (the per-value length
    /// limit stops `s || s` doubling from eating memory).
    fn execute(
        &self,
        sql: &str,
        columns: Option<&[OutColumn]>,
        (limits, deadline): (QueryLimits, Instant),
        denial: &DenialSlot,
        secret: &str,
    ) -> Result<QueryOutput, SqlError> {
        let rendered = RenderedSql {
            sql: sql.to_owned(),
            binds: Vec::new(),
        };
        let result = query::run_until(self.conn, &rendered, columns, limits, deadline);
        result.map_err(|e| match e {
            QueryError::Sql(err) => sql_error(&err, denial, secret),
            other => SqlError::Query(other),
        })
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.reset() {
            // Leftover views would shadow tables for the pipe calls that reuse this
            // connection; there is no way to discard a pooled connection, so say it loudly.
            tracing::error!(error = %e, "could not clean the temp schema after /v0/sql");
        }
        let _ = self.conn.pragma_update(None, "query_only", true);
    }
}

/// Compiles the statement once: one statement, read-only, not `EXPLAIN`, authorized.
fn check_statement(conn: &Connection, sql: &str, denial: &DenialSlot) -> Result<(), SqlError> {
    let stmt = conn.prepare(sql).map_err(|e| sql_error(&e, denial, ""))?;
    if stmt.is_explain() != 0 {
        return Err(SqlError::Statement(
            "EXPLAIN is not supported by /v0/sql".into(),
        ));
    }
    if stmt.parameter_count() > 0 {
        return Err(SqlError::Statement(
            "query parameters (`?`, `:name`) are not supported: write the values in the SQL".into(),
        ));
    }
    if !stmt.readonly() {
        return Err(SqlError::Statement(
            "only read-only statements (SELECT, WITH ... SELECT, VALUES) are allowed".into(),
        ));
    }
    Ok(())
}

/// Lists the b-trees the statement's bytecode opens: any outside `temp` (and the `tinybird`
/// schema, when `service_db` says the token reads it) is a table read around the filter (or
/// a virtual table, which could read anything).
fn check_bytecode(
    conn: &Connection,
    sql: &str,
    schema: &MainSchema,
    granted: &[&str],
    service_db: Option<i64>,
    denial: &DenialSlot,
) -> Result<(), SqlError> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN {sql}"))
        .map_err(|e| sql_error(&e, denial, ""))?;
    let mut rows = stmt.query([]).map_err(internal)?;
    while let Some(row) = rows.next().map_err(internal)? {
        let opcode: String = row.get(1).map_err(internal)?;
        let root: i64 = row.get(3).map_err(internal)?;
        let database: i64 = row.get(4).map_err(internal)?;
        match opcode.as_str() {
            "OpenRead" | "ReopenIdx" if Some(database) == service_db => {}
            "OpenRead" | "OpenWrite" | "ReopenIdx" if database != TEMP_DB => {
                let table = schema
                    .by_root
                    .get(&root)
                    .cloned()
                    .unwrap_or_else(|| format!("table with root page {root}"));
                let denial = if granted.iter().any(|g| g.eq_ignore_ascii_case(&table)) {
                    Denial::Direct(table)
                } else {
                    Denial::NoScope(table)
                };
                return Err(SqlError::Denied(denial));
            }
            op if op.starts_with('V') && op != "Variable" => {
                return Err(SqlError::Denied(Denial::Statement(
                    "reading a virtual table (json_each, pragma_*, ...)".into(),
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `temp` is always database number 1 in a statement's bytecode.
const TEMP_DB: i64 = 1;

/// The tables of `main`, by name and by root page (indexes map to their table), and the
/// number of the attached `tinybird` schema in bytecode.
struct MainSchema {
    tables: HashSet<String>,
    by_root: BTreeMap<i64, String>,
    service_db: Option<i64>,
}

impl MainSchema {
    fn read(conn: &Connection) -> Result<Self, SqlError> {
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, rootpage FROM main.sqlite_schema")
            .map_err(internal)?;
        let rows: Vec<(String, String, String, Option<i64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(Iterator::collect)
            .map_err(internal)?;
        let service_db = conn
            .prepare("SELECT seq FROM pragma_database_list WHERE name = 'tinybird'")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, i64>(0)))
            .ok();
        let mut schema = MainSchema {
            tables: HashSet::new(),
            by_root: BTreeMap::new(),
            service_db,
        };
        for (kind, name, table, root) in rows {
            if (kind == "table" || kind == "view") && !name.starts_with("sqlite_") {
                schema.tables.insert(name);
            }
            if let Some(root) = root.filter(|r| *r > 0) {
                schema.by_root.insert(root, table);
            }
        }
        Ok(schema)
    }
}

/// Quotes an identifier for SQLite.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Removes the secret view prefix from a message the client will read.
fn scrub(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        message.to_owned()
    } else {
        message.replace(secret, "row_filter")
    }
}

/// Maps an SQLite error: a recorded refusal wins over SQLite's generic text.
fn sql_error(err: &rusqlite::Error, denial: &DenialSlot, secret: &str) -> SqlError {
    if let Some(denial) = denial.lock().expect("denial slot").take() {
        return match denial {
            Denial::Function(_) | Denial::Statement(_) => SqlError::Statement(denial.to_string()),
            other => SqlError::Denied(other),
        };
    }
    match err {
        rusqlite::Error::MultipleStatement => {
            SqlError::Statement("send one statement at a time".into())
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ReadOnly => {
            SqlError::Statement("only read-only statements are allowed".into())
        }
        other => SqlError::Sql(scrub(&other.to_string(), secret)),
    }
}

fn internal(err: rusqlite::Error) -> SqlError {
    SqlError::Internal(err.to_string())
}
