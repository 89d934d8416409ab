//! Tinybird `.datasource` files: the `SCHEMA >` block (column, ClickHouse type, optional
//! `json:` path and `DEFAULT`), `ENGINE` and `ENGINE_SORTING_KEY`. What only matters to a
//! real ClickHouse (partition keys, TTLs, settings) is read past; engines that change what
//! a query returns (`AggregatingMergeTree`, `ReplacingMergeTree`, ...) are refused.

use std::path::Path;

use crate::clickhouse::ChType;
use crate::clickhouse::catalog::CatalogColumn;
use crate::pipes::PipeLoadError;
use tinybird_contract::names::is_valid_pipe_name;

/// One data source: its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datasource {
    /// The file stem: the table's name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<CatalogColumn>,
    /// `ENGINE_SORTING_KEY` columns (indexed in SQLite).
    pub sorting_key: Vec<String>,
}

/// Engines whose answers a plain table reproduces.
const ENGINES: &[&str] = &["MergeTree", "Null"];

/// Parses a `.datasource` file.
pub fn parse(file: &Path, contents: &str) -> Result<Datasource, PipeLoadError> {
    let error = |line: usize, message: String| PipeLoadError {
        file: file.to_owned(),
        line,
        message,
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if !is_valid_pipe_name(&name) {
        return Err(error(
            0,
            format!("'{name}' is not a valid data source name"),
        ));
    }
    let lines: Vec<&str> = contents.lines().collect();
    let mut columns = Vec::new();
    let mut sorting_key = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let number = i + 1;
        i += 1;
        if line.trim().is_empty()
            || line.trim_start().starts_with('#')
            || line.starts_with([' ', '\t'])
        {
            continue;
        }
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = rest.trim().trim_matches('"');
        match keyword {
            "SCHEMA" => {
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].starts_with([' ', '\t']))
                {
                    let text = lines[i].trim().trim_end_matches(',');
                    i += 1;
                    if text.is_empty() || text.starts_with('#') {
                        continue;
                    }
                    columns.push(column(text).map_err(|m| error(i, m))?);
                }
            }
            "ENGINE" if !ENGINES.contains(&value) => {
                return Err(error(
                    number,
                    format!(
                        "ENGINE \"{value}\" is not supported by the local endpoint (it merges or \
                         aggregates rows in the background); use MergeTree here, or Tinybird Local"
                    ),
                ));
            }
            "ENGINE_SORTING_KEY" => {
                sorting_key = value
                    .trim_start_matches("tuple(")
                    .trim_end_matches(')')
                    .split(',')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
            }
            "KAFKA_CONNECTION_NAME"
            | "IMPORT_SERVICE"
            | "IMPORT_CONNECTION_NAME"
            | "S3_CONNECTION_NAME" => {
                return Err(error(number, "connectors (ingestion) are not supported by the local endpoint: load rows as fixtures".into()));
            }
            // DESCRIPTION, TOKEN, TAGS, ENGINE_PARTITION_KEY, ENGINE_TTL, ...: not needed here.
            _ => {}
        }
    }
    if columns.is_empty() {
        return Err(error(
            0,
            "no SCHEMA found: a data source needs `SCHEMA >` with indented columns".into(),
        ));
    }
    for key in &sorting_key {
        if !columns.iter().any(|c| c.name == *key) {
            return Err(error(
                0,
                format!("ENGINE_SORTING_KEY names {key}, which is not a column"),
            ));
        }
    }
    Ok(Datasource {
        name,
        columns,
        sorting_key,
    })
}

/// One schema line: `` `name` Type `json:$.path` DEFAULT x ``.
fn column(text: &str) -> Result<CatalogColumn, String> {
    let (name, rest) = if let Some(stripped) = text.strip_prefix('`') {
        let end = stripped.find('`').ok_or("unclosed ` in a column name")?;
        (&stripped[..end], &stripped[end + 1..])
    } else {
        text.split_once(char::is_whitespace)
            .ok_or("a column needs a name and a type")?
    };
    let rest = rest.trim();
    // The type runs until a `json:` path, DEFAULT or CODEC, with balanced parentheses.
    let mut depth = 0;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '`' | ' ' if depth == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let type_text = &rest[..end];
    let ty = ChType::parse(type_text).ok_or_else(|| {
        format!("column {name}: type {type_text} is not supported here (integers, floats, String, Date, DateTime, DateTime64, Bool, Array, Nullable, LowCardinality)")
    })?;
    Ok(CatalogColumn {
        name: name.to_owned(),
        ty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_demo_orders() {
        let ds = parse(
            Path::new("orders.datasource"),
            include_str!("../../../../demo/datasources/orders.datasource"),
        )
        .unwrap();
        assert_eq!(ds.name, "orders");
        let types: Vec<String> = ds
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        assert_eq!(types[0], "order_id UInt64");
        assert_eq!(types[2], "ts DateTime");
        assert_eq!(ds.sorting_key, ["org_id", "day", "order_id"]);
    }

    #[test]
    fn refuses_what_it_cannot_honour_with_the_line() {
        let bad_type = "SCHEMA >\n    `a` Decimal(10, 2)\n";
        let err = parse(Path::new("t.datasource"), bad_type).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("Decimal(10, 2)"), "{err}");
        let engine = "SCHEMA >\n    `a` UInt8\n\nENGINE \"AggregatingMergeTree\"\n";
        let err = parse(Path::new("t.datasource"), engine).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.contains("AggregatingMergeTree"), "{err}");
        assert!(parse(Path::new("t.datasource"), "DESCRIPTION >\n    x\n").is_err());
    }
}
