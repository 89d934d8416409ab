//! Runs a query on a pooled connection, within a time and row budget, and names each result
//! column's ClickHouse type: the translator's type when it knows it, else one read off the
//! SQLite declaration and the values.
//!
//! SQLite does not report how much it read, so `rows_read` counts rows stepped through by full
//! scans plus rows returned, and `bytes_read` the size of the values returned: estimates, good
//! enough for a client that displays them, never used for decisions.

use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, StatementStatus};

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
    /// SQLite refused the statement (a pipe SQL error, or a write).
    #[error("query failed: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Budget for one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Wall-clock limit, enforced by SQLite's progress handler.
    pub timeout: Duration,
    /// Maximum rows in a result.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_rows: 100_000,
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
    let sql = RenderedSql {
        sql: prepared.sql.clone(),
        binds: prepared.binds.clone(),
    };
    run_typed(conn, &sql, prepared.columns.as_deref(), limits)
}

/// Executes `sql`, typing the result with `columns` (the translator's types) where known.
pub fn run_typed(
    conn: &Connection,
    sql: &RenderedSql,
    columns: Option<&[OutColumn]>,
    limits: QueryLimits,
) -> Result<QueryOutput, QueryError> {
    let started = Instant::now();
    let deadline = started + limits.timeout;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let result = run_inner(conn, sql, columns, limits, started);
    conn.progress_handler(0, None::<fn() -> bool>);
    result.map_err(|e| match e {
        QueryError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            QueryError::Timeout(limits.timeout)
        }
        other => other,
    })
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
    {
        let mut cursor = stmt.query(rusqlite::params_from_iter(sql.binds.iter()))?;
        while let Some(row) = cursor.next()? {
            if rows.len() == limits.max_rows {
                return Err(QueryError::TooManyRows(limits.max_rows));
            }
            let values: Vec<Value> = (0..names.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<_, _>>()?;
            bytes_read += values.iter().map(value_size).sum::<u64>();
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

fn value_size(v: &Value) -> u64 {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(s) => s.len() as u64,
        Value::Blob(b) => b.len() as u64,
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
