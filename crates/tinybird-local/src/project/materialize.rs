//! Materialized views: `TYPE materialized` pipes with `DATASOURCE <target>`, run on every
//! append to the data source they read, as ClickHouse runs a materialized view on each
//! inserted block: the pipe's query over the appended rows only, its result appended to the
//! target (column by name; a target column the query does not give takes its type's
//! default), which runs the target's own materializations in turn. Then each table is merged
//! as its engine says (see `engines`).
//!
//! The source is the first data source the pipe reads `FROM` (Tinybird's rule: the left-most
//! table). While the query runs, a temporary table of the same name holding only the new rows
//! shadows the data source (SQLite resolves unqualified names in `temp` first), so the query
//! is the pipe's own, translated as any pipe is.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::datasource::Datasource;
use super::engines;
use crate::clickhouse::translate::ident;
use crate::clickhouse::{TranslateLimits, Translator};
use crate::pipes::{PipeLoadError, PipeSet, Prepared};
use crate::query::{self, QueryLimits};
use tinybird_contract::params::Params;

/// One materialized view, translated once at load.
#[derive(Debug, Clone)]
pub struct Materialization {
    /// The pipe's name.
    pub name: String,
    /// The data source whose appends trigger it.
    pub source: String,
    /// The data source its rows land in.
    pub target: String,
    /// Its query, as SQLite SQL, with its result columns.
    pub query: Prepared,
}

/// Whether a pipe file is a materialization (`TYPE materialized` on a line of its own).
pub fn is_materialized(contents: &str) -> bool {
    contents.lines().any(is_type_materialized)
}

fn is_type_materialized(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(words.as_slice(), ["TYPE", kind] if kind.trim_matches('"').eq_ignore_ascii_case("materialized"))
}

/// Reads a materialized pipe: its query (rendered without parameters and translated), its
/// source and its target.
pub fn load(
    file: &Path,
    contents: &str,
    datasources: &[Datasource],
    translator: &Translator,
) -> Result<Materialization, PipeLoadError> {
    let error = |message: String| PipeLoadError {
        file: file.to_owned(),
        line: 0,
        message,
    };
    let mut target = None;
    let mut endpoint_text = String::new();
    for line in contents.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["DATASOURCE", name] => target = Some(name.trim_matches('"').to_owned()),
            _ if is_type_materialized(line) => endpoint_text.push_str("TYPE endpoint\n"),
            _ => {
                endpoint_text.push_str(line);
                endpoint_text.push('\n');
            }
        }
    }
    let target = target
        .ok_or_else(|| error("TYPE materialized needs `DATASOURCE <target data source>`".into()))?;
    let Some(target_ds) = datasources.iter().find(|d| d.name == target) else {
        return Err(error(format!(
            "DATASOURCE {target}: no {target}.datasource declares it (or it did not load)"
        )));
    };
    let path = file.display().to_string();
    let (pipes, mut problems) = PipeSet::from_sources(&[(path.as_str(), endpoint_text.as_str())]);
    if let Some(problem) = problems.pop() {
        return Err(problem);
    }
    let pipe = pipes.iter().next().expect("one pipe loaded");
    let rendered = pipe.render(&Params::default()).map_err(|e| {
        error(format!(
            "the materialization cannot render without parameters: {e}"
        ))
    })?;
    let source = rendered
        .nodes
        .iter()
        .map(|(_, sql)| sql.as_str())
        .chain([rendered.endpoint.as_str()])
        .find_map(|sql| first_from(sql, datasources))
        .ok_or_else(|| error("the materialization reads no data source of the project".into()))?;
    let query = rendered
        .translate(translator, &TranslateLimits::default())
        .map_err(|e| error(format!("the materialization's query: {e}")))?;
    for column in query.columns.iter().flatten() {
        if !target_ds.columns.iter().any(|c| c.name == column.name) {
            return Err(error(format!(
                "the query gives a column {}, which {target} does not have",
                column.name
            )));
        }
    }
    Ok(Materialization {
        name: pipe.name.clone(),
        source,
        target,
        query,
    })
}

/// The first data source named right after a `FROM` in `sql`.
fn first_from(sql: &str, datasources: &[Datasource]) -> Option<String> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).find_map(|pair| {
        let name = pair[1].trim_matches('`');
        (pair[0].eq_ignore_ascii_case("FROM") && datasources.iter().any(|d| d.name == name))
            .then(|| name.to_owned())
    })
}

/// After rows with `rowid > since` were appended to `ds`: runs the materializations reading
/// it (and theirs, in turn), then merges its table as its engine says.
pub fn after_append(
    conn: &Connection,
    datasources: &[Datasource],
    views: &[Materialization],
    ds: &str,
    since: i64,
    limits: QueryLimits,
) -> Result<(), String> {
    after_append_at(conn, datasources, views, ds, since, limits, 0)
}

/// Chains deeper than this are cycles (`a` feeds `b` feeds `a`).
const MAX_CHAIN: usize = 16;

fn after_append_at(
    conn: &Connection,
    datasources: &[Datasource],
    views: &[Materialization],
    ds: &str,
    since: i64,
    limits: QueryLimits,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_CHAIN {
        return Err(format!(
            "materialized views chain more than {MAX_CHAIN} deep from {ds}: is there a cycle?"
        ));
    }
    for view in views.iter().filter(|v| v.source == ds) {
        let sql_error = |e: rusqlite::Error| format!("materialization {}: {e}", view.name);
        let source = ident(ds);
        conn.execute(
            &format!("CREATE TEMP TABLE {source} AS SELECT * FROM main.{source} WHERE rowid > ?1"),
            [since],
        )
        .map_err(sql_error)?;
        let target = datasources
            .iter()
            .find(|d| d.name == view.target)
            .ok_or_else(|| format!("materialization {}: no target {}", view.name, view.target))?;
        let target_since = last_rowid(conn, &target.name).map_err(sql_error)?;
        let result = insert(conn, view, target, limits);
        conn.execute_batch(&format!("DROP TABLE temp.{source}"))
            .map_err(sql_error)?;
        result.map_err(sql_error)?;
        after_append_at(
            conn,
            datasources,
            views,
            &target.name,
            target_since,
            limits,
            depth + 1,
        )?;
    }
    if let Some(table) = datasources.iter().find(|d| d.name == ds) {
        engines::merge(conn, table).map_err(|e| format!("merging {ds}: {e}"))?;
    }
    Ok(())
}

fn insert(
    conn: &Connection,
    view: &Materialization,
    target: &Datasource,
    limits: QueryLimits,
) -> rusqlite::Result<()> {
    let given: Vec<&str> = view
        .query
        .columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    let names: Vec<String> = target.columns.iter().map(|c| ident(&c.name)).collect();
    let values: Vec<String> = target
        .columns
        .iter()
        .map(|c| {
            if given.contains(&c.name.as_str()) {
                format!("_tb_view.{}", ident(&c.name))
            } else {
                c.ty.default_sql().to_owned()
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO main.{} ({}) SELECT {} FROM ({}) AS _tb_view",
        ident(&target.name),
        names.join(", "),
        values.join(", "),
        view.query.sql
    );
    // As bounded as a query: the deadline interrupts it, values and functions stay in budget.
    let deadline = std::time::Instant::now() + limits.timeout;
    query::guarded(conn, limits, deadline, || {
        conn.execute(&sql, rusqlite::params_from_iter(view.query.binds.iter()))
            .map(drop)
    })
}

/// The largest rowid of a table (0 when empty): rows appended later have larger ones.
pub fn last_rowid(conn: &Connection, table: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        &format!("SELECT coalesce(max(rowid), 0) FROM main.{}", ident(table)),
        [],
        |r| r.get(0),
    )
}

/// A pipe file: its path and contents.
pub type PipeFile = (PathBuf, String);

/// Splits a project's pipe files into materializations and the pipes to serve.
pub fn split(pipes: &[PipeFile]) -> (Vec<&PipeFile>, Vec<&PipeFile>) {
    pipes
        .iter()
        .partition(|(_, contents)| is_materialized(contents))
}
