//! Expressions: names, literals, operators, `CASE`, `CAST`, `IN`, `LIKE` and subqueries,
//! each emitted as SQLite SQL with its ClickHouse type.
//!
//! Where SQLite means something else, the emitted SQL says what ClickHouse means: `/` is
//! float division, `LIKE` is case-sensitive (`ch_like`), a `String` compared with a `Date`
//! is parsed as one, a `Date` compared with a `DateTime` is widened, and `Date ± n` counts
//! days while `DateTime ± n` counts seconds (see [`super::functions::dates`]).

use sqlparser::ast::Expr;

use super::TranslateError;
use super::emitted::{BOOL_TY, E, value};
use super::operators::comparable;
use super::translate::{Ctx, ident, unsupported};
use super::types::ChType;

impl Ctx<'_> {
    /// Emits one expression. Every call counts against the translation limits: nesting
    /// (`max_ast_depth`, also checked on the parsed text, but alias expansion nests too),
    /// nodes translated (`max_expanded_ast_elements`: each use of an alias translates its
    /// expression again, so `a+a AS b, b+b AS c, ...` would otherwise double per alias) and
    /// the deadline.
    pub fn expr(&mut self, expr: &Expr) -> Result<E, TranslateError> {
        self.steps += 1;
        if self.steps > self.limits.max_expanded_ast_elements {
            return Err(TranslateError::TooComplex(format!(
                "the query has more than {} expression nodes once its aliases are expanded \
                 (max_expanded_ast_elements): use fewer aliases of aliases",
                self.limits.max_expanded_ast_elements
            )));
        }
        if self.steps.is_multiple_of(1024)
            && self
                .limits
                .deadline
                .is_some_and(|d| std::time::Instant::now() > d)
        {
            return Err(TranslateError::Timeout);
        }
        if self.depth >= self.limits.max_ast_depth {
            return Err(TranslateError::TooComplex(format!(
                "the query's expressions nest deeper than {} levels once its aliases are \
                 expanded (max_ast_depth)",
                self.limits.max_ast_depth
            )));
        }
        self.depth += 1;
        let result = self.expr_inner(expr);
        self.depth -= 1;
        let mut e = result?;
        if !e.free.is_empty() && self.level().group_keys.contains(&e.sql) {
            e.free.clear();
        }
        Ok(e)
    }

    fn expr_inner(&mut self, expr: &Expr) -> Result<E, TranslateError> {
        let expr_ref = expr;
        match expr {
            Expr::Identifier(id) => self.column(None, &id.value),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [table, column] => self.column(Some(&table.value), &column.value),
                _ => Err(unsupported(format!("the name {expr}"))),
            },
            Expr::Value(v) => value(&v.value),
            Expr::Nested(inner) => {
                let e = self.expr(inner)?;
                Ok(E {
                    sql: format!("({})", e.sql),
                    ..e
                })
            }
            Expr::UnaryOp { op, expr } => self.unary(op, expr),
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::IsNull(e) => self.postfix(e, "IS NULL"),
            Expr::IsNotNull(e) => self.postfix(e, "IS NOT NULL"),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let e = self.expr(expr)?;
                let low = self.expr(low)?;
                let high = self.expr(high)?;
                let (e1, lo) = comparable(e.clone(), low)?;
                let (_, hi) = comparable(e, high)?;
                let not = if *negated { "NOT " } else { "" };
                let sql = format!("{} {not}BETWEEN {} AND {}", e1.sql, lo.sql, hi.sql);
                Ok(E::from_parts(sql, Some(BOOL_TY), &[&e1, &lo, &hi]))
            }
            Expr::In {
                expr,
                target,
                negated,
                global: _,
            } => {
                let e = self.expr(expr)?;
                let not = if *negated { "NOT " } else { "" };
                match target {
                    sqlparser::ast::InTarget::List(list) => {
                        // Each item is made comparable to the tested expression's type; a
                        // copy without its SQL keeps that linear in the list's length.
                        let probe = E {
                            ty: e.ty.clone(),
                            literal: e.literal.clone(),
                            ..E::default()
                        };
                        let mut parts = vec![e];
                        for item in list {
                            let item = self.expr(item)?;
                            parts.push(comparable(probe.clone(), item)?.1);
                        }
                        let items: Vec<&str> = parts[1..].iter().map(|p| p.sql.as_str()).collect();
                        let sql = format!("{} {not}IN ({})", parts[0].sql, items.join(", "));
                        let refs: Vec<&E> = parts.iter().collect();
                        Ok(E::from_parts(sql, Some(BOOL_TY), &refs))
                    }
                    sqlparser::ast::InTarget::Subquery(subquery) => {
                        let (sub, _) = self.subquery(subquery)?;
                        let sql = format!("{} {not}IN ({sub})", e.sql);
                        Ok(E::from_parts(sql, Some(BOOL_TY), &[&e]))
                    }
                    other => Err(unsupported(format!("IN {other}"))),
                }
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => self.like(
                "ch_like",
                *negated,
                expr,
                pattern,
                escape_char.is_some() || *any,
            ),
            Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => self.like(
                "ch_ilike",
                *negated,
                expr,
                pattern,
                escape_char.is_some() || *any,
            ),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut parts = Vec::new();
                let mut sql = String::from("CASE");
                if let Some(op) = operand {
                    let e = self.expr(op)?;
                    sql.push_str(&format!(" {}", e.sql));
                    parts.push(e);
                }
                let mut results = Vec::new();
                for when in conditions {
                    let c = self.expr(&when.condition)?;
                    let r = self.expr(&when.result)?;
                    sql.push_str(&format!(" WHEN {} THEN {}", c.sql, r.sql));
                    results.push(r.clone());
                    parts.extend([c, r]);
                }
                match else_result {
                    Some(e) => {
                        let e = self.expr(e)?;
                        sql.push_str(&format!(" ELSE {}", e.sql));
                        results.push(e.clone());
                        parts.push(e);
                    }
                    None => results.push(E::constant("NULL".into(), ChType::Nothing)),
                }
                sql.push_str(" END");
                let ty = self.branches(&results)?;
                let refs: Vec<&E> = parts.iter().collect();
                Ok(E::from_parts(sql, ty, &refs))
            }
            Expr::Cast {
                kind: _,
                expr,
                data_type,
                format: None,
            } => {
                let e = self.expr(expr)?;
                super::functions::cast(e, &data_type.to_string())
            }
            Expr::Function(f) => self.function(f),
            Expr::Subquery(q) => {
                let (sub, columns) = self.subquery(q)?;
                // A scalar subquery may find no row: ClickHouse types it Nullable.
                let ty = match columns.as_deref() {
                    Some([(_, ty)]) => ty.clone().map(ChType::nullable),
                    _ => None,
                };
                Ok(E {
                    sql: format!("({sub})"),
                    ty,
                    ..E::default()
                })
            }
            Expr::Exists { subquery, negated } => {
                let (sub, _) = self.subquery(subquery)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(E::constant(format!("{not}EXISTS ({sub})"), BOOL_TY))
            }
            Expr::Array(array) => {
                let mut elems = Vec::new();
                for e in &array.elem {
                    elems.push(self.expr(e)?);
                }
                super::functions::arrays::literal(&elems)
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                // Each subscript nests one call around the others (a flat list in the AST).
                if self.depth + access_chain.len() > self.limits.max_ast_depth {
                    return Err(TranslateError::TooComplex(format!(
                        "more than {} nested subscripts (max_ast_depth)",
                        self.limits.max_ast_depth
                    )));
                }
                let mut e = self.expr(root)?;
                for access in access_chain {
                    let sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index {
                        index,
                    }) = access
                    else {
                        return Err(unsupported("tuple and map access"));
                    };
                    let i = self.expr(index)?;
                    e = super::functions::arrays::element(e, i)?;
                }
                Ok(e)
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.expr(expr)?];
                for part in [substring_from, substring_for].into_iter().flatten() {
                    args.push(self.expr(part)?);
                }
                super::functions::call_scalar(self, "substring", args)
            }
            Expr::Position { expr, r#in } => {
                let args = vec![self.expr(r#in)?, self.expr(expr)?];
                super::functions::call_scalar(self, "position", args)
            }
            Expr::Trim {
                trim_where,
                trim_what: None,
                expr,
                trim_characters: None,
            } => {
                let name = match trim_where {
                    Some(sqlparser::ast::TrimWhereField::Leading) => "trimLeft",
                    Some(sqlparser::ast::TrimWhereField::Trailing) => "trimRight",
                    _ => "trimBoth",
                };
                let args = vec![self.expr(expr)?];
                super::functions::call_scalar(self, name, args)
            }
            Expr::Extract { field, expr, .. } => {
                let name = super::functions::dates::extract_function(field)?;
                let args = vec![self.expr(expr)?];
                super::functions::call_scalar(self, name, args)
            }
            Expr::Floor { expr, field } | Expr::Ceil { expr, field } => {
                let name = if matches!(expr_ref, Expr::Floor { .. }) {
                    "floor"
                } else {
                    "ceil"
                };
                let mut args = vec![self.expr(expr)?];
                match field {
                    sqlparser::ast::CeilFloorKind::Scale(v) => args.push(value(&v.value)?),
                    sqlparser::ast::CeilFloorKind::DateTimeField(
                        sqlparser::ast::DateTimeField::NoDateTime,
                    ) => {}
                    _ => return Err(unsupported(format!("{name}(... TO unit)"))),
                }
                super::functions::call_scalar(self, name, args)
            }
            Expr::Interval(_) => Err(unsupported(
                "an INTERVAL outside date arithmetic (write d + INTERVAL 1 DAY)",
            )),
            Expr::Lambda(_) => Err(unsupported("lambda functions (x -> ...)")),
            Expr::Tuple(_) => Err(unsupported("tuples")),
            Expr::Map(_) | Expr::Dictionary(_) => Err(unsupported("maps")),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                Err(unsupported("* inside an expression"))
            }
            other => Err(unsupported(format!(
                "the expression {}",
                other.to_string().chars().take(60).collect::<String>()
            ))),
        }
    }

    /// A column (or a `SELECT` alias, which ClickHouse lets every clause use).
    fn column(&mut self, table: Option<&str>, name: &str) -> Result<E, TranslateError> {
        if table.is_none() {
            let level = self.level();
            let alias = level
                .aliases
                .iter()
                .find(|(a, _)| a == name)
                .map(|(_, e)| e.clone());
            if let Some(aliased) = alias.filter(|_| !level.expanding.iter().any(|a| a == name)) {
                self.level().expanding.push(name.to_owned());
                let result = self.expr(&aliased);
                self.level().expanding.pop();
                let e = result?;
                // Parenthesised, unless it is already one term.
                let sql = if e.sql.contains(' ') {
                    format!("({})", e.sql)
                } else {
                    e.sql.clone()
                };
                return Ok(E { sql, ..e });
            }
        }
        let sql = match table {
            Some(t) => format!("{}.{}", ident(t), ident(name)),
            None => ident(name),
        };
        let mut ty = None;
        let mut outer = false;
        let mut in_on = false;
        'levels: for level in self.levels.iter().rev() {
            for source in level.sources.iter().rev() {
                if table.is_some_and(|t| !t.eq_ignore_ascii_case(&source.name)) {
                    continue;
                }
                if let Some(columns) = &source.columns {
                    let found = columns
                        .iter()
                        .find(|(c, _)| c == name)
                        .or_else(|| columns.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)));
                    if let Some((_, t)) = found {
                        ty = t.clone();
                        outer = source.outer;
                        in_on = level.in_on;
                        break 'levels;
                    }
                }
            }
        }
        let grouped = self.level().group_keys.contains(&sql);
        let free = if grouped { vec![] } else { vec![sql.clone()] };
        // The unmatched side of an outer join is NULL, typed Nullable: ClickHouse with
        // join_use_nulls = 1 (see the module doc of `translate`).
        let ty = match ty {
            Some(t) if outer && !in_on => Some(t.nullable()),
            other => other,
        };
        Ok(E {
            sql,
            ty,
            free,
            ..E::default()
        })
    }
}
