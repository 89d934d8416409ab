//! `tinybird.pipe_stats_rt`: one row per pipe or SQL request, as Tinybird records them.
//!
//! Tinybird's own usage record (docs/tinybird.md, "Usage attribution") is the only per-tenant attribution it
//! gives: for a JWT call `token` is empty and `token_name` is the JWT's `name`. The BFF's
//! usage view reads it, so the local endpoint keeps it too, for every status (403 and 429
//! included), 7 days and at most [`StatsSettings::max_rows`] rows.
//!
//! The rows live in their own shared-cache in-memory SQLite database, attached to every
//! pooled connection as `tinybird`, so `SELECT ... FROM tinybird.pipe_stats_rt` works in
//! `/v0/sql` (for the admin token or a static token scoped to it; never a JWT: see
//! `sql::policy`) and in pipes. One writer connection inserts; the readers run with
//! `read_uncommitted`, so a read in progress never blocks a request's row.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use crate::tinybird::params::Params;

/// The schema name Tinybird's service data sources live in.
pub const SCHEMA: &str = "tinybird";

/// `pipe_name` of a `/v0/sql` row.
pub const QUERY_API: &str = "query_api";

/// How much is kept.
#[derive(Debug, Clone, Copy)]
pub struct StatsSettings {
    /// Rows older than this are dropped (Tinybird: 7 days).
    pub ttl: Duration,
    /// At most this many rows; the oldest go first.
    pub max_rows: usize,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(7 * 86_400),
            max_rows: 100_000,
        }
    }
}

/// One request's row, filled in as the request goes.
#[derive(Debug, Clone)]
pub struct Row {
    /// When the request started.
    pub start_datetime: DateTime<Utc>,
    /// The pipe's id (`t_...`), empty when none was found.
    pub pipe_id: String,
    /// The pipe's name, or `query_api` for SQL.
    pub pipe_name: String,
    /// Read by the query (estimates; see `query`).
    pub read_bytes: u64,
    /// Rows read by the query.
    pub read_rows: u64,
    /// Rows returned.
    pub result_rows: u64,
    /// Path and query string, `token` removed.
    pub url: String,
    /// The `X-Request-ID` of the answer.
    pub request_id: String,
    /// The static token's name; empty for a JWT (Tinybird does not store JWTs).
    pub token: String,
    /// The token's name: the JWT's `name`, the only per-tenant key.
    pub token_name: String,
    /// The request's parameters (`token` removed), as a JSON object of strings.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

impl Row {
    /// A row for a request to `path?query` with `params`, before anything is known of it.
    pub fn start(request_id: &str, path: &str, params: &Params) -> Self {
        let mut shown = params.clone();
        shown.remove("token");
        let query = shown.to_query_string();
        let url = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut parameters = serde_json::Map::new();
        for (name, value) in shown.iter() {
            let entry = parameters
                .entry(name.to_owned())
                .or_insert_with(|| serde_json::Value::String(String::new()));
            if let serde_json::Value::String(text) = entry {
                if !text.is_empty() {
                    text.push(',');
                }
                text.push_str(value);
            }
        }
        Self {
            start_datetime: Utc::now(),
            pipe_id: String::new(),
            pipe_name: String::new(),
            read_bytes: 0,
            read_rows: 0,
            result_rows: 0,
            url,
            request_id: request_id.to_owned(),
            token: String::new(),
            token_name: String::new(),
            parameters,
        }
    }
}

/// The recorder: owns the in-memory database and its one writer.
pub struct PipeStats {
    /// The writer (and owner: the in-memory database lives as long as it does).
    writer: Mutex<Writer>,
    /// Where readers attach.
    uri: String,
    settings: StatsSettings,
}

struct Writer {
    conn: Connection,
    /// Rows in the table (kept in step with inserts and deletes).
    rows: usize,
    inserts_since_prune: usize,
}

const CREATE: &str = "CREATE TABLE pipe_stats_rt (
    start_datetime DATETIME NOT NULL,
    pipe_id TEXT NOT NULL,
    pipe_name TEXT NOT NULL,
    duration REAL NOT NULL,
    read_bytes INTEGER NOT NULL,
    read_rows INTEGER NOT NULL,
    result_rows INTEGER NOT NULL,
    url TEXT NOT NULL,
    error INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    token TEXT NOT NULL,
    token_name TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    parameters TEXT NOT NULL
);
CREATE INDEX pipe_stats_rt_start ON pipe_stats_rt (start_datetime);";

/// Prune every this many inserts (and whenever the row cap is passed).
const PRUNE_EVERY: usize = 1024;

impl PipeStats {
    /// An empty record.
    pub fn new(settings: StatsSettings) -> rusqlite::Result<Self> {
        let uri = format!(
            "file:tbstats-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags)?;
        conn.execute_batch(CREATE)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                rows: 0,
                inserts_since_prune: 0,
            }),
            uri,
            settings,
        })
    }

    /// Attaches the record to a reader connection as `tinybird` (read-only when the
    /// connection is).
    pub fn attach(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute("ATTACH DATABASE ?1 AS tinybird", [&self.uri])?;
        conn.pragma_update(None, "read_uncommitted", true)
    }

    /// Records a finished request.
    pub fn record(&self, row: &Row, status: u16, elapsed: Duration) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let result = writer.conn.execute(
            "INSERT INTO pipe_stats_rt VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            rusqlite::params![
                row.start_datetime.format("%Y-%m-%d %H:%M:%S").to_string(),
                row.pipe_id,
                row.pipe_name,
                elapsed.as_secs_f64(),
                row.read_bytes as i64,
                row.read_rows as i64,
                row.result_rows as i64,
                row.url,
                i64::from(status >= 400),
                row.request_id,
                row.token,
                row.token_name,
                i64::from(status),
                serde_json::Value::Object(row.parameters.clone()).to_string(),
            ],
        );
        if let Err(e) = result {
            tracing::warn!(error = %e, "local endpoint: cannot record a pipe_stats_rt row");
            return;
        }
        writer.rows += 1;
        writer.inserts_since_prune += 1;
        let over_cap = writer.rows > self.settings.max_rows;
        if over_cap || writer.inserts_since_prune >= PRUNE_EVERY {
            writer.inserts_since_prune = 0;
            match prune(&writer.conn, &self.settings) {
                Ok(rows) => writer.rows = rows,
                Err(e) => tracing::warn!(error = %e, "local endpoint: cannot prune pipe_stats_rt"),
            }
        }
    }

    /// Rows kept now (for tests and the README's bound).
    pub fn len(&self) -> usize {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer
            .conn
            .query_row("SELECT count(*) FROM pipe_stats_rt", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_or(0, |n| n as usize)
    }

    /// Whether no row is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops rows past the TTL and, past the row cap, the oldest tenth; returns the rows left.
fn prune(conn: &Connection, settings: &StatsSettings) -> rusqlite::Result<usize> {
    let cutoff = Utc::now() - chrono::Duration::from_std(settings.ttl).unwrap_or_default();
    conn.execute(
        "DELETE FROM pipe_stats_rt WHERE start_datetime < ?1",
        [cutoff.format("%Y-%m-%d %H:%M:%S").to_string()],
    )?;
    let rows: i64 = conn.query_row("SELECT count(*) FROM pipe_stats_rt", [], |r| r.get(0))?;
    let cap = settings.max_rows as i64;
    if rows > cap {
        // Down to 90% of the cap, so the next deletes come in batches, not one per insert.
        let keep = cap - cap / 10;
        conn.execute(
            "DELETE FROM pipe_stats_rt WHERE rowid IN
               (SELECT rowid FROM pipe_stats_rt ORDER BY rowid LIMIT ?1)",
            [rows - keep],
        )?;
        return Ok(keep as usize);
    }
    Ok(rows as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(stats: &PipeStats) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        stats.attach(&conn).unwrap();
        conn
    }

    #[test]
    fn rows_are_readable_from_an_attached_reader_and_tokens_never_stored() {
        let stats = PipeStats::new(StatsSettings::default()).unwrap();
        let params = Params::parse("org_id=acme&token=p.secret-token&ids=1&ids=2").unwrap();
        let mut row = Row::start("01JTEST", "/v0/pipes/top_products.json", &params);
        row.pipe_name = "top_products".into();
        row.token_name = "alice@acme".into();
        stats.record(&row, 403, Duration::from_millis(12));
        let conn = reader(&stats);
        let (url, name, error, status, parameters): (String, String, i64, i64, String) = conn
            .query_row(
                "SELECT url, token_name, error, status_code, parameters FROM tinybird.pipe_stats_rt",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(url, "/v0/pipes/top_products.json?org_id=acme&ids=1&ids=2");
        assert_eq!((name.as_str(), error, status), ("alice@acme", 1, 403));
        assert_eq!(parameters, r#"{"org_id":"acme","ids":"1,2"}"#);
    }

    #[test]
    fn the_record_is_bounded_by_rows() {
        let stats = PipeStats::new(StatsSettings {
            max_rows: 10,
            ..StatsSettings::default()
        })
        .unwrap();
        let row = Row::start("id", "/v0/sql", &Params::default());
        for _ in 0..35 {
            stats.record(&row, 200, Duration::ZERO);
        }
        assert!(stats.len() <= 10, "{}", stats.len());
        assert!(!stats.is_empty());
    }
}
