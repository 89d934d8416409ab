//! Rows appended to a data source as Tinybird's NDJSON ingestion reads them (the Events API
//! and NDJSON fixtures; docs/tinybird.md, "Events API"): each column's value is found at its
//! JSONPath (`json:$.a.b`; the column's own name when none is written), a missing or `null`
//! value takes the column's `DEFAULT` (else the type's default, or `NULL` for `Nullable`),
//! and a line that is not a JSON object, or whose value does not fit its column's type, is
//! quarantined: counted, never half-inserted.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::Value as Json;

use super::datasource::{ColumnDefault, Datasource};
use super::fixtures::convert;
use crate::clickhouse::translate::ident;

/// What an append did: Tinybird's `successful_rows` and `quarantined_rows`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    /// Rows written to the data source.
    pub successful_rows: usize,
    /// Rows that did not fit the schema (not written).
    pub quarantined_rows: usize,
}

/// One step of a JSONPath.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Whether the local endpoint reads `path`: `$` then `.key`, `['key']` or `[n]` steps.
pub fn is_supported_jsonpath(path: &str) -> bool {
    steps(path).is_some()
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut rest = path.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            out.push(Step::Key(&after[..end]));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            out.push(Step::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            if after.starts_with("['") {
                rest = after; // `$.['a b']`, as Tinybird writes keys with spaces
                continue;
            }
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            out.push(Step::Key(&after[..end]));
            rest = &after[end..];
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The value at `path` in `row`, if there is one.
fn lookup<'a>(row: &'a Json, path: &str) -> Option<&'a Json> {
    steps(path)?
        .into_iter()
        .try_fold(row, |value, step| match step {
            Step::Key(key) => value.get(key),
            Step::Index(i) => value.get(i),
        })
}

/// One NDJSON line as the values of `ds`'s columns, or why it is quarantined.
pub fn row_values(ds: &Datasource, line: &str, now: DateTime<Utc>) -> Result<Vec<Value>, String> {
    let row: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !row.is_object() {
        return Err("each line must be a JSON object".into());
    }
    ds.columns
        .iter()
        .zip(&ds.ingest)
        .map(|(column, how)| {
            let found = match &how.jsonpath {
                Some(path) => lookup(&row, path),
                None => row.get(&column.name),
            }
            .filter(|v| !v.is_null());
            let default = match (&how.default, found) {
                (Some(ColumnDefault::Value(v)), None) => Some(v.clone()),
                (Some(ColumnDefault::Now), None) => {
                    Some(now.format("%Y-%m-%d %H:%M:%S").to_string().into())
                }
                (Some(ColumnDefault::Today), None) => {
                    Some(now.format("%Y-%m-%d").to_string().into())
                }
                _ => None,
            };
            convert(&column.ty, found.or(default.as_ref()))
                .map_err(|m| format!("{}: {m}", column.name))
        })
        .collect()
}

/// Appends the NDJSON `text` to `ds`'s table on `conn` (inside the caller's transaction):
/// the rows that fit are written, the others counted as quarantined. Blank lines are no rows.
pub fn append(
    conn: &Connection,
    ds: &Datasource,
    text: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<Appended> {
    let names: Vec<String> = ds.columns.iter().map(|c| ident(&c.name)).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        ident(&ds.name),
        names.join(", ")
    );
    let mut done = Appended::default();
    let mut insert = conn.prepare_cached(&sql)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match row_values(ds, line, now) {
            Ok(values) => {
                insert.execute(rusqlite::params_from_iter(values))?;
                done.successful_rows += 1;
            }
            Err(_) => done.quarantined_rows += 1,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::project::datasource;

    const EVENTS: &str = "SCHEMA >\n    `ts` DateTime `json:$.ts`,\n    `tenant` String `json:$.who.tenant`,\n    `path` String `json:$.payload['page path']` DEFAULT '/',\n    `first` UInt32 `json:$.items[0]`,\n    `seen` DateTime `json:$.seen` DEFAULT now(),\n    `note` Nullable(String)\n";

    fn events() -> Datasource {
        datasource::parse(Path::new("events.datasource"), EVENTS).unwrap()
    }

    #[test]
    fn jsonpaths_are_read_step_by_step() {
        assert_eq!(
            steps("$.a.b[2]['c d']"),
            Some(vec![
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(2),
                Step::Key("c d")
            ])
        );
        assert_eq!(steps("$.['a b']"), Some(vec![Step::Key("a b")]));
        for bad in ["a.b", "$", "$.", "$.a[x]", "$.a[*]", "$..a"] {
            assert!(!is_supported_jsonpath(bad), "{bad}");
        }
    }

    #[test]
    fn a_row_takes_its_paths_then_defaults() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .to_utc();
        let line = r#"{"ts":"2026-11-01 10:00:00","who":{"tenant":"acme"},"payload":{"page path":"/docs"},"items":[7,8],"note":"hi"}"#;
        assert_eq!(
            row_values(&events(), line, now).unwrap(),
            [
                Value::Text("2026-11-01 10:00:00".into()),
                Value::Text("acme".into()),
                Value::Text("/docs".into()),
                Value::Integer(7),
                Value::Text("2026-12-07 10:00:00".into()),
                Value::Text("hi".into()),
            ]
        );
        let bare = r#"{"ts":"2026-11-01 10:00:00","payload":null}"#;
        let values = row_values(&events(), bare, now).unwrap();
        assert_eq!(values[1], Value::Text(String::new()));
        assert_eq!(values[2], Value::Text("/".into()));
        assert_eq!(values[3], Value::Integer(0));
        assert_eq!(values[5], Value::Null);
        for bad in [r#"{"ts":"not a time"}"#, "[1]", "{", r#"{"items":["x"]}"#] {
            assert!(row_values(&events(), bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_append_writes_what_fits_and_counts_the_rest() {
        let ds = events();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE events (ts, tenant, path, first, seen, note); \
             CREATE TABLE other (x)",
        )
        .unwrap();
        let text = "{\"ts\":\"2026-11-01 10:00:00\"}\n\n{\"ts\":\"never\"}\nnot json\n{\"ts\":\"2026-11-02\"}\n";
        let done = append(&conn, &ds, text, Utc::now()).unwrap();
        assert_eq!(
            done,
            Appended {
                successful_rows: 2,
                quarantined_rows: 2
            }
        );
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
