//! Runs a query on a pooled connection, within a time and row budget, and names each result
//! column's ClickHouse type: the translator's type when it knows it, else one read off the
//! SQLite declaration and the values.
//!
//! SQLite does not report how much it read, so `rows_read` counts rows stepped through by full
//! scans plus rows returned, and `bytes_read` the size of the values returned: estimates, good
//! enough for a client that displays them, never used for decisions.

use std::time::{Duration, Instant};

use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, StatementStatus};

use super::budget::{self, Trip};
use super::clickhouse::OutColumn;
use super::template::RenderedSql;

/// The type of one result column, named as ClickHouse/Tinybird would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name as the query aliases it.
    pub name: String,
    /// `Int64`, `Float64`, `String`, `Date`, `DateTime`, possibly `Nullable(...)`.
    pub ty: String,
}

/// A finished query.
#[derive(Debug)]
pub struct QueryOutput {
    /// Result columns, in order.
    pub columns: Vec<Column>,
    /// Result rows.
    pub rows: Vec<Vec<Value>>,
    /// Estimated rows read (see module doc).
    pub rows_read: u64,
    /// Estimated bytes read.
    pub bytes_read: u64,
    /// Wall time spent in SQLite.
    pub elapsed: Duration,
}

/// Why a query did not finish.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Ran past the time budget (Tinybird's 408).
    #[error("query took longer than the {0:?} limit: add filters or a LIMIT")]
    Timeout(Duration),
    /// Returned more rows than allowed.
    #[error("query returned more than {0} rows: add a LIMIT or narrower filters")]
    TooManyRows(usize),
    /// Its result would be larger than allowed (`max_result_bytes`).
    #[error(
        "query result is larger than the {0} bytes allowed: add a LIMIT, narrower filters or fewer columns"
    )]
    TooManyBytes(usize),
    /// A function would have built a value, or held memory, past the query's limits.
    #[error("{0}: make the values smaller or the query narrower")]
    TooLarge(String),
    /// SQLite refused the statement (a pipe SQL error, or a write).
    #[error("query failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Budget for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Wall-clock limit, from the start of translation to the last row: SQLite's progress
    /// handler between steps, the functions' own checks inside them (`budget::tick`).
    pub timeout: Duration,
    /// Maximum rows in a result (ClickHouse's `max_result_rows`).
    pub max_rows: usize,
    /// Maximum bytes of the rows a query returns, as held in memory before rendering
    /// (ClickHouse's `max_result_bytes`).
    pub max_result_bytes: usize,
    /// Largest string or array one function or operator may build (also SQLite's length
    /// limit on every pooled connection).
    pub max_value_bytes: usize,
    /// Bytes the query's functions may hold at once: parsed arrays and JSON documents,
    /// aggregate states (ClickHouse's `max_memory_usage`, for what the local endpoint adds to
    /// SQLite).
    pub max_memory_bytes: usize,
}

/// The default `max_result_bytes`: 64 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_rows: 100_000,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_value_bytes: budget::DEFAULT_MAX_VALUE_BYTES,
            max_memory_bytes: budget::DEFAULT_MAX_MEMORY_BYTES,
        }
    }
}

impl QueryLimits {
    /// The functions' share of the budget, for a query that must end by `deadline`.
    pub fn functions(&self, deadline: Instant) -> budget::FunctionLimits {
        budget::FunctionLimits {
            deadline: Some(deadline),
            max_value_bytes: self.max_value_bytes,
            max_memory_bytes: self.max_memory_bytes,
        }
    }
}

/// Executes `sql` with its binds. Blocking: call from `spawn_blocking`.
pub fn run(
    conn: &Connection,
    sql: &RenderedSql,
    limits: QueryLimits,
) -> Result<QueryOutput, QueryError> {
    run_typed(conn, sql, None, limits)
}

/// Executes a prepared pipe call. Blocking: call from `spawn_blocking`.
pub fn run_prepared(
    conn: &Connection,
    prepared: &super::pipes::Prepared,
    limits: QueryLimits,
) -> Result<QueryOutput, QueryError> {
    run_prepared_until(conn, prepared, limits, Instant::now() + limits.timeout)
}

/// Executes a prepared pipe call to end by `deadline`. Blocking: call from `spawn_blocking`.
pub fn run_prepared_until(
    conn: &Connection,
    prepared: &super::pipes::Prepared,
    limits: QueryLimits,
    deadline: Instant,
) -> Result<QueryOutput, QueryError> {
    let sql = RenderedSql {
        sql: prepared.sql.clone(),
        binds: prepared.binds.clone(),
    };
    run_until(conn, &sql, prepared.columns.as_deref(), limits, deadline)
}

/// Executes `sql`, typing the result with `columns` (the translator's types) where known.
pub fn run_typed(
    conn: &Connection,
    sql: &RenderedSql,
    columns: Option<&[OutColumn]>,
    limits: QueryLimits,
) -> Result<QueryOutput, QueryError> {
    let started = Instant::now();
    run_until(conn, sql, columns, limits, started + limits.timeout)
}

/// Executes `sql` to end by `deadline` (a request's, which began before translation).
pub fn run_until(
    conn: &Connection,
    sql: &RenderedSql,
    columns: Option<&[OutColumn]>,
    limits: QueryLimits,
    deadline: Instant,
) -> Result<QueryOutput, QueryError> {
    let started = Instant::now();
    if started > deadline {
        return Err(QueryError::Timeout(limits.timeout));
    }
    let result = guarded(conn, limits, deadline, || {
        run_inner(conn, sql, columns, limits, started).map_err(|e| match (e, budget::take_trip()) {
            (QueryError::Sql(_), Some(Trip::Deadline)) => QueryError::Timeout(limits.timeout),
            (QueryError::Sql(_), Some(trip)) => QueryError::TooLarge(trip.to_string()),
            (e, _) => e,
        })
    });
    result.map_err(|e| match e {
        QueryError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            QueryError::Timeout(limits.timeout)
        }
        QueryError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::TooBig =>
        {
            QueryError::TooLarge(format!(
                "a value would be larger than the {} bytes allowed per value",
                limits.max_value_bytes
            ))
        }
        other => other,
    })
}

/// Runs `work` on `conn` under `limits` until `deadline`: SQLite interrupts it past the
/// deadline (a progress handler), refuses any value over `max_value_bytes`, and every ch_*
/// function asks the per-query budget before it allocates. Every statement that runs SQL a
/// project or a caller wrote goes through here (queries, materializations).
pub fn guarded<T>(
    conn: &Connection,
    limits: QueryLimits,
    deadline: Instant,
    work: impl FnOnce() -> T,
) -> T {
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let length = i32::try_from(limits.max_value_bytes).unwrap_or(i32::MAX);
    let previous_length = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, length).ok();
    let result = {
        let _budget = budget::enter(limits.functions(deadline));
        work()
    };
    if let Some(previous) = previous_length {
        let _ = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, previous);
    }
    conn.progress_handler(0, None::<fn() -> bool>);
    result
}

fn run_inner(
    conn: &Connection,
    sql: &RenderedSql,
    typed: Option<&[OutColumn]>,
    limits: QueryLimits,
    started: Instant,
) -> Result<QueryOutput, QueryError> {
    let mut stmt = conn.prepare(&sql.sql)?;
    if !stmt.readonly() {
        return Err(QueryError::Sql(rusqlite::Error::InvalidQuery));
    }
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let decltypes: Vec<Option<String>> = stmt
        .columns()
        .iter()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    let mut rows = Vec::new();
    let mut bytes_read = 0u64;
    // What the rows hold in memory: their values and each value's slot.
    let mut held = 0usize;
    {
        let mut cursor = stmt.query(rusqlite::params_from_iter(sql.binds.iter()))?;
        while let Some(row) = cursor.next()? {
            if rows.len() == limits.max_rows {
                return Err(QueryError::TooManyRows(limits.max_rows));
            }
            // Sized before it is copied out of SQLite.
            let mut row_bytes = 0u64;
            for i in 0..names.len() {
                row_bytes += value_size(&row.get_ref(i)?);
            }
            held += row_bytes as usize + names.len() * std::mem::size_of::<Value>();
            if held > limits.max_result_bytes {
                return Err(QueryError::TooManyBytes(limits.max_result_bytes));
            }
            let values: Vec<Value> = (0..names.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()?;
            bytes_read += row_bytes;
            rows.push(values);
        }
    }
    let scanned = stmt.get_status(StatementStatus::FullscanStep) as u64;
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let known = typed
                .filter(|t| t.len() == decltypes.len())
                .and_then(|t| t[i].ty.as_ref());
            Column {
                ty: known.map_or_else(
                    || column_type(decltypes[i].as_deref(), &rows, i),
                    ToString::to_string,
                ),
                name,
            }
        })
        .collect();
    Ok(QueryOutput {
        columns,
        rows_read: scanned + rows.len() as u64,
        rows,
        bytes_read,
        elapsed: started.elapsed(),
    })
}

fn value_size(v: &ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Null => 1,
        ValueRef::Integer(_) | ValueRef::Real(_) => 8,
        ValueRef::Text(s) => s.len() as u64,
        ValueRef::Blob(b) => b.len() as u64,
    }
}

/// Names a column's type from its declaration, else from the values it holds.
fn column_type(decl: Option<&str>, rows: &[Vec<Value>], i: usize) -> String {
    let nullable = rows.iter().any(|r| matches!(r[i], Value::Null));
    let declared = decl.map(|d| d.to_ascii_uppercase());
    let base = match declared.as_deref() {
        Some("DATE") => "Date",
        Some("DATETIME") => "DateTime",
        _ => match rows
            .iter()
            .map(|r| &r[i])
            .find(|v| !matches!(v, Value::Null))
        {
            Some(Value::Integer(_)) => "Int64",
            Some(Value::Real(_)) => "Float64",
            Some(Value::Blob(_)) => "String",
            Some(Value::Text(_)) => "String",
            Some(Value::Null) | None => match declared.as_deref() {
                Some(d) if d.contains("INT") => "Int64",
                Some("REAL") | Some("FLOAT") | Some("DOUBLE") => "Float64",
                _ => "String",
            },
        },
    };
    if nullable {
        format!("Nullable({base})")
    } else {
        base.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (d DATE, n INTEGER, x REAL, s TEXT); INSERT INTO t VALUES ('2026-01-01', 1, 1.5, 'a'), ('2026-01-02', 2, NULL, 'b');").unwrap();
        c
    }

    fn sql(s: &str) -> RenderedSql {
        RenderedSql {
            sql: s.into(),
            binds: vec![],
        }
    }

    #[test]
    fn types_are_named_like_clickhouse() {
        let out = run(
            &db(),
            &sql("SELECT d, n, x, s, count(*) OVER () AS c FROM t"),
            QueryLimits::default(),
        )
        .unwrap();
        let types: Vec<_> = out.columns.iter().map(|c| c.ty.as_str()).collect();
        assert_eq!(
            types,
            ["Date", "Int64", "Nullable(Float64)", "String", "Int64"]
        );
        assert_eq!(out.rows.len(), 2);
        assert!(out.rows_read >= 2);
    }

    #[test]
    fn writes_row_caps_and_timeouts_are_refused() {
        let conn = db();
        assert!(matches!(
            run(&conn, &sql("DELETE FROM t"), QueryLimits::default()),
            Err(QueryError::Sql(_))
        ));
        let cap = QueryLimits {
            max_rows: 1,
            ..QueryLimits::default()
        };
        assert!(matches!(
            run(&conn, &sql("SELECT * FROM t"), cap),
            Err(QueryError::TooManyRows(1))
        ));
        let slow = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";
        let quick = QueryLimits {
            timeout: Duration::from_millis(50),
            ..QueryLimits::default()
        };
        assert!(matches!(
            run(&conn, &sql(slow), quick),
            Err(QueryError::Timeout(_))
        ));
        // The handler is cleared: the connection still works afterwards.
        assert_eq!(
            run(&conn, &sql("SELECT 1"), QueryLimits::default())
                .unwrap()
                .rows
                .len(),
            1
        );
    }
}
