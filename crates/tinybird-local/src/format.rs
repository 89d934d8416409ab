//! Output formats of a pipe call: Tinybird's JSON envelope, CSV and NDJSON.
//!
//! ClickHouse quotes 64-bit integers in JSON by default (`output_format_json_quote_64bit_integers`),
//! and so does Tinybird, so `Int64`/`UInt64` values are JSON strings unless the request turns
//! it off; narrower integers are numbers. Each value is written as its column's ClickHouse type
//! says: `Bool` as `true`/`false`, arrays (stored as JSON text) as arrays, a `Float64` holding
//! an integral value as a float, NaN and infinities as `null`.

use rusqlite::types::Value;
use serde_json::{Map, Value as Json, json};

use super::clickhouse::ChType;
use super::clickhouse::sqlite::convert::to_string;
use super::query::QueryOutput;

/// A supported output format, from the path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"meta", "data", "rows", ...}`.
    Json,
    /// CSV with a header row of column names.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    /// Parses an extension; `None` for anything unsupported.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "json" => Some(Self::Json),
            "csv" | "csvwithnames" => Some(Self::Csv),
            "ndjson" => Some(Self::Ndjson),
            _ => None,
        }
    }

    /// The `Content-Type` Tinybird answers with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// Extensions that Tinybird has but this endpoint does not (a clear 400, not a 404).
pub const KNOWN_UNSUPPORTED: &[&str] = &["parquet", "prometheus"];

/// Renders a result in `format`.
pub fn render(out: &QueryOutput, format: Format, quote_64bit: bool) -> String {
    match format {
        Format::Json => json_body(out, quote_64bit).to_string(),
        Format::Ndjson => {
            let mut body = String::new();
            for row in &out.rows {
                body.push_str(&Json::Object(row_object(out, row, quote_64bit)).to_string());
                body.push('\n');
            }
            body
        }
        Format::Csv => {
            let mut body = String::new();
            let header: Vec<String> = out.columns.iter().map(|c| csv_field(&c.name)).collect();
            body.push_str(&header.join(","));
            body.push('\n');
            let types = types(out);
            for row in &out.rows {
                let fields: Vec<String> = row
                    .iter()
                    .zip(&types)
                    .map(|(v, ty)| match v {
                        Value::Null => String::new(),
                        Value::Real(f) if ty.as_ref().is_some_and(ChType::is_integer) => {
                            (*f as i64).to_string()
                        }
                        Value::Integer(_) | Value::Real(_) | Value::Text(_) => {
                            let hint = ty
                                .as_ref()
                                .map(|t| t.base().to_string())
                                .unwrap_or_default();
                            let text = to_string(v.into(), &hint).unwrap_or_default();
                            if matches!(v, Value::Text(_)) {
                                csv_field(&text)
                            } else {
                                text
                            }
                        }
                        Value::Blob(b) => csv_field(&String::from_utf8_lossy(b)),
                    })
                    .collect();
                body.push_str(&fields.join(","));
                body.push('\n');
            }
            body
        }
    }
}

fn json_body(out: &QueryOutput, quote_64bit: bool) -> Json {
    let meta: Vec<Json> = out
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.ty}))
        .collect();
    let data: Vec<Json> = out
        .rows
        .iter()
        .map(|r| Json::Object(row_object(out, r, quote_64bit)))
        .collect();
    json!({
        "meta": meta,
        "data": data,
        "rows": out.rows.len(),
        // SQLite does not count rows cut by LIMIT; the returned count is the honest lower bound.
        "rows_before_limit_at_least": out.rows.len(),
        "statistics": {
            "elapsed": out.elapsed.as_secs_f64(),
            "rows_read": out.rows_read,
            "bytes_read": out.bytes_read,
        }
    })
}

/// The ClickHouse type of each column, when its name parses.
fn types(out: &QueryOutput) -> Vec<Option<ChType>> {
    out.columns.iter().map(|c| ChType::parse(&c.ty)).collect()
}

fn row_object(out: &QueryOutput, row: &[Value], quote_64bit: bool) -> Map<String, Json> {
    out.columns
        .iter()
        .zip(types(out))
        .zip(row)
        .map(|((c, ty), v)| (c.name.clone(), json_value(v, ty.as_ref(), quote_64bit)))
        .collect()
}

/// One value as ClickHouse's JSON output writes a value of type `ty`.
fn json_value(v: &Value, ty: Option<&ChType>, quote_64bit: bool) -> Json {
    let base = ty.map(ChType::base);
    let quote = quote_64bit && ty.is_none_or(ChType::is_64bit_integer);
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) if base == Some(&ChType::Bool) => Json::Bool(*i != 0),
        Value::Integer(i) if base.is_some_and(|t| matches!(t, ChType::Float(_))) => {
            json!(*i as f64)
        }
        Value::Integer(i) if quote => Json::String(i.to_string()),
        Value::Integer(i) => json!(i),
        Value::Real(f) if base.is_some_and(ChType::is_integer) => {
            json_value(&Value::Integer(*f as i64), ty, quote_64bit)
        }
        Value::Real(f) if !f.is_finite() => Json::Null,
        Value::Real(f) => json!(f),
        Value::Text(s) => match base {
            Some(ChType::Array(inner)) => match serde_json::from_str::<Json>(s) {
                Ok(Json::Array(items)) => Json::Array(
                    items
                        .iter()
                        .map(|item| {
                            let value: Value = super::clickhouse::sqlite::arrays::to_sql(item);
                            json_value(&value, Some(inner), quote_64bit)
                        })
                        .collect(),
                ),
                _ => Json::String(s.clone()),
            },
            _ => Json::String(s.clone()),
        },
        Value::Blob(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Column;
    use std::time::Duration;

    fn out() -> QueryOutput {
        QueryOutput {
            columns: vec![
                Column {
                    name: "org".into(),
                    ty: "String".into(),
                },
                Column {
                    name: "n".into(),
                    ty: "Int64".into(),
                },
            ],
            rows: vec![vec![Value::Text("a,\"b\"".into()), Value::Integer(3)]],
            rows_read: 10,
            bytes_read: 20,
            elapsed: Duration::from_millis(2),
        }
    }

    #[test]
    fn json_is_tinybird_shaped_with_quoted_int64() {
        let body: Json = serde_json::from_str(&render(&out(), Format::Json, true)).unwrap();
        assert_eq!(
            body["meta"],
            json!([{"name": "org", "type": "String"}, {"name": "n", "type": "Int64"}])
        );
        assert_eq!(body["data"], json!([{"org": "a,\"b\"", "n": "3"}]));
        assert_eq!(body["rows"], 1);
        assert_eq!(body["rows_before_limit_at_least"], 1);
        assert_eq!(body["statistics"]["rows_read"], 10);
        assert_eq!(body["statistics"]["elapsed"], 0.002);
        let unquoted: Json = serde_json::from_str(&render(&out(), Format::Json, false)).unwrap();
        assert_eq!(unquoted["data"][0]["n"], 3);
    }

    #[test]
    fn csv_and_ndjson() {
        assert_eq!(
            render(&out(), Format::Csv, true),
            "org,n\n\"a,\"\"b\"\"\",3\n"
        );
        assert_eq!(
            render(&out(), Format::Ndjson, true),
            "{\"org\":\"a,\\\"b\\\"\",\"n\":\"3\"}\n"
        );
        assert_eq!(Format::from_extension("parquet"), None);
    }
}
