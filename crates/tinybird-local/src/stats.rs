//! `tinybird.pipe_stats_rt`: one row per pipe or SQL request, as Tinybird records them.
//!
//! Tinybird's own usage record (docs/tinybird.md, "Usage attribution") is the only per-tenant attribution it
//! gives: for a JWT call `token` is empty and `token_name` is the JWT's `name`. The BFF's
//! usage view reads it, so the local endpoint keeps it too, for every request whose token
//! verified, whatever it answered (a 403 for a pipe outside its scopes, a 429, a 408 are
//! rows), 7 days and at most [`StatsSettings::max_rows`] rows and
//! [`StatsSettings::max_bytes`] bytes.
//!
//! A request whose token does not verify leaves no row: Tinybird's record belongs to the
//! workspace a token proves, and such a request proves none (recording it would also let
//! anyone write into the workspace's usage record, and fill memory: 300 unauthenticated 1 MB
//! POSTs grew the endpoint by 650 MB when every row kept the request's parameters). The
//! text a row keeps of its request (`url`, `parameters`, names) is cut to
//! [`StatsSettings::max_text_bytes`] each.
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

use tinybird_contract::params::Params;

/// The schema name Tinybird's service data sources live in.
pub const SCHEMA: &str = "tinybird";

/// `pipe_name` of a `/v0/sql` row.
pub const QUERY_API: &str = "query_api";

/// How much is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSettings {
    /// Rows older than this are dropped (Tinybird: 7 days).
    pub ttl: Duration,
    /// At most this many rows; the oldest go first.
    pub max_rows: usize,
    /// At most this many bytes of row text in all; the oldest rows go first.
    pub max_bytes: usize,
    /// At most this many bytes of each text a row keeps of its request (`url`, `parameters`,
    /// the pipe and token names).
    pub max_text_bytes: usize,
}

impl Default for StatsSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(7 * 86_400),
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_text_bytes: 2048,
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[..cut].to_owned()
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
    /// A row for a request to `path?query` with `params`, before anything is known of it;
    /// its `url` and `parameters` keep at most `max_text` bytes each.
    pub fn start(request_id: &str, path: &str, params: &Params, max_text: usize) -> Self {
        // The shown parameters: `token` removed, each value cut, no more than fit the bound
        // (a value grows at most threefold when percent-encoded).
        let mut shown = Params::default();
        let mut size = path.len();
        for (name, value) in params.iter().filter(|(name, _)| *name != "token") {
            if size > max_text {
                break;
            }
            let value = bounded(value, max_text);
            size += 3 * (name.len() + value.len()) + 2;
            shown.push(name, value);
        }
        let query = shown.to_query_string();
        let url = if query.is_empty() {
            bounded(path, max_text)
        } else {
            bounded(&format!("{path}?{query}"), max_text)
        };
        let mut parameters = serde_json::Map::new();
        let mut kept = 2;
        for (name, value) in shown.iter() {
            // Each name and value counts, with its JSON quotes and separators.
            let room = max_text.saturating_sub(kept + name.len() + 6);
            if room == 0 {
                continue;
            }
            let existing = parameters.contains_key(name);
            let entry = parameters
                .entry(name.to_owned())
                .or_insert_with(|| serde_json::Value::String(String::new()));
            if let serde_json::Value::String(text) = entry {
                let before = text.len();
                if before > 0 {
                    text.push(',');
                }
                text.push_str(&bounded(value, room.saturating_sub(1)));
                kept += text.len() - before + if existing { 0 } else { name.len() + 6 };
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

    /// Bytes of text the row keeps (what [`StatsSettings::max_bytes`] counts), plus a fixed
    /// share for its numbers and the table's overhead.
    fn text_bytes(&self) -> usize {
        ROW_OVERHEAD
            + self.pipe_id.len()
            + self.pipe_name.len()
            + self.url.len()
            + self.request_id.len()
            + self.token.len()
            + self.token_name.len()
            + self
                .parameters
                .iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len) + 6)
                .sum::<usize>()
    }
}

/// The parameters as a JSON object of at most `max` bytes: the longest values are cut
/// until it fits (escapes can make the text longer than the values), so it stays JSON.
fn parameters_text(parameters: &serde_json::Map<String, serde_json::Value>, max: usize) -> String {
    let mut parameters = parameters.clone();
    loop {
        let text = serde_json::Value::Object(parameters.clone()).to_string();
        if text.len() <= max {
            return text;
        }
        let longest = parameters
            .iter_mut()
            .filter_map(|(_, v)| match v {
                serde_json::Value::String(s) if !s.is_empty() => Some(s),
                _ => None,
            })
            .max_by_key(|s| s.len());
        match longest {
            Some(value) => *value = bounded(value, value.len() / 2),
            None => return "{}".to_owned(),
        }
    }
}

/// What a row costs besides its text: numbers, a date, SQLite's cell and index overhead.
const ROW_OVERHEAD: usize = 128;

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
    /// Bytes of the rows in the table, as [`Row::text_bytes`] counts them.
    bytes: usize,
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
                bytes: 0,
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

    /// A row for a request, its text bounded by [`StatsSettings::max_text_bytes`].
    pub fn row(&self, request_id: &str, path: &str, params: &Params) -> Row {
        Row::start(request_id, path, params, self.settings.max_text_bytes)
    }

    /// Records a finished request.
    pub fn record(&self, row: &Row, status: u16, elapsed: Duration) {
        let max_text = self.settings.max_text_bytes;
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let result = writer.conn.execute(
            "INSERT INTO pipe_stats_rt VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            rusqlite::params![
                row.start_datetime.format("%Y-%m-%d %H:%M:%S").to_string(),
                bounded(&row.pipe_id, max_text),
                bounded(&row.pipe_name, max_text),
                elapsed.as_secs_f64(),
                row.read_bytes as i64,
                row.read_rows as i64,
                row.result_rows as i64,
                bounded(&row.url, max_text),
                i64::from(status >= 400),
                bounded(&row.request_id, max_text),
                bounded(&row.token, max_text),
                bounded(&row.token_name, max_text),
                i64::from(status),
                parameters_text(&row.parameters, max_text),
            ],
        );
        if let Err(e) = result {
            tracing::warn!(error = %e, "local endpoint: cannot record a pipe_stats_rt row");
            return;
        }
        writer.rows += 1;
        writer.bytes += row.text_bytes().min(ROW_OVERHEAD + 8 * max_text);
        writer.inserts_since_prune += 1;
        let over_cap =
            writer.rows > self.settings.max_rows || writer.bytes > self.settings.max_bytes;
        if over_cap || writer.inserts_since_prune >= PRUNE_EVERY {
            writer.inserts_since_prune = 0;
            match prune(&writer.conn, &self.settings) {
                Ok((rows, bytes)) => (writer.rows, writer.bytes) = (rows, bytes),
                Err(e) => tracing::warn!(error = %e, "local endpoint: cannot prune pipe_stats_rt"),
            }
        }
    }

    /// Bytes of row text kept now, as the byte cap counts them.
    pub fn bytes(&self) -> usize {
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).bytes
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

/// The bytes a stored row counts for (as [`Row::text_bytes`]), in SQL.
const ROW_BYTES_SQL: &str = "128 + length(pipe_id) + length(pipe_name) + length(url) \
    + length(request_id) + length(token) + length(token_name) + length(parameters)";

/// Drops rows past the TTL and, past the row or byte cap, the oldest down to 90% of the cap;
/// returns the rows and bytes left.
fn prune(conn: &Connection, settings: &StatsSettings) -> rusqlite::Result<(usize, usize)> {
    let cutoff = Utc::now() - chrono::Duration::from_std(settings.ttl).unwrap_or_default();
    conn.execute(
        "DELETE FROM pipe_stats_rt WHERE start_datetime < ?1",
        [cutoff.format("%Y-%m-%d %H:%M:%S").to_string()],
    )?;
    let totals = || -> rusqlite::Result<(i64, i64)> {
        conn.query_row(
            &format!("SELECT count(*), coalesce(sum({ROW_BYTES_SQL}), 0) FROM pipe_stats_rt"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };
    let (rows, bytes) = totals()?;
    let (cap_rows, cap_bytes) = (settings.max_rows as i64, settings.max_bytes as i64);
    if rows > cap_rows || bytes > cap_bytes {
        // Down to 90% of the caps, so the next deletes come in batches, not one per insert.
        let (keep_rows, keep_bytes) = (cap_rows - cap_rows / 10, cap_bytes - cap_bytes / 10);
        // The newest rows that fit both caps stay: find the oldest of them by walking back.
        let mut stmt = conn.prepare(&format!(
            "SELECT rowid, {ROW_BYTES_SQL} FROM pipe_stats_rt ORDER BY rowid DESC"
        ))?;
        let mut walk = stmt.query([])?;
        let (mut kept_rows, mut kept_bytes, mut oldest_kept) = (0i64, 0i64, i64::MAX);
        while let Some(row) = walk.next()? {
            let (rowid, size): (i64, i64) = (row.get(0)?, row.get(1)?);
            if kept_rows + 1 > keep_rows || kept_bytes + size > keep_bytes {
                break;
            }
            kept_rows += 1;
            kept_bytes += size;
            oldest_kept = rowid;
        }
        drop(walk);
        conn.execute("DELETE FROM pipe_stats_rt WHERE rowid < ?1", [oldest_kept])?;
        let (rows, bytes) = totals()?;
        return Ok((rows as usize, bytes as usize));
    }
    Ok((rows as usize, bytes as usize))
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
        let mut row = Row::start("01JTEST", "/v0/pipes/top_products.json", &params, 2048);
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
        let row = Row::start("id", "/v0/sql", &Params::default(), 2048);
        for _ in 0..35 {
            stats.record(&row, 200, Duration::ZERO);
        }
        assert!(stats.len() <= 10, "{}", stats.len());
        assert!(!stats.is_empty());
    }
}
