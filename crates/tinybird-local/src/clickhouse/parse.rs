//! From text to a `Query`: `?` placeholders numbered in source order, one statement that
//! reads, and parse errors that say what to write instead where `sqlparser` 0.64 cannot
//! read a ClickHouse construct (`a DIV b`, `LIMIT n BY x LIMIT m`).

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Statement, Visit, Visitor};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;

use super::TranslateError;

/// Parses one read-only statement whose expressions nest at most `max_depth` deep.
pub(super) fn parse(sql: &str, max_depth: usize) -> Result<Query, TranslateError> {
    let lower = sql.to_ascii_lowercase();
    if lower.contains(" asof ") {
        return Err(TranslateError::unsupported("ASOF JOIN"));
    }
    let mut statements = Parser::parse_sql(&ClickHouseDialect {}, sql)
        .map_err(|e| TranslateError::Parse(parse_message(&e.to_string(), sql)))?;
    if statements.len() != 1 {
        return Err(TranslateError::Invalid(
            "send one statement at a time".into(),
        ));
    }
    check_depth(&statements[0], max_depth)?;
    match statements.remove(0) {
        Statement::Query(query) => Ok(*query),
        Statement::Explain { .. } | Statement::ExplainTable { .. } => {
            Err(TranslateError::unsupported("EXPLAIN"))
        }
        Statement::Insert(_) => Err(TranslateError::unsupported(
            "INSERT (ingestion: append rows with fixtures in the project folder)",
        )),
        Statement::CreateView(_) => Err(TranslateError::unsupported(
            "materialized views and CREATE VIEW",
        )),
        other => {
            let text = other.to_string();
            let word: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            Err(TranslateError::Invalid(format!(
                "{word} is not allowed: only read-only SELECT statements run here"
            )))
        }
    }
}

/// Refuses a statement whose expressions nest deeper than `max`, before anything recurses
/// over it: the parser's own depth limit does not see chains such as `1 + 1 + ... + 1`,
/// which it builds in a loop, and every later pass (clone, display, translation) recurses.
/// The walk stops as soon as it passes `max`, so its own recursion is bounded.
fn check_depth(statement: &Statement, max: usize) -> Result<(), TranslateError> {
    struct Depth {
        now: usize,
        max: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now += 1;
            if self.now > self.max {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Depth { now: 0, max }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(TranslateError::TooComplex(format!(
            "the query's expressions nest deeper than {max} levels (max_ast_depth): split long \
             chains such as a + b + c + ... into a sum() over rows, or into several columns"
        ))),
    }
}

fn parse_message(message: &str, sql: &str) -> String {
    let message = message.trim_start_matches("sql parser error: ");
    let lower = sql.to_ascii_lowercase();
    if lower.contains(" div ") {
        return format!("{message} (write intDiv(a, b) instead of a DIV b)");
    }
    if lower.contains(" by ") && lower.matches("limit").count() > 1 {
        return format!(
            "{message} (LIMIT n BY followed by a second LIMIT is not parsed: wrap the LIMIT BY \
             query in a subquery and put the LIMIT outside)"
        );
    }
    message.to_owned()
}

/// Numbers `?` placeholders (outside strings, quoted names and comments) as `?N`, from
/// `offset + 1`, so their binding order survives any reordering of the SQL.
pub fn number_placeholders(sql: &str, offset: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\'' | '"' | '`' => {
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut previous = ' ';
                for d in chars.by_ref() {
                    out.push(d);
                    if previous == '*' && d == '/' {
                        break;
                    }
                    previous = d;
                }
            }
            '?' if !chars.peek().is_some_and(char::is_ascii_digit) => {
                count += 1;
                out.push_str(&(offset + count).to_string());
            }
            _ => {}
        }
    }
    (out, count)
}
