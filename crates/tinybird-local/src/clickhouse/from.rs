//! `FROM`: data sources, CTEs, subqueries and joins, each becoming a [`Source`] that
//! expressions resolve names against. Schema-qualified names pass through untouched.

use sqlparser::ast::{
    Join, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, TableFactor, TableWithJoins,
};

use super::TranslateError;
use super::translate::{Columns, Ctx, Source, ident, unsupported};

impl Ctx<'_> {
    /// The relation a table name reads: a CTE, a data source, or (schema-qualified, or
    /// outside the catalog) a table SQLite resolves with unknown columns.
    fn table(&mut self, name: &ObjectName) -> Result<(String, String, Columns), TranslateError> {
        let parts: Vec<&str> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Ok(i.value.as_str()),
                other => Err(unsupported(format!("the table name {other}"))),
            })
            .collect::<Result<_, _>>()?;
        let sql = parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join(".");
        let last = parts.last().copied().unwrap_or_default().to_owned();
        if parts.len() > 1 {
            return Ok((sql, last, None));
        }
        for frame in self.ctes.iter().rev() {
            if let Some((_, columns)) = frame.iter().rev().find(|(n, _)| *n == last) {
                return Ok((sql, last, columns.clone()));
            }
        }
        let columns = self.catalog.table(&last).map(|cols| {
            cols.iter()
                .map(|c| (c.name.clone(), Some(c.ty.clone())))
                .collect()
        });
        Ok((sql, last, columns))
    }

    fn factor(&mut self, factor: &TableFactor) -> Result<(String, Source), TranslateError> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                partitions,
                sample,
                ..
            } => {
                if args.is_some() {
                    return Err(unsupported(format!("the table function {name}()")));
                }
                if !with_hints.is_empty() || version.is_some() || !partitions.is_empty() {
                    return Err(unsupported(format!("table modifiers on {name}")));
                }
                if sample.is_some() {
                    return Err(unsupported("SAMPLE"));
                }
                let (sql, table, columns) = self.table(name)?;
                // `t FINAL` parses as an alias `FINAL`. Tables are kept merged at rest (see
                // `project::engines`), so FINAL reads what a plain read does; ClickHouse
                // refuses it on an engine that does not merge.
                let is_final = alias.as_ref().is_some_and(|a| {
                    a.name.quote_style.is_none() && a.name.value.eq_ignore_ascii_case("final")
                });
                if is_final && !self.catalog.is_merging(&table) {
                    return Err(TranslateError::Invalid(format!(
                        "Storage MergeTree doesn't support FINAL (reading {table}): FINAL needs a \
                         ReplacingMergeTree, SummingMergeTree or AggregatingMergeTree"
                    )));
                }
                let alias = alias.as_ref().filter(|_| !is_final);
                let alias_name = alias.map(|a| a.name.value.clone());
                let text = match &alias_name {
                    Some(a) => format!("{sql} AS {}", ident(a)),
                    None => sql,
                };
                Ok((
                    text,
                    Source {
                        name: alias_name.unwrap_or(table),
                        columns,
                        outer: false,
                    },
                ))
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    return Err(unsupported("LATERAL"));
                }
                // A subquery sees the outer CTEs but not the outer FROM items.
                let saved = std::mem::take(&mut self.levels);
                let result = self.query(subquery);
                self.levels = saved;
                let (sql, columns) = result?;
                let name = match alias {
                    Some(a) => a.name.value.clone(),
                    None => {
                        self.generated += 1;
                        format!("_tb_subquery_{}", self.generated)
                    }
                };
                Ok((
                    format!("({sql}) AS {}", ident(&name)),
                    Source {
                        name,
                        columns,
                        outer: false,
                    },
                ))
            }
            TableFactor::NestedJoin { .. } => Err(unsupported("parenthesised joins")),
            other => Err(unsupported(format!(
                "the FROM item {}",
                other.to_string().chars().take(40).collect::<String>()
            ))),
        }
    }

    pub(super) fn from(&mut self, from: &[TableWithJoins]) -> Result<String, TranslateError> {
        let mut parts = Vec::new();
        for table in from {
            let (mut sql, source) = self.factor(&table.relation)?;
            self.level().sources.push(source);
            for join in &table.joins {
                sql.push(' ');
                sql.push_str(&self.join(join)?);
            }
            parts.push(sql);
        }
        Ok(parts.join(", "))
    }

    fn join(&mut self, join: &Join) -> Result<String, TranslateError> {
        let (sql, source) = self.factor(&join.relation)?;
        let (keyword, constraint, left_outer, right_outer) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => ("JOIN", c, false, false),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT JOIN", c, false, true),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT JOIN", c, true, false),
            JoinOperator::FullOuter(c) => ("FULL JOIN", c, true, true),
            JoinOperator::CrossJoin(c) => ("CROSS JOIN", c, false, false),
            other => {
                let text = other_join_name(other);
                return Err(unsupported(format!("{text} joins")));
            }
        };
        let level = self.level();
        if left_outer {
            level.sources.iter_mut().for_each(|s| s.outer = true);
        }
        level.sources.push(Source {
            outer: right_outer,
            ..source
        });
        let on = match constraint {
            JoinConstraint::None => String::new(),
            JoinConstraint::Natural => return Ok(format!("NATURAL {keyword} {sql}")),
            JoinConstraint::Using(names) => {
                let names: Vec<String> = names.iter().map(|n| ident(&n.to_string())).collect();
                format!(" USING ({})", names.join(", "))
            }
            JoinConstraint::On(expr) => {
                self.level().in_on = true;
                let result = self.expr(expr);
                self.level().in_on = false;
                format!(" ON {}", result?.sql)
            }
            JoinConstraint::UsingAlias(..) => return Err(unsupported("USING (...) AS alias")),
        };
        Ok(format!("{keyword} {sql}{on}"))
    }
}

fn other_join_name(op: &JoinOperator) -> &'static str {
    match op {
        JoinOperator::Semi(_) | JoinOperator::LeftSemi(_) | JoinOperator::RightSemi(_) => "SEMI",
        JoinOperator::Anti(_) | JoinOperator::LeftAnti(_) | JoinOperator::RightAnti(_) => "ANTI",
        JoinOperator::AsOf { .. } => "ASOF",
        _ => "these",
    }
}
