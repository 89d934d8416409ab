//! Fixture rows (`fixtures/<datasource>.ndjson` or `.csv`) loaded into a data source's
//! table, each value converted to the column's type the way ClickHouse's input formats
//! read it: numbers from text, dates canonicalised, arrays as JSON, missing values as the
//! type's default (or NULL for `Nullable`).

use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::Value as Json;

use super::datasource::Datasource;
use crate::clickhouse::ChType;
use crate::clickhouse::sqlite::dates::parse_datetime;
use crate::clickhouse::translate::ident;

/// Fixture text and its format.
#[derive(Debug, Clone)]
pub enum Fixture {
    /// One JSON object per line.
    Ndjson(String),
    /// CSV; a first row naming the columns is a header.
    Csv(String),
}

/// Why a fixture row could not be loaded: 1-based line and message.
pub type RowError = (usize, String);

/// Inserts every row of `fixture` into `ds`'s table.
pub fn load(conn: &Connection, ds: &Datasource, fixture: &Fixture) -> Result<usize, RowError> {
    let names: Vec<String> = ds.columns.iter().map(|c| ident(&c.name)).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        ident(&ds.name),
        names.join(", ")
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| (0, e.to_string()))?;
    let mut insert = |line: usize, values: Vec<Value>| {
        stmt.execute(rusqlite::params_from_iter(values))
            .map(drop)
            .map_err(|e| (line, e.to_string()))
    };
    let mut count = 0;
    match fixture {
        Fixture::Ndjson(text) => {
            // Read as an Events API append reads rows (JSONPaths, DEFAULTs), but strictly:
            // a fixture row that does not fit is a mistake in the project, named by its line.
            let now = chrono::Utc::now();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let values = super::ingest::row_values(ds, line, now).map_err(|m| (i + 1, m))?;
                insert(i + 1, values)?;
                count += 1;
            }
        }
        Fixture::Csv(text) => {
            let rows = csv_rows(text);
            let header = rows
                .first()
                .is_some_and(|r| r.iter().zip(&ds.columns).all(|(a, c)| *a == c.name));
            for (i, row) in rows.iter().enumerate().skip(usize::from(header)) {
                if row.len() != ds.columns.len() {
                    return Err((
                        i + 1,
                        format!(
                            "{} fields, the schema has {} columns",
                            row.len(),
                            ds.columns.len()
                        ),
                    ));
                }
                let values = ds
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        convert(&c.ty, Some(&Json::String(v.clone())))
                            .map_err(|m| (i + 1, format!("{}: {m}", c.name)))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                insert(i + 1, values)?;
                count += 1;
            }
        }
    }
    Ok(count)
}

/// A JSON value as the SQLite value a column of `ty` stores.
pub fn convert(ty: &ChType, value: Option<&Json>) -> Result<Value, String> {
    let value = match value {
        None | Some(Json::Null) if ty.is_nullable() => return Ok(Value::Null),
        None | Some(Json::Null) => return Ok(default(ty)),
        Some(v) => v,
    };
    let text = || match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match ty.base() {
        ChType::UInt(_) | ChType::Int(_) => match value {
            Json::Number(n) if n.is_i64() || n.is_u64() => {
                Value::Integer(n.as_i64().ok_or("out of range")?)
            }
            Json::Bool(b) => Value::Integer(i64::from(*b)),
            _ => Value::Integer(
                text()
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{}' is not an integer", text()))?,
            ),
        },
        ChType::Bool => match value {
            Json::Bool(b) => Value::Integer(i64::from(*b)),
            _ => Value::Integer(i64::from(matches!(text().as_str(), "1" | "true"))),
        },
        ChType::Float(_) => match value {
            Json::Number(n) => Value::Real(n.as_f64().unwrap_or(0.0)),
            _ => Value::Real(
                text()
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{}' is not a number", text()))?,
            ),
        },
        ChType::Date | ChType::DateTime | ChType::DateTime64(_) => {
            let dt =
                parse_datetime(&text()).ok_or_else(|| format!("'{}' is not a date", text()))?;
            Value::Text(match ty.base() {
                ChType::Date => dt.format("%Y-%m-%d").to_string(),
                ChType::DateTime => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
                _ => dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            })
        }
        ChType::Array(_) => match value {
            Json::Array(_) => Value::Text(value.to_string()),
            _ => {
                let parsed: Json = serde_json::from_str(&text().replace('\'', "\""))
                    .map_err(|_| "not an array".to_owned())?;
                Value::Text(parsed.to_string())
            }
        },
        _ => Value::Text(text()),
    })
}

fn default(ty: &ChType) -> Value {
    match ty.base() {
        ChType::UInt(_) | ChType::Int(_) | ChType::Bool => Value::Integer(0),
        ChType::Float(_) => Value::Real(0.0),
        ChType::Date => Value::Text("1970-01-01".into()),
        ChType::DateTime => Value::Text("1970-01-01 00:00:00".into()),
        ChType::Array(_) => Value::Text("[]".into()),
        _ => Value::Text(String::new()),
    }
}

/// RFC 4180 CSV: quoted fields with doubled quotes, commas and newlines inside quotes.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_like_clickhouse_input_formats() {
        let int = ChType::UInt(32);
        assert_eq!(
            convert(&int, Some(&Json::from("12"))),
            Ok(Value::Integer(12))
        );
        assert!(convert(&int, Some(&Json::from("x"))).is_err());
        assert_eq!(convert(&int, None), Ok(Value::Integer(0)));
        assert_eq!(convert(&int.clone().nullable(), None), Ok(Value::Null));
        assert_eq!(
            convert(&ChType::DateTime, Some(&Json::from("2024-01-02T03:04:05Z"))),
            Ok(Value::Text("2024-01-02 03:04:05".into()))
        );
        assert_eq!(
            convert(
                &ChType::Array(Box::new(ChType::String)),
                Some(&Json::from("['a','b']"))
            ),
            Ok(Value::Text("[\"a\",\"b\"]".into()))
        );
        assert_eq!(
            csv_rows("a,\"b,\"\"c\"\"\"\n1,2\n"),
            [vec!["a", "b,\"c\""], vec!["1", "2"]]
        );
    }
}
