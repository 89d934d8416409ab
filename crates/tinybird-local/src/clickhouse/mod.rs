//! ClickHouse SQL on SQLite: what lets Tinybird pipes and `/v0/sql` run offline unchanged.
//!
//! A query is parsed with `sqlparser`'s ClickHouse dialect and re-emitted as SQLite SQL from
//! the AST, node by node, with the ClickHouse type of every expression inferred beside it
//! ([`types`]). Only the nodes this module knows are emitted; anything else is a
//! [`TranslateError::Unsupported`] naming the construct (a 400 for the caller), never a
//! silently different answer. Functions whose meaning differs from SQLite's are SQLite
//! functions registered per connection with ClickHouse's semantics ([`sqlite`]).
//!
//! Layout:
//! - [`translate`]: statements, `WITH`, `SELECT`, `FROM`/joins, `ORDER BY`, `LIMIT [n] BY`;
//! - [`expr`] (names, literals, `CASE`, `CAST`, subqueries) and `operators` (arithmetic,
//!   comparisons, `LIKE`); `from`, `clauses` and `parse` hold the rest of a query;
//! - [`functions`] and [`aggregates`]: the supported ClickHouse functions;
//! - [`catalog`]: the ClickHouse schema of each data source;
//! - [`sqlite`]: the registered SQLite functions.
//!
//! The translator is not a security boundary: its output still runs through the `/v0/sql`
//! sandbox (which only sees SQLite SQL) or on a read-only pipe connection. Schema-qualified
//! names (`main.orders`, `tinybird.pipe_stats_rt`) pass through untouched so the sandbox
//! judges them as before.

pub mod aggregates;
pub mod catalog;
mod clauses;
pub mod emitted;
pub mod expr;
mod from;
pub mod functions;
mod operators;
mod parse;
mod projection;
pub mod sqlite;
pub mod states;
pub mod translate;
pub mod types;

use std::sync::Arc;

pub use catalog::Catalog;
pub use types::ChType;

/// Where to point users when a construct is outside the supported set.
pub const FULL_CLICKHOUSE_HINT: &str = "the local endpoint runs a subset of ClickHouse on SQLite; use Tinybird Local for full ClickHouse";

/// Why a query cannot run here (every variant is a 400 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// Not valid ClickHouse SQL, as far as the parser can tell.
    #[error("syntax error: {0}")]
    Parse(String),
    /// Valid ClickHouse, outside the supported subset.
    #[error("{0} is not supported: {FULL_CLICKHOUSE_HINT}")]
    Unsupported(String),
    /// A query ClickHouse itself would refuse (types, grouping).
    #[error("{0}")]
    Invalid(String),
    /// Past one of the translation limits ([`TranslateLimits`]): too long, too deep, or
    /// too large once aliases are expanded.
    #[error("{0}")]
    TooComplex(String),
    /// The request's deadline passed while translating (a 408, never cached).
    #[error("translating the query took longer than the query's time limit")]
    Timeout,
}

/// How much of a query the translator takes on, with ClickHouse's names and defaults where
/// it has them: every limit here keeps one request from holding a thread (or its stack) for
/// long, so translation stays linear in the query's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslateLimits {
    /// Longest query text, in bytes (ClickHouse's `max_query_size`, 256 KiB).
    pub max_query_size: usize,
    /// Deepest expression nesting (ClickHouse's `max_ast_depth`, 1000).
    pub max_ast_depth: usize,
    /// Most expression nodes translated, counting each use of an alias
    /// (ClickHouse's `max_expanded_ast_elements`, 500,000).
    pub max_expanded_ast_elements: usize,
    /// When the request must have an answer.
    pub deadline: Option<std::time::Instant>,
}

impl Default for TranslateLimits {
    fn default() -> Self {
        Self {
            max_query_size: 256 * 1024,
            max_ast_depth: 1000,
            max_expanded_ast_elements: 500_000,
            deadline: None,
        }
    }
}

impl TranslateError {
    /// Whether the same text can give another answer later (a timeout, or a limit that a
    /// different configuration would pass): such answers are not cached.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            TranslateError::Timeout | TranslateError::TooComplex(_)
        )
    }
}

impl TranslateError {
    /// Valid ClickHouse outside the supported subset: `what` names the construct.
    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        TranslateError::Unsupported(what.into())
    }
}

/// One result column as ClickHouse would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutColumn {
    /// The column's name (alias, or ClickHouse's name for the expression).
    pub name: String,
    /// Its type; `None` when it reads a table outside the catalog (typed from the values).
    pub ty: Option<ChType>,
}

/// A translated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// SQLite SQL; `?N` placeholders keep their source order.
    pub sql: String,
    /// Result columns, when the translator could tell them.
    pub columns: Option<Vec<OutColumn>>,
}

/// Translates queries against one catalog, caching by SQL text: pipes render the same text
/// for most calls (values are bound, not spliced), so most calls skip parsing.
pub struct Translator {
    catalog: Arc<Catalog>,
    cache: quick_cache::sync::Cache<String, Result<Arc<Translated>, TranslateError>>,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator").finish_non_exhaustive()
    }
}

impl Translator {
    /// A translator for `catalog`, caching up to 2,048 distinct queries.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            cache: quick_cache::sync::Cache::new(2048),
        }
    }

    /// The schema it translates against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Translates one query (`/v0/sql`) within the default limits.
    pub fn query(&self, sql: &str) -> Result<Arc<Translated>, TranslateError> {
        self.query_within(sql, &TranslateLimits::default())
    }

    /// Translates one query within `limits`.
    pub fn query_within(
        &self,
        sql: &str,
        limits: &TranslateLimits,
    ) -> Result<Arc<Translated>, TranslateError> {
        self.cached(sql, || {
            translate::translate(&[], sql, &self.catalog, limits)
        })
    }

    /// Translates a pipe within the default limits (see [`Translator::pipe_within`]).
    pub fn pipe(
        &self,
        nodes: &[(&str, &str)],
        endpoint: &str,
    ) -> Result<Arc<Translated>, TranslateError> {
        self.pipe_within(nodes, endpoint, &TranslateLimits::default())
    }

    /// Translates a pipe: `nodes` (name, SQL) are readable by name from later nodes and from
    /// `endpoint`, as Tinybird lets a node read the nodes above it.
    pub fn pipe_within(
        &self,
        nodes: &[(&str, &str)],
        endpoint: &str,
        limits: &TranslateLimits,
    ) -> Result<Arc<Translated>, TranslateError> {
        let key = pipe_key(nodes, endpoint);
        self.cached(&key, || {
            translate::translate(nodes, endpoint, &self.catalog, limits)
        })
    }

    /// A translation already made for `key`, if any (cheap enough for an async task).
    pub fn cached_query(&self, sql: &str) -> Option<Result<Arc<Translated>, TranslateError>> {
        self.cache.get(sql)
    }

    /// A pipe translation already made, if any.
    pub fn cached_pipe(
        &self,
        nodes: &[(&str, &str)],
        endpoint: &str,
    ) -> Option<Result<Arc<Translated>, TranslateError>> {
        self.cache.get(pipe_key(nodes, endpoint).as_str())
    }

    fn cached(
        &self,
        key: &str,
        translate: impl FnOnce() -> Result<Translated, TranslateError>,
    ) -> Result<Arc<Translated>, TranslateError> {
        if let Some(hit) = self.cache.get(key) {
            return hit;
        }
        let result = translate().map(Arc::new);
        if !result.as_ref().is_err_and(TranslateError::is_transient) {
            self.cache.insert(key.to_owned(), result.clone());
        }
        result
    }
}

/// The cache key of a pipe: every node's name and SQL, then the endpoint's SQL.
fn pipe_key(nodes: &[(&str, &str)], endpoint: &str) -> String {
    let mut key = String::new();
    for (name, sql) in nodes {
        key.push_str(name);
        key.push('\u{0}');
        key.push_str(sql);
        key.push('\u{0}');
    }
    key.push_str(endpoint);
    key
}

/// Translates without a cache, within the default limits (tests, fuzzing, benchmarks).
pub fn translate(sql: &str, catalog: &Catalog) -> Result<Translated, TranslateError> {
    translate::translate(&[], sql, catalog, &TranslateLimits::default())
}

#[cfg(test)]
mod tests;
