//! Reading `tinybird.pipe_stats_rt` (docs/tinybird.md, "Usage attribution"): the query for one poll, its JSON
//! answer parsed into [`StatRow`]s, and the [`Cursor`] that makes each poll read only rows it
//! has not seen. Pure: the poller does the I/O.
//!
//! `start_datetime` has one-second resolution and Tinybird may record a row a little after
//! later ones, so each poll re-reads `lookback` behind the newest row it has seen and skips
//! the `request_id`s it already took. When a poll is cut short by its row cap, the next one
//! starts at the newest row instead, so a backlog larger than the cap still drains.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The `start_datetime` text format of ClickHouse's `DateTime`.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One request, as the poller needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatRow {
    /// When it started (UTC).
    #[serde(deserialize_with = "datetime")]
    pub start_datetime: NaiveDateTime,
    /// Pipe name, `query_api` for SQL.
    pub pipe_name: String,
    /// Seconds.
    #[serde(deserialize_with = "float")]
    pub duration: f64,
    /// Bytes read.
    #[serde(deserialize_with = "uint")]
    pub read_bytes: u64,
    /// Rows read.
    #[serde(deserialize_with = "uint")]
    pub read_rows: u64,
    /// Tinybird's `X-Request-ID`.
    pub request_id: String,
    /// The JWT's `name` (or a static token's).
    pub token_name: String,
    /// The HTTP status.
    #[serde(deserialize_with = "uint")]
    pub status_code: u64,
}

/// The columns read, in the query's order.
pub const COLUMNS: &str = "start_datetime, pipe_name, duration, read_bytes, read_rows, request_id, token_name, status_code";

/// The SQL of one poll: rows from `since` on, oldest first, at most `limit`.
pub fn query(since: NaiveDateTime, limit: usize) -> String {
    format!(
        "SELECT {COLUMNS} FROM tinybird.pipe_stats_rt WHERE start_datetime >= '{}' ORDER BY start_datetime LIMIT {limit} FORMAT JSON",
        since.format(TIME_FORMAT)
    )
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<StatRow>,
}

/// Parses the SQL API's `FORMAT JSON` answer.
pub fn parse(body: &[u8]) -> Result<Vec<StatRow>, String> {
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.data)
        .map_err(|e| format!("unexpected pipe_stats_rt answer: {e}"))
}

fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    NaiveDateTime::parse_from_str(&text, TIME_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(serde::de::Error::custom)
}

/// ClickHouse quotes 64-bit integers in JSON by default: take a number or a numeric string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num<'a> {
    U(u64),
    F(f64),
    S(&'a str),
}

fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Num::deserialize(d)? {
        Num::U(n) => Ok(n),
        Num::F(f) => Ok(f.max(0.0) as u64),
        Num::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Num::deserialize(d)? {
        Num::U(n) => Ok(n as f64),
        Num::F(f) => Ok(f),
        Num::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// Where the next poll starts, and the rows near it already taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The newest `start_datetime` taken (Unix seconds).
    pub newest: Option<i64>,
    /// `request_id → start_datetime` of rows within `lookback` of `newest`.
    pub seen: HashMap<String, i64>,
    /// Whether the last poll hit its row cap.
    pub truncated: bool,
}

impl Cursor {
    /// Where the next poll reads from: `backfill` before `now` on a fresh cursor, else
    /// `lookback` behind the newest row (the newest row itself after a capped poll).
    pub fn since(&self, now: DateTime<Utc>, backfill: i64, lookback: i64) -> NaiveDateTime {
        let at = match self.newest {
            None => now.timestamp() - backfill,
            Some(n) if self.truncated => n,
            Some(n) => n - lookback,
        };
        DateTime::from_timestamp(at, 0)
            .unwrap_or_default()
            .naive_utc()
    }

    /// Keeps the rows not taken before, and remembers them; `limit` is the poll's row cap.
    pub fn admit(&mut self, rows: Vec<StatRow>, lookback: i64, limit: usize) -> Vec<StatRow> {
        self.truncated = rows.len() >= limit;
        let mut fresh = Vec::with_capacity(rows.len());
        for row in rows {
            let at = row.start_datetime.and_utc().timestamp();
            if self.seen.contains_key(&row.request_id) {
                continue;
            }
            self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
            self.seen.insert(row.request_id.clone(), at);
            fresh.push(row);
        }
        if let Some(newest) = self.newest {
            self.seen.retain(|_, at| *at >= newest - lookback);
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at: &str) -> StatRow {
        StatRow {
            start_datetime: NaiveDateTime::parse_from_str(at, TIME_FORMAT).unwrap(),
            pipe_name: "p".into(),
            duration: 0.01,
            read_bytes: 1,
            read_rows: 1,
            request_id: id.into(),
            token_name: "alice@acme".into(),
            status_code: 200,
        }
    }

    #[test]
    fn answers_parse_with_quoted_or_plain_numbers() {
        let body = br#"{"meta": [], "data": [
            {"start_datetime": "2026-01-02 03:04:05", "pipe_name": "top", "duration": 0.25,
             "read_bytes": "18446744073709551615", "read_rows": 3, "request_id": "01J",
             "token_name": "alice@acme", "status_code": 429}], "rows": 1}"#;
        let rows = parse(body).unwrap();
        assert_eq!(rows[0].read_bytes, u64::MAX);
        assert_eq!((rows[0].status_code, rows[0].duration), (429, 0.25));
        assert!(
            parse(b"{\"error\": \"x\"}")
                .unwrap_err()
                .contains("unexpected")
        );
    }

    #[test]
    fn each_row_is_taken_once_and_late_rows_within_the_lookback_are_not_lost() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T04:00:00Z")
            .unwrap()
            .to_utc();
        let mut cursor = Cursor::default();
        assert_eq!(
            cursor.since(now, 3600, 60).to_string(),
            "2026-01-02 03:00:00"
        );
        let first = vec![
            row("a", "2026-01-02 03:10:00"),
            row("b", "2026-01-02 03:10:05"),
        ];
        assert_eq!(cursor.admit(first.clone(), 60, 100).len(), 2);
        assert_eq!(
            cursor.since(now, 3600, 60).to_string(),
            "2026-01-02 03:09:05"
        );
        // The same rows again, plus one recorded late and one new: only those two are taken.
        let mut again = first;
        again.push(row("late", "2026-01-02 03:10:01"));
        again.push(row("c", "2026-01-02 03:10:09"));
        let taken: Vec<String> = cursor
            .admit(again, 60, 100)
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(taken, ["late", "c"]);
        // A capped poll continues from the newest row.
        cursor.admit(vec![row("d", "2026-01-02 03:20:00")], 60, 1);
        assert_eq!(
            cursor.since(now, 3600, 60).to_string(),
            "2026-01-02 03:20:00"
        );
        assert!(
            cursor.seen.keys().all(|k| k == "d"),
            "old ids are forgotten"
        );
        assert!(query(cursor.since(now, 3600, 60), 10).contains(">= '2026-01-02 03:20:00'"));
    }
}
