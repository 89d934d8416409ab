//! The `SELECT` list: result names as ClickHouse gives them, `*` expansion, ClickHouse's
//! rule that every column outside an aggregate is grouped, and scalar subqueries.

use sqlparser::ast::{BinaryOperator, Expr, FunctionArguments, Query, SelectItem, UnaryOperator};

use super::TranslateError;
use super::emitted::E;
use super::translate::{Columns, Ctx, Ty, ident, unsupported};
use super::types::{self, ChType};

impl Ctx<'_> {
    /// Emits the `SELECT` list: item SQL (each pinned to its ClickHouse name), the result
    /// columns (`None` when a `*` reads a table of unknown shape), and whether any item
    /// aggregates.
    pub(super) fn projection(
        &mut self,
        items: &[SelectItem],
    ) -> Result<(Vec<E>, Columns, bool), TranslateError> {
        let mut out = Vec::new();
        let mut columns = Some(Vec::new());
        let mut aggregated = false;
        for item in items {
            match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    let name = match item {
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        _ => column_name(expr),
                    };
                    if let SelectItem::ExprWithAlias { alias, .. } = item {
                        self.level().expanding.push(alias.value.clone());
                    }
                    let result = self.expr(expr);
                    if matches!(item, SelectItem::ExprWithAlias { .. }) {
                        self.level().expanding.pop();
                    }
                    let e = result?;
                    aggregated |= e.agg;
                    if let Some(cols) = &mut columns {
                        cols.push((name.clone(), e.ty.clone()));
                    }
                    out.push(E {
                        sql: format!("{} AS {}", e.sql, ident(&name)),
                        ..e
                    });
                }
                SelectItem::Wildcard(options) => {
                    refuse_wildcard_options(options)?;
                    let sources = self.level().sources.clone();
                    let mut all = Some(Vec::new());
                    for source in &sources {
                        match (&mut all, &source.columns) {
                            (Some(all), Some(cols)) => {
                                for (name, ty) in cols {
                                    if !all.iter().any(|(n, _): &(String, Ty)| n == name) {
                                        all.push((name.clone(), ty.clone()));
                                    }
                                }
                            }
                            _ => all = None,
                        }
                    }
                    self.push_star(&mut out, &mut columns, all, "*".into(), &sources);
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    refuse_wildcard_options(options)?;
                    let name = kind.to_string();
                    let table = name.trim_end_matches(".*").to_owned();
                    let sources = self.level().sources.clone();
                    let source = sources.iter().find(|s| s.name.eq_ignore_ascii_case(&table));
                    let cols = source.and_then(|s| s.columns.clone());
                    let sql = format!("{}.*", ident(&table));
                    let scoped: Vec<_> = source.into_iter().cloned().collect();
                    self.push_star(&mut out, &mut columns, cols, sql, &scoped);
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(unsupported("several aliases for one expression"));
                }
            }
        }
        Ok((out, columns, aggregated))
    }

    fn push_star(
        &mut self,
        out: &mut Vec<E>,
        columns: &mut Columns,
        star: Columns,
        sql: String,
        sources: &[super::translate::Source],
    ) {
        match (columns.as_mut(), star) {
            (Some(cols), Some(star)) => {
                // Listed one by one, so outer-join defaults and names hold.
                for (name, ty) in star {
                    let source = sources.iter().find(|s| {
                        s.columns
                            .as_ref()
                            .is_some_and(|c| c.iter().any(|(n, _)| *n == name))
                    });
                    let qualified = match source {
                        Some(s) if sources.len() > 1 => {
                            format!("{}.{}", ident(&s.name), ident(&name))
                        }
                        _ => ident(&name),
                    };
                    let outer = source.is_some_and(|s| s.outer);
                    let ty = if outer { ty.map(ChType::nullable) } else { ty };
                    let value = qualified.clone();
                    out.push(E {
                        sql: format!("{value} AS {}", ident(&name)),
                        ty: ty.clone(),
                        free: vec![qualified],
                        ..E::default()
                    });
                    cols.push((name, ty));
                }
            }
            _ => {
                *columns = None;
                out.push(E {
                    sql,
                    free: vec!["*".into()],
                    ..E::default()
                });
            }
        }
    }

    /// ClickHouse refuses a column that is neither aggregated nor grouped; SQLite would
    /// silently pick one row's value.
    pub(super) fn check_grouped(
        &mut self,
        items: &[E],
        having: Option<&E>,
    ) -> Result<(), TranslateError> {
        for e in items.iter().chain(having) {
            self.ensure_grouped(e)?;
        }
        Ok(())
    }

    /// One expression of an aggregating query must read only grouped columns.
    pub(super) fn ensure_grouped(&mut self, e: &E) -> Result<(), TranslateError> {
        match e.free.first() {
            Some(column) => Err(TranslateError::Invalid(format!(
                "column {} is not under an aggregate function and not in GROUP BY",
                column.replace('`', "")
            ))),
            None => Ok(()),
        }
    }

    /// A subquery: its own scope, with the enclosing ones visible (correlation).
    pub(super) fn subquery(&mut self, query: &Query) -> Result<(String, Columns), TranslateError> {
        self.query(query)
    }

    /// The common type of branches, or ClickHouse's refusal.
    pub(super) fn branches(&mut self, results: &[E]) -> Result<Ty, TranslateError> {
        let mut known = Vec::new();
        for r in results {
            match &r.ty {
                Some(t) => known.push(t.clone()),
                None => return Ok(None),
            }
        }
        let refs: Vec<&ChType> = known.iter().collect();
        types::common(&refs).map(Some).ok_or_else(|| {
            let names: Vec<String> = known.iter().map(ToString::to_string).collect();
            TranslateError::Invalid(format!(
                "there is no common type for {}: convert the branches to one type",
                names.join(", ")
            ))
        })
    }
}

fn refuse_wildcard_options(
    options: &sqlparser::ast::WildcardAdditionalOptions,
) -> Result<(), TranslateError> {
    if options.opt_ilike.is_some()
        || options.opt_exclude.is_some()
        || options.opt_except.is_some()
        || options.opt_replace.is_some()
        || options.opt_rename.is_some()
    {
        return Err(unsupported("* modifiers (EXCEPT, REPLACE, ...)"));
    }
    Ok(())
}

/// The name ClickHouse gives an unaliased result column: the column name for a column,
/// else the expression in ClickHouse's function form (`plus(a, 1)`, `count()`).
pub fn column_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(id) => id.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|p| p.value.clone()).unwrap_or_default()
        }
        Expr::Nested(inner) => column_name(inner),
        Expr::BinaryOp { left, op, right } => {
            let name = match op {
                BinaryOperator::Plus => "plus",
                BinaryOperator::Minus => "minus",
                BinaryOperator::Multiply => "multiply",
                BinaryOperator::Divide => "divide",
                BinaryOperator::Modulo => "modulo",
                BinaryOperator::Eq => "equals",
                BinaryOperator::NotEq => "notEquals",
                BinaryOperator::Lt => "less",
                BinaryOperator::LtEq => "lessOrEquals",
                BinaryOperator::Gt => "greater",
                BinaryOperator::GtEq => "greaterOrEquals",
                BinaryOperator::And => "and",
                BinaryOperator::Or => "or",
                BinaryOperator::StringConcat => "concat",
                _ => return expr.to_string(),
            };
            format!("{name}({}, {})", column_name(left), column_name(right))
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => format!("not({})", column_name(expr)),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } if !matches!(**inner, Expr::Value(_)) => format!("negate({})", column_name(inner)),
        Expr::Function(f) if f.over.is_none() && f.filter.is_none() => {
            let args = |a: &FunctionArguments| match a {
                FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(|arg| match arg {
                        sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(e),
                        ) => column_name(e),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            let name = f.name.to_string();
            let star = matches!(&f.args, FunctionArguments::List(l) if l.args.len() == 1
                && matches!(l.args[0], sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Wildcard)));
            let inner = if star && name.eq_ignore_ascii_case("count") {
                String::new()
            } else {
                args(&f.args)
            };
            match &f.parameters {
                FunctionArguments::List(_) => format!("{name}({})({inner})", args(&f.parameters)),
                _ => format!("{name}({inner})"),
            }
        }
        other => other.to_string(),
    }
}
