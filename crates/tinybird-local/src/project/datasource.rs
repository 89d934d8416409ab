//! Tinybird `.datasource` files: the `SCHEMA >` block (column, ClickHouse type, optional
//! `json:` path and `DEFAULT`, which NDJSON appends use: see `ingest`), `ENGINE` and
//! `ENGINE_SORTING_KEY`, with the engine lines (`ENGINE_VER`, `ENGINE_COLUMNS`,
//! `ENGINE_PARTITION_KEY`) checked by `engines`. What only matters to a real ClickHouse
//! (TTLs, settings) is read past; engines the local endpoint cannot merge are refused.

use std::path::Path;

use super::engines::{self, Engine, EngineSpec};
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
    /// How NDJSON rows fill each column and how merges combine it, in `columns`' order.
    pub ingest: Vec<ColumnSpec>,
    /// The table engine, whose merges `engines::merge` applies after every append.
    pub engine: Engine,
}

/// What a schema line says about a column beyond its name and type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The `json:$.a.b` path (the column's name, `$.<name>`, when none is written).
    pub jsonpath: Option<String>,
    /// The `DEFAULT` when the row has no value there (else the type's default).
    pub default: Option<ColumnDefault>,
    /// `f` of a `SimpleAggregateFunction(f, T)` column (stored as `T`): how an
    /// `AggregatingMergeTree` merge combines it.
    pub simple_aggregate: Option<String>,
    /// `f` of an `AggregateFunction(f, T)` column: its values are `f`'s states (see
    /// `clickhouse::states`), combined by merges as `fMergeState` does.
    pub aggregate_state: Option<String>,
}

/// A column's `DEFAULT`: the literals and clock functions the local endpoint evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDefault {
    /// A literal (`DEFAULT '/'`, `DEFAULT 0`, `DEFAULT []`), as the JSON value it reads as.
    Value(serde_json::Value),
    /// `DEFAULT now()`: the append's time.
    Now,
    /// `DEFAULT today()`: the append's date.
    Today,
}

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
    let mut ingest = Vec::new();
    let mut sorting_key = Vec::new();
    let mut spec = EngineSpec::default();
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
                    let (col, how) = column(text).map_err(|m| error(i, m))?;
                    columns.push(col);
                    ingest.push(how);
                }
            }
            "ENGINE" => spec.engine = Some((number, value.to_owned())),
            "ENGINE_VER" => spec.ver = Some(value.to_owned()),
            "ENGINE_COLUMNS" => spec.columns = Some(value.to_owned()),
            "ENGINE_PARTITION_KEY" => spec.partition_key = Some(value.to_owned()),
            "ENGINE_IS_DELETED" | "ENGINE_SIGN" | "ENGINE_VERSION" => {
                return Err(error(
                    number,
                    format!(
                        "{keyword} is not supported by the local endpoint (rows deleted or collapsed on merge); use Tinybird Local"
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
    let engine = engines::build(&spec, &columns, &ingest, &sorting_key)
        .map_err(|m| error(spec.engine.as_ref().map_or(0, |(line, _)| *line), m))?;
    Ok(Datasource {
        name,
        columns,
        sorting_key,
        ingest,
        engine,
    })
}

/// One schema line: `` `name` Type `json:$.path` DEFAULT x ``.
fn column(text: &str) -> Result<(CatalogColumn, ColumnSpec), String> {
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
    let mut type_text = &rest[..end];
    let mut how = ColumnSpec::default();
    if let Some(inner) = type_text
        .strip_prefix("SimpleAggregateFunction(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let (func, inner) = inner.split_once(',').ok_or_else(|| {
            format!("column {name}: write SimpleAggregateFunction(function, Type)")
        })?;
        how.simple_aggregate = Some(func.trim().to_owned());
        type_text = inner.trim();
    }
    let ty = if let Some(inner) = type_text
        .strip_prefix("AggregateFunction(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let (func, arg) = inner.split_once(',').unwrap_or((inner, ""));
        let func = func.trim();
        how.aggregate_state = Some(func.to_owned());
        state_type(func, ChType::parse(arg.trim())).ok_or_else(|| {
            format!("column {name}: type {type_text} is not supported here (AggregateFunction of uniq, count, sum, min or max)")
        })?
    } else {
        ChType::parse(type_text).ok_or_else(|| {
            format!("column {name}: type {type_text} is not supported here (integers, floats, String, Date, DateTime, DateTime64, Bool, Array, Nullable, LowCardinality, SimpleAggregateFunction, AggregateFunction)")
        })?
    };
    let mut rest = rest[end..].trim();
    if let Some(after) = rest.strip_prefix("`json:") {
        let close = after.find('`').ok_or("unclosed ` after json:")?;
        let path = &after[..close];
        if !super::ingest::is_supported_jsonpath(path) {
            return Err(format!(
                "column {name}: JSONPath {path} is not supported here (write $.a.b, $.a[0] or $.['a b'])"
            ));
        }
        how.jsonpath = Some(path.to_owned());
        rest = after[close + 1..].trim();
    }
    if let Some(expr) = strip_keyword(rest, "DEFAULT") {
        let expr = expr.split(" CODEC").next().unwrap_or(expr).trim();
        how.default = Some(default(expr).ok_or_else(|| {
            format!(
                "column {name}: DEFAULT {expr} is not supported here (a literal, now() or today())"
            )
        })?);
    } else if strip_keyword(rest, "MATERIALIZED").is_some()
        || strip_keyword(rest, "ALIAS").is_some()
    {
        return Err(format!(
            "column {name}: MATERIALIZED and ALIAS columns are not supported here"
        ));
    }
    Ok((
        CatalogColumn {
            name: name.to_owned(),
            ty,
        },
        how,
    ))
}

/// How an `AggregateFunction(f, T)` state is stored: what `clickhouse::states` writes for
/// `fState` (the distinct values as JSON text for `uniq`, the total or the value otherwise).
fn state_type(func: &str, arg: Option<ChType>) -> Option<ChType> {
    Some(match (func, arg) {
        (f, _) if crate::clickhouse::states::UNIQ.contains(&f) => ChType::String,
        ("count", _) => ChType::UInt(64),
        ("sum", Some(t)) => match t.base() {
            ChType::UInt(_) | ChType::Bool => ChType::UInt(64),
            ChType::Int(_) => ChType::Int(64),
            _ => ChType::Float(64),
        },
        ("min" | "max", Some(t)) => t,
        _ => return None,
    })
}

fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    (head.eq_ignore_ascii_case(keyword) && text[keyword.len()..].starts_with(' '))
        .then(|| text[keyword.len()..].trim())
}

/// A `DEFAULT` expression the endpoint evaluates: a number, a quoted string, `[]`, `true`,
/// `false`, `now()`, `today()`.
fn default(expr: &str) -> Option<ColumnDefault> {
    match expr.to_ascii_lowercase().as_str() {
        "now()" => return Some(ColumnDefault::Now),
        "today()" => return Some(ColumnDefault::Today),
        _ => {}
    }
    if let Some(inner) = expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
        if inner.contains(['\'', '\\']) {
            return None;
        }
        return Some(ColumnDefault::Value(inner.into()));
    }
    match serde_json::from_str::<serde_json::Value>(expr).ok()? {
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
            Some(ColumnDefault::Value(v))
        }
        serde_json::Value::Array(a) if a.is_empty() => Some(ColumnDefault::Value(a.into())),
        _ => None,
    }
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
        let engine = "SCHEMA >\n    `a` UInt8\n\nENGINE \"CollapsingMergeTree\"\n";
        let err = parse(Path::new("t.datasource"), engine).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.contains("CollapsingMergeTree"), "{err}");
        let partition = "SCHEMA >\n    `a` UInt8\n    `d` Date\n\nENGINE \"ReplacingMergeTree\"\n\
                         ENGINE_SORTING_KEY \"a\"\nENGINE_PARTITION_KEY \"toYYYYMM(d)\"\n";
        let err = parse(Path::new("t.datasource"), partition).unwrap_err();
        assert!(err.message.contains("uses d"), "{err}");
        let simple = "SCHEMA >\n    `a` SimpleAggregateFunction(any, String)\n";
        let err = parse(Path::new("t.datasource"), simple).unwrap_err();
        assert!(err.message.contains("need ENGINE"), "{err}");
        let default = "SCHEMA >\n    `a` String `json:$.a` DEFAULT lower('X')\n";
        let err = parse(Path::new("t.datasource"), default).unwrap_err();
        assert!(err.message.contains("DEFAULT lower('X')"), "{err}");
        assert!(parse(Path::new("t.datasource"), "DESCRIPTION >\n    x\n").is_err());
    }
}
