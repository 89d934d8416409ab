//! Table engines that change what a read returns: `ReplacingMergeTree`, `SummingMergeTree`
//! and `AggregatingMergeTree` (with `SimpleAggregateFunction` columns).
//!
//! ClickHouse merges rows with the same sorting key in the background, at a time of its
//! choosing, so a plain read may see rows merged or not, and `FINAL` sees them merged. The
//! local endpoint merges every table completely right after each append (fixtures at load,
//! Events API appends, materialized views): a plain read then gets an answer ClickHouse could
//! give (the one after its merges), and `FINAL` (accepted, and a no-op here) gets exactly
//! ClickHouse's. Merges happen within a partition, so the partition key may only use sorting
//! key columns (then a key is never split across partitions); other partitionings are refused.

use rusqlite::Connection;

use super::datasource::{ColumnSpec, Datasource};
use crate::clickhouse::catalog::CatalogColumn;
use crate::clickhouse::translate::ident;
use crate::clickhouse::{ChType, states};

/// A data source's engine, as its merges treat rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// `MergeTree` and `Null`: rows are kept as written.
    #[default]
    MergeTree,
    /// `ReplacingMergeTree([ver])`: one row per sorting key, the highest `ver` (the last
    /// written among equals, or the last written without `ver`).
    Replacing {
        /// `ENGINE_VER`.
        ver: Option<String>,
    },
    /// `SummingMergeTree([columns])`: one row per sorting key, these columns summed (every
    /// numeric column outside the key when none are named); a row whose sums are all 0 goes.
    Summing {
        /// The summed columns.
        columns: Vec<String>,
    },
    /// `AggregatingMergeTree`: one row per sorting key, each `SimpleAggregateFunction(f, T)`
    /// column combined with `f`.
    Aggregating,
}

/// The engine lines of a `.datasource` file, as written.
#[derive(Debug, Default)]
pub struct EngineSpec {
    /// `ENGINE` with its line.
    pub engine: Option<(usize, String)>,
    /// `ENGINE_VER`.
    pub ver: Option<String>,
    /// `ENGINE_COLUMNS` (a `SummingMergeTree`'s summed columns).
    pub columns: Option<String>,
    /// `ENGINE_PARTITION_KEY`.
    pub partition_key: Option<String>,
}

/// The simple aggregate functions a merge can combine, and how SQLite combines them.
const SIMPLE: &[(&str, &str)] = &[
    ("any", "ch_any"),
    ("anyLast", "ch_any_last"),
    ("min", "min"),
    ("max", "max"),
    ("sum", "sum"),
];

/// Checks the engine lines against the schema.
pub fn build(
    spec: &EngineSpec,
    columns: &[CatalogColumn],
    specs: &[ColumnSpec],
    sorting_key: &[String],
) -> Result<Engine, String> {
    let name = spec
        .engine
        .as_ref()
        .map_or("MergeTree", |(_, n)| n.as_str());
    let column = |c: &str| columns.iter().find(|col| col.name == c);
    let engine = match name {
        "MergeTree" | "Null" => Engine::MergeTree,
        "ReplacingMergeTree" => {
            if let Some(ver) = &spec.ver
                && column(ver).is_none()
            {
                return Err(format!("ENGINE_VER names {ver}, which is not a column"));
            }
            Engine::Replacing {
                ver: spec.ver.clone(),
            }
        }
        "SummingMergeTree" => {
            let summed: Vec<String> = match &spec.columns {
                Some(list) => list
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|c| c.trim().trim_matches('`').to_owned())
                    .filter(|c| !c.is_empty())
                    .collect(),
                None => columns
                    .iter()
                    .filter(|c| c.ty.is_number() && !sorting_key.contains(&c.name))
                    .map(|c| c.name.clone())
                    .collect(),
            };
            for c in &summed {
                if !column(c).is_some_and(|col| col.ty.is_number()) {
                    return Err(format!(
                        "ENGINE_COLUMNS names {c}, which is not a numeric column"
                    ));
                }
            }
            Engine::Summing { columns: summed }
        }
        "AggregatingMergeTree" => Engine::Aggregating,
        other => {
            return Err(format!(
                "ENGINE \"{other}\" is not supported by the local endpoint (it collapses rows \
                 in the background); use MergeTree, ReplacingMergeTree, SummingMergeTree or \
                 AggregatingMergeTree here, or Tinybird Local"
            ));
        }
    };
    for (col, how) in columns.iter().zip(specs) {
        if let Some(f) = &how.simple_aggregate {
            if !SIMPLE.iter().any(|(name, _)| name == f) {
                return Err(format!(
                    "column {}: SimpleAggregateFunction({f}, ...) is not supported here (any, anyLast, min, max, sum)",
                    col.name
                ));
            }
            if engine != Engine::Aggregating {
                return Err(format!(
                    "column {}: SimpleAggregateFunction columns need ENGINE \"AggregatingMergeTree\"",
                    col.name
                ));
            }
        }
        if how.aggregate_state.is_some() && engine != Engine::Aggregating {
            return Err(format!(
                "column {}: AggregateFunction columns need ENGINE \"AggregatingMergeTree\"",
                col.name
            ));
        }
    }
    if engine != Engine::MergeTree
        && let Some(key) = &spec.partition_key
    {
        let outside: Vec<&str> = columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !sorting_key.iter().any(|k| k == c) && mentions(key, c))
            .collect();
        if !outside.is_empty() {
            return Err(format!(
                "ENGINE_PARTITION_KEY uses {}, which is not in ENGINE_SORTING_KEY: the local \
                 endpoint merges by sorting key, so partition by sorting key columns only",
                outside.join(", ")
            ));
        }
    }
    Ok(engine)
}

fn mentions(expr: &str, column: &str) -> bool {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == column)
}

/// Merges `ds`'s table completely, as ClickHouse's merges would leave it.
pub fn merge(conn: &Connection, ds: &Datasource) -> rusqlite::Result<()> {
    let table = ident(&ds.name);
    let key: Vec<String> = ds.sorting_key.iter().map(|k| ident(k)).collect();
    let partition = if key.is_empty() {
        String::new()
    } else {
        format!("PARTITION BY {}", key.join(", "))
    };
    match &ds.engine {
        Engine::MergeTree => Ok(()),
        Engine::Replacing { ver } => {
            let order = match ver {
                Some(v) => format!("{} DESC, rowid DESC", ident(v)),
                None => "rowid DESC".to_owned(),
            };
            conn.execute_batch(&format!(
                "DELETE FROM main.{table} WHERE rowid NOT IN (SELECT r FROM (SELECT rowid AS r, \
                 row_number() OVER ({partition} ORDER BY {order}) AS n FROM main.{table}) WHERE n = 1)"
            ))
        }
        Engine::Summing { columns } => {
            let combine = |c: &CatalogColumn, _: &ColumnSpec| {
                if !columns.contains(&c.name) {
                    return None;
                }
                let func = if matches!(c.ty.base(), ChType::Float(_)) {
                    "total"
                } else {
                    "sum"
                };
                Some(format!("{func}({})", ident(&c.name)))
            };
            regroup(conn, ds, &key, combine)?;
            if columns.is_empty() {
                return Ok(());
            }
            let zero: Vec<String> = columns
                .iter()
                .map(|c| format!("{} = 0", ident(c)))
                .collect();
            conn.execute_batch(&format!(
                "DELETE FROM main.{table} WHERE {}",
                zero.join(" AND ")
            ))
        }
        Engine::Aggregating => regroup(conn, ds, &key, |c, how| {
            if let Some(f) = how.aggregate_state.as_deref() {
                let name = ident(&c.name);
                return Some(match f {
                    "count" | "sum" if matches!(c.ty.base(), ChType::Float(_)) => {
                        format!("total({name})")
                    }
                    "count" | "sum" => format!("sum({name})"),
                    "min" | "max" => format!("{f}({name})"),
                    _ => states::uniq_union(&name),
                });
            }
            let f = how.simple_aggregate.as_deref()?;
            let (_, sqlite) = SIMPLE.iter().find(|(name, _)| *name == f)?;
            let sqlite = match (*sqlite, c.ty.base()) {
                ("sum", ChType::Float(_)) => "total",
                (other, _) => other,
            };
            Some(format!("{sqlite}({})", ident(&c.name)))
        }),
    }
}

/// Replaces the rows of `ds` by one row per `key`: each column combined as `combine` says,
/// else any of the group's values (ClickHouse keeps an arbitrary one too).
fn regroup(
    conn: &Connection,
    ds: &Datasource,
    key: &[String],
    combine: impl Fn(&CatalogColumn, &ColumnSpec) -> Option<String>,
) -> rusqlite::Result<()> {
    let table = ident(&ds.name);
    let names: Vec<String> = ds.columns.iter().map(|c| ident(&c.name)).collect();
    let exprs: Vec<String> = ds
        .columns
        .iter()
        .zip(&ds.ingest)
        .map(|(c, how)| {
            let name = ident(&c.name);
            let expr = if key.contains(&name) {
                name.clone()
            } else {
                combine(c, how).unwrap_or_else(|| format!("ch_any({name})"))
            };
            format!("{expr} AS {name}")
        })
        .collect();
    let group = if key.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", key.join(", "))
    };
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE _tb_merged AS SELECT {} FROM main.{table}{group}; \
         DELETE FROM main.{table}; \
         INSERT INTO main.{table} ({cols}) SELECT {cols} FROM temp._tb_merged; \
         DROP TABLE temp._tb_merged;",
        exprs.join(", "),
        cols = names.join(", ")
    ))
}
