//! `ORDER BY` (ClickHouse's `NULLS LAST`), `LIMIT` in its three spellings and `LIMIT n BY`,
//! and positions (`GROUP BY 1`).

use sqlparser::ast::{LimitClause, OrderBy, OrderByKind, SelectItem};

use super::TranslateError;
use super::translate::{Ctx, unsupported};

impl Ctx<'_> {
    /// `LIMIT` as SQLite text, plus `(n, offset, by-keys)` of a `LIMIT n BY`.
    #[allow(clippy::type_complexity)]
    pub(super) fn limit(
        &mut self,
        limit: Option<&LimitClause>,
    ) -> Result<(String, Option<(String, String, Vec<String>)>), TranslateError> {
        match limit {
            None => Ok((String::new(), None)),
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                let (o, l) = (self.expr(offset)?.sql, self.expr(limit)?.sql);
                Ok((format!(" LIMIT {l} OFFSET {o}"), None))
            }
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                let l = match limit {
                    Some(l) => Some(self.expr(l)?.sql),
                    None => None,
                };
                let o = match offset {
                    Some(o) => Some(self.expr(&o.value)?.sql),
                    None => None,
                };
                if !limit_by.is_empty() {
                    if offset.is_some() {
                        return Err(unsupported("LIMIT n OFFSET m BY"));
                    }
                    let mut by = Vec::new();
                    for e in limit_by {
                        by.push(self.expr(e)?.sql);
                    }
                    let n = l.ok_or_else(|| unsupported("BY without a LIMIT"))?;
                    return Ok((String::new(), Some((n, o.unwrap_or("0".into()), by))));
                }
                let mut sql = match l {
                    Some(l) => format!(" LIMIT {l}"),
                    None => " LIMIT -1".to_owned(),
                };
                if let Some(o) = o {
                    sql.push_str(&format!(" OFFSET {o}"));
                }
                if limit.is_none() && offset.is_none() {
                    sql.clear();
                }
                Ok((sql, None))
            }
        }
    }

    pub(super) fn order_by(
        &mut self,
        order_by: &OrderBy,
        projection: &[SelectItem],
        aggregated: bool,
    ) -> Result<Vec<String>, TranslateError> {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return Err(unsupported("ORDER BY ALL"));
        };
        if order_by.interpolate.is_some() {
            return Err(unsupported("INTERPOLATE"));
        }
        let mut out = Vec::new();
        for item in exprs {
            if item.with_fill.is_some() {
                return Err(unsupported("WITH FILL"));
            }
            let e = self.positional(&item.expr, projection)?;
            let e = self.expr(&e)?;
            if aggregated {
                self.ensure_grouped(&e)?;
            }
            let desc = matches!(item.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
            // ClickHouse puts NULLs last in both directions unless told otherwise.
            let nulls = match item.options.nulls_first {
                Some(true) => " NULLS FIRST",
                _ => " NULLS LAST",
            };
            out.push(format!(
                "{}{}{nulls}",
                e.sql,
                if desc { " DESC" } else { " ASC" }
            ));
        }
        Ok(out)
    }

    /// `GROUP BY 1` / `ORDER BY 2`: ClickHouse reads a bare number as a projection position.
    pub(super) fn positional(
        &self,
        e: &sqlparser::ast::Expr,
        projection: &[SelectItem],
    ) -> Result<sqlparser::ast::Expr, TranslateError> {
        if let sqlparser::ast::Expr::Value(v) = e
            && let sqlparser::ast::Value::Number(n, _) = &v.value
        {
            let index: usize = n
                .parse()
                .map_err(|_| TranslateError::Invalid(format!("bad position {n}")))?;
            return match projection.get(index.wrapping_sub(1)) {
                Some(SelectItem::UnnamedExpr(e)) => Ok(e.clone()),
                Some(SelectItem::ExprWithAlias { expr, .. }) => Ok(expr.clone()),
                _ => Err(TranslateError::Invalid(format!(
                    "position {index} is not an expression of the SELECT list"
                ))),
            };
        }
        Ok(e.clone())
    }
}
