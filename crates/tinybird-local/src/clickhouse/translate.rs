//! Statements and queries: `WITH`, `SELECT`, `FROM` and joins, `GROUP BY`, `ORDER BY`,
//! `LIMIT offset, n`, `LIMIT n BY`, `SETTINGS` (ignored) and `FORMAT` (cut before this runs).
//!
//! ClickHouse's scoping is kept: a `SELECT` alias is visible in every clause of its query
//! (it is expanded where used, as ClickHouse does), a non-aggregated column must be grouped,
//! and `NULL`s sort last. `LIMIT n BY` becomes a `row_number()` window.
//!
//! One deliberate difference: outer joins answer as ClickHouse does with `join_use_nulls =
//! 1` (an unmatched row's columns are `NULL`, typed `Nullable`), not with its default of the
//! type's default value (`0`, `''`). A row-filtered tenant's unmatched row must never look
//! like a row with a real (empty) tenant id; the `/v0/sql` isolation suite relies on it.
//! `SETTINGS join_use_nulls = 0` is refused rather than silently ignored.

use sqlparser::ast::{
    Distinct, GroupByExpr, LimitClause, OrderBy, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier,
};

pub use super::parse::number_placeholders;
use super::parse::parse;
use super::types::ChType;
use super::{Catalog, OutColumn, TranslateError, TranslateLimits, Translated};

/// A type the translator may not know (a table outside the catalog).
pub type Ty = Option<ChType>;
/// Columns of a relation, when known.
pub type Columns = Option<Vec<(String, Ty)>>;

/// Upper bound on the elements `arrayJoin` expands per row (a numbers series joins them).
pub const ARRAY_JOIN_MAX: usize = 10_000;

pub(super) fn unsupported(what: impl Into<String>) -> TranslateError {
    TranslateError::unsupported(what)
}

/// A `FROM` item visible to expressions.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name expressions qualify it with (alias, else table name).
    pub name: String,
    /// Its columns, when known.
    pub columns: Columns,
    /// Whether an outer join may leave it unmatched (defaults fill its columns).
    pub outer: bool,
}

/// One `SELECT`'s scope.
#[derive(Debug, Default)]
pub struct Level {
    /// The `FROM` items.
    pub sources: Vec<Source>,
    /// `SELECT` aliases and their expressions (ClickHouse lets every clause use them).
    pub aliases: Vec<(String, sqlparser::ast::Expr)>,
    /// Aliases being expanded: inside its own definition a name means the column.
    pub expanding: Vec<String>,
    /// SQL of the `GROUP BY` keys (bare and parenthesised).
    pub group_keys: Vec<String>,
    /// Emitting a join's `ON`: columns are the stored ones, not defaults.
    pub in_on: bool,
    /// Array arguments of `arrayJoin` calls, by join number.
    pub array_joins: Vec<String>,
}

/// Translation state of one statement.
pub struct Ctx<'a> {
    /// The data sources.
    pub catalog: &'a Catalog,
    /// CTE frames, innermost last: name to columns.
    pub ctes: Vec<Vec<(String, Columns)>>,
    /// `SELECT` scopes, innermost last.
    pub levels: Vec<Level>,
    /// Counter for generated subquery aliases.
    pub generated: usize,
    /// Depth, node and time limits.
    pub limits: TranslateLimits,
    /// Expressions being translated now, outermost first (the depth of the recursion).
    pub depth: usize,
    /// Expression nodes translated so far, each alias use counted again.
    pub steps: usize,
}

/// Quotes an identifier for SQLite with backticks: unlike double quotes, an unknown
/// backticked name is an error, never a string literal.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Translates `endpoint`, with `nodes` readable by name (pipe nodes become CTEs), within
/// `limits`. Recursive: run it where the stack fits `limits.max_ast_depth` (see
/// `local::offload`).
pub fn translate(
    nodes: &[(&str, &str)],
    endpoint: &str,
    catalog: &Catalog,
    limits: &TranslateLimits,
) -> Result<Translated, TranslateError> {
    let size = endpoint.len() + nodes.iter().map(|(_, sql)| sql.len()).sum::<usize>();
    if size > limits.max_query_size {
        return Err(TranslateError::TooComplex(format!(
            "the query is {size} bytes, over the limit of {} bytes (max_query_size): shorten it",
            limits.max_query_size
        )));
    }
    let mut ctx = Ctx {
        catalog,
        ctes: vec![Vec::new()],
        levels: Vec::new(),
        generated: 0,
        limits: *limits,
        depth: 0,
        steps: 0,
    };
    let mut withs = Vec::new();
    let mut offset = 0;
    for (name, sql) in nodes {
        let (numbered, count) = number_placeholders(sql, offset);
        offset += count;
        let query = parse(&numbered, limits.max_ast_depth)?;
        let (text, columns) = ctx.query(&query)?;
        withs.push(format!("{} AS ({text})", ident(name)));
        ctx.ctes[0].push(((*name).to_owned(), columns));
    }
    let (numbered, _) = number_placeholders(endpoint, offset);
    let query = parse(&numbered, limits.max_ast_depth)?;
    let (text, columns) = ctx.query(&query)?;
    let sql = if withs.is_empty() {
        text
    } else if let Some(rest) = text.strip_prefix("WITH RECURSIVE ") {
        format!("WITH RECURSIVE {}, {rest}", withs.join(", "))
    } else if let Some(rest) = text.strip_prefix("WITH ") {
        format!("WITH {}, {rest}", withs.join(", "))
    } else {
        format!("WITH {} {text}", withs.join(", "))
    };
    let columns = columns.map(|cols| {
        cols.into_iter()
            .map(|(name, ty)| OutColumn { name, ty })
            .collect()
    });
    Ok(Translated { sql, columns })
}

impl Ctx<'_> {
    /// Translates a query; returns its SQL and its columns.
    pub fn query(&mut self, query: &Query) -> Result<(String, Columns), TranslateError> {
        if query.fetch.is_some() || !query.locks.is_empty() || query.for_clause.is_some() {
            return Err(unsupported("FETCH, FOR and locking clauses"));
        }
        if !query.pipe_operators.is_empty() {
            return Err(unsupported("pipe operators"));
        }
        // SETTINGS tune ClickHouse's execution, not the answer: accepted and ignored, except
        // one that would change the answer. A FORMAT clause was cut by the caller.
        for setting in query.settings.iter().flatten() {
            let value = setting.value.to_string();
            if setting.key.value == "join_use_nulls" && value != "1" {
                return Err(unsupported(
                    "SETTINGS join_use_nulls = 0 (outer joins here give NULL, as with join_use_nulls = 1)",
                ));
            }
        }
        let mut prefix = String::new();
        self.ctes.push(Vec::new());
        let result = (|| {
            if let Some(with) = &query.with {
                let mut parts = Vec::new();
                for cte in &with.cte_tables {
                    let name = cte.alias.name.value.clone();
                    let declared: Vec<String> = cte
                        .alias
                        .columns
                        .iter()
                        .map(|c| c.name.value.clone())
                        .collect();
                    if with.recursive {
                        let columns = (!declared.is_empty())
                            .then(|| declared.iter().map(|c| (c.clone(), None)).collect());
                        self.ctes
                            .last_mut()
                            .expect("frame")
                            .push((name.clone(), columns));
                    }
                    let (sql, mut columns) = self.query(&cte.query)?;
                    if !declared.is_empty() {
                        columns = Some(match columns {
                            Some(cols) if cols.len() == declared.len() => declared
                                .iter()
                                .zip(cols)
                                .map(|(n, (_, ty))| (n.clone(), ty))
                                .collect(),
                            _ => declared.iter().map(|c| (c.clone(), None)).collect(),
                        });
                    }
                    let list = if declared.is_empty() {
                        String::new()
                    } else {
                        let names: Vec<String> = declared.iter().map(|c| ident(c)).collect();
                        format!("({})", names.join(", "))
                    };
                    parts.push(format!("{}{list} AS ({sql})", ident(&name)));
                    let frame = self.ctes.last_mut().expect("frame");
                    frame.retain(|(n, _)| *n != name);
                    frame.push((name, columns));
                }
                let recursive = if with.recursive { "RECURSIVE " } else { "" };
                prefix = format!("WITH {recursive}{} ", parts.join(", "));
            }
            match query.body.as_ref() {
                SetExpr::Select(select) => {
                    self.select(select, query.order_by.as_ref(), query.limit_clause.as_ref())
                }
                body => {
                    if query.order_by.is_some() || query.limit_clause.is_some() {
                        return Err(unsupported(
                            "ORDER BY or LIMIT after UNION (ClickHouse applies them to the \
                             last SELECT only): wrap the UNION in a subquery and order that",
                        ));
                    }
                    self.set_expr(body)
                }
            }
        })();
        self.ctes.pop();
        let (sql, columns) = result?;
        Ok((format!("{prefix}{sql}"), columns))
    }

    fn set_expr(&mut self, body: &SetExpr) -> Result<(String, Columns), TranslateError> {
        match body {
            SetExpr::Select(select) => self.select(select, None, None),
            SetExpr::Query(query) => {
                let (sql, columns) = self.query(query)?;
                Ok((format!("SELECT * FROM ({sql})"), columns))
            }
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let (l, lc) = self.set_expr(left)?;
                let (r, rc) = self.set_expr(right)?;
                let op = match (op, set_quantifier) {
                    (SetOperator::Union, SetQuantifier::All) => "UNION ALL",
                    (SetOperator::Union, SetQuantifier::None | SetQuantifier::Distinct) => "UNION",
                    (SetOperator::Except, SetQuantifier::None | SetQuantifier::Distinct) => {
                        "EXCEPT"
                    }
                    (SetOperator::Intersect, SetQuantifier::None | SetQuantifier::Distinct) => {
                        "INTERSECT"
                    }
                    (op, q) => return Err(unsupported(format!("{op} {q}"))),
                };
                let columns = match (lc, rc) {
                    (Some(l), Some(r)) if l.len() == r.len() => Some(
                        l.into_iter()
                            .zip(r)
                            .map(|((name, a), (_, b))| {
                                let ty = match (a, b) {
                                    (Some(a), Some(b)) => super::types::common(&[&a, &b]),
                                    _ => None,
                                };
                                (name, ty)
                            })
                            .collect(),
                    ),
                    _ => None,
                };
                Ok((format!("{l} {op} {r}"), columns))
            }
            SetExpr::Values(_) => Err(unsupported("VALUES")),
            other => Err(unsupported(format!(
                "the statement {}",
                other.to_string().chars().take(40).collect::<String>()
            ))),
        }
    }

    /// The innermost `SELECT` scope.
    pub fn level(&mut self) -> &mut Level {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        self.levels.last_mut().expect("a level")
    }

    fn select(
        &mut self,
        select: &Select,
        order_by: Option<&OrderBy>,
        limit: Option<&LimitClause>,
    ) -> Result<(String, Columns), TranslateError> {
        self.levels.push(Level::default());
        let result = self.select_inner(select, order_by, limit);
        self.levels.pop();
        result
    }

    fn select_inner(
        &mut self,
        select: &Select,
        order_by: Option<&OrderBy>,
        limit: Option<&LimitClause>,
    ) -> Result<(String, Columns), TranslateError> {
        refuse_select_extras(select)?;
        let from = self.from(&select.from)?;
        for item in &select.projection {
            if let SelectItem::ExprWithAlias { expr, alias } = item {
                self.level()
                    .aliases
                    .push((alias.value.clone(), expr.clone()));
            }
        }
        let mut clauses = String::new();
        let wheres: Vec<&sqlparser::ast::Expr> = select
            .prewhere
            .iter()
            .chain(select.selection.iter())
            .collect();
        let mut where_sql = Vec::new();
        for w in wheres {
            where_sql.push(self.expr(w)?.sql);
        }
        let group = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(unsupported(
                        "GROUP BY modifiers (WITH TOTALS, ROLLUP, CUBE)",
                    ));
                }
                let mut keys = Vec::new();
                for e in exprs {
                    let e = self.positional(e, &select.projection)?;
                    keys.push(self.expr(&e)?.sql);
                }
                keys
            }
            GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        };
        for key in &group {
            let bare = strip_parens(key).to_owned();
            let level = self.level();
            level.group_keys.push(format!("({bare})"));
            level.group_keys.push(bare);
        }
        let (items, columns, aggregated_items) = self.projection(&select.projection)?;
        let having = match &select.having {
            Some(h) => Some(self.expr(h)?),
            None => None,
        };
        let aggregated =
            !group.is_empty() || aggregated_items || having.as_ref().is_some_and(|h| h.agg);
        let mut order = Vec::new();
        if let Some(order_by) = order_by {
            order = self.order_by(order_by, &select.projection, aggregated)?;
        }
        if aggregated {
            self.check_grouped(&items, having.as_ref())?;
        }
        let array_joins = std::mem::take(&mut self.level().array_joins);
        let mut from = from;
        for (k, array) in array_joins.iter().enumerate() {
            let series = format!(
                "(WITH RECURSIVE _tb_n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM _tb_n \
                 WHERE i + 1 < {ARRAY_JOIN_MAX}) SELECT i FROM _tb_n) AS `_tb_aj{k}`"
            );
            from = if from.is_empty() {
                series
            } else {
                format!("{from} CROSS JOIN {series}")
            };
            where_sql.push(format!("`_tb_aj{k}`.i < json_array_length({array})"));
        }
        let distinct = match &select.distinct {
            None | Some(Distinct::All) => "",
            Some(Distinct::Distinct) => "DISTINCT ",
            Some(Distinct::On(_)) => return Err(unsupported("DISTINCT ON")),
        };
        let projection: Vec<String> = items.iter().map(|i| i.sql.clone()).collect();
        if !from.is_empty() {
            clauses.push_str(&format!(" FROM {from}"));
        }
        if !where_sql.is_empty() {
            clauses.push_str(&format!(" WHERE {}", where_sql.join(" AND ")));
        }
        if !group.is_empty() {
            clauses.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        if let Some(h) = having {
            clauses.push_str(&format!(" HAVING {}", h.sql));
        }
        let (limit_sql, limit_by) = self.limit(limit)?;
        if let Some((n, offset, by)) = limit_by {
            if !distinct.is_empty() {
                return Err(unsupported("DISTINCT with LIMIT BY"));
            }
            let Some(cols) = &columns else {
                return Err(unsupported(
                    "LIMIT BY over columns the catalog does not know",
                ));
            };
            let order_sql = order.join(", ");
            let over_order = if order.is_empty() {
                String::new()
            } else {
                format!(" ORDER BY {order_sql}")
            };
            let names: Vec<String> = cols.iter().map(|(n, _)| ident(n)).collect();
            let inner = format!(
                "SELECT {}, row_number() OVER (PARTITION BY {}{over_order}) AS `_tb_lb`, \
                 row_number() OVER ({}) AS `_tb_ord`{clauses}",
                projection.join(", "),
                by.join(", "),
                over_order.trim_start()
            );
            let sql = format!(
                "SELECT {} FROM ({inner}) WHERE `_tb_lb` > {offset} AND `_tb_lb` <= {offset} + {n} \
                 ORDER BY `_tb_ord`{limit_sql}",
                names.join(", ")
            );
            return Ok((sql, columns));
        }
        if !order.is_empty() {
            clauses.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        clauses.push_str(&limit_sql);
        let sql = format!("SELECT {distinct}{}{clauses}", projection.join(", "));
        Ok((sql, columns))
    }
}

/// `(x)` without its outer parentheses, when they enclose the whole text.
fn strip_parens(sql: &str) -> &str {
    let Some(inner) = sql.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
        return sql;
    };
    let mut depth = 0i32;
    for c in inner.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return sql;
        }
    }
    if depth == 0 { strip_parens(inner) } else { sql }
}

fn refuse_select_extras(select: &Select) -> Result<(), TranslateError> {
    if select.top.is_some() || select.into.is_some() {
        return Err(unsupported("TOP and SELECT INTO"));
    }
    if !select.lateral_views.is_empty() {
        return Err(unsupported(
            "ARRAY JOIN clauses (use arrayJoin() in the SELECT list)",
        ));
    }
    if select.qualify.is_some() {
        return Err(unsupported("QUALIFY"));
    }
    if !select.named_window.is_empty() {
        return Err(unsupported("named windows (WINDOW w AS ...)"));
    }
    if !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
    {
        return Err(unsupported("CLUSTER/DISTRIBUTE/SORT BY"));
    }
    if !select.connect_by.is_empty() {
        return Err(unsupported("CONNECT BY"));
    }
    if select.exclude.is_some() {
        return Err(unsupported("EXCLUDE"));
    }
    Ok(())
}
