//! Data-source filters: SQL templates in which every value becomes a quoted SQL literal.
//!
//! A `DATASOURCES:READ` filter is SQL that Tinybird (ClickHouse) and the local endpoint
//! (SQLite) add to every read of a data source, so a tenant id pasted in as text would be
//! an injection (`x' OR '1'='1`). Two rules rule that out:
//!
//! - every `{{ ... }}` output goes through [`sql_literal`] (strings), or is written as a
//!   plain number, `true`/`false`, or a comma-separated list of those (`user.roles`). There
//!   is no way to output raw text, so identifiers and operators only come from the config;
//! - at load, the template is rendered with a marker in place of each value and the SQL
//!   around the markers is scanned: a value may only stand where a literal can (not inside
//!   quotes, identifiers or comments, not glued to a word or a dot), and the config's own
//!   SQL may not use characters that mean different things in the two dialects (`\` in
//!   strings, `[`, `$`, `#`, `;`, `--`, `/*`).
//!
//! Backslashes in values are escaped for ClickHouse (`\\`); SQLite reads that as two
//! backslashes, so in the local endpoint such a value matches no row: wrong in the safe
//! direction, and tenant ids with backslashes are rare.

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::template::{MissingValue, TemplateProblem, Templates, UserRef};
use crate::user::User;

/// Quotes `value` as an SQL string literal that ClickHouse and SQLite both read as one
/// string: `'` is doubled, `\` and NUL are backslash-escaped (ClickHouse's escapes).
pub fn sql_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// What the probe environment writes in place of each value.
const MARK: char = '\u{1}';

/// Every filter template of a config, parsed once, plus its probe twin.
pub(super) struct FilterTemplates {
    quoting: Templates,
    probe: Templates,
}

impl std::fmt::Debug for FilterTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterTemplates").finish_non_exhaustive()
    }
}

impl FilterTemplates {
    pub(super) fn new() -> Self {
        Self {
            quoting: Templates::with_formatter(|out, _, value| {
                out.write_str(&literal(value)?)?;
                Ok(())
            }),
            probe: Templates::with_formatter(|out, _, value| {
                literal(value)?;
                out.write_char(MARK)?;
                Ok(())
            }),
        }
    }

    /// Parses `source` under `key`, checks where its values go, and returns what it reads.
    pub(super) fn add(&mut self, key: &str, source: &str) -> Result<Vec<UserRef>, TemplateProblem> {
        let (refs, _) = self.quoting.add_probed(key, source)?;
        let (_, probed) = self.probe.add_probed(key, source)?;
        let probed = probed.ok_or_else(|| {
            TemplateProblem::UnsafeSql(
                "it fails to render for a sample user, so where its values go cannot be checked"
                    .into(),
            )
        })?;
        check_positions(&probed).map_err(TemplateProblem::UnsafeSql)?;
        Ok(refs)
    }

    /// Renders the filter `key` for `user`, failing closed like fixed params do.
    pub(super) fn render(
        &self,
        key: &str,
        refs: &[UserRef],
        user: &User,
    ) -> Result<String, MissingValue> {
        self.quoting.render(key, refs, user)
    }
}

/// A template value as SQL: a quoted string, a number, a boolean, or a list of those.
fn literal(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String => Ok(sql_literal(value.as_str().unwrap_or_default())),
        ValueKind::Number => number(value),
        ValueKind::Bool => Ok(if value.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in value.try_iter()? {
                if matches!(
                    item.kind(),
                    ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
                ) {
                    return Err(unsupported("a nested list"));
                }
                items.push(literal(&item)?);
            }
            if items.is_empty() {
                // `IN ()` means "no rows" in SQLite but is an error in ClickHouse; neither
                // is what a grant author meant.
                return Err(unsupported("an empty list"));
            }
            Ok(items.join(", "))
        }
        ValueKind::Undefined | ValueKind::None => Err(unsupported("a missing value")),
        other => Err(unsupported(&format!("a {other}"))),
    }
}

fn number(value: &Value) -> Result<String, Error> {
    let text = if value.is_integer() {
        i128::try_from(value.clone())?.to_string()
    } else {
        let f = f64::try_from(value.clone())?;
        if !f.is_finite() {
            return Err(unsupported("a NaN or infinite number"));
        }
        f.to_string()
    };
    // `a - {{ n }}` with n = -1 would read `a --1`: a comment to the end of the filter.
    Ok(if text.starts_with('-') {
        format!("({text})")
    } else {
        text
    })
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} cannot be a filter value"),
    )
}

/// Where the scanner is in the static SQL.
#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Quoted(char),
}

/// Checks a probe rendering (values replaced by [`MARK`]) as explained in the module doc.
fn check_positions(sql: &str) -> Result<(), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut state = Lex::Code;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match state {
            Lex::Quoted(q) => {
                if c == MARK {
                    return Err(format!(
                        "a value is inside {}: remove the quotes around `{{{{ ... }}}}`",
                        quote_name(q)
                    ));
                }
                if c == '\\' {
                    return Err(
                        "a backslash inside quotes means different things to ClickHouse and SQLite"
                            .into(),
                    );
                }
                if c == q {
                    if next == Some(q) {
                        i += 1;
                    } else {
                        state = Lex::Code;
                    }
                }
            }
            Lex::Code => {
                if c == MARK {
                    let before = i.checked_sub(1).map(|j| chars[j]);
                    if !before.is_none_or(is_value_neighbour)
                        || !next.is_none_or(is_value_neighbour)
                    {
                        return Err(
                            "a value must stand on its own, separated by spaces or operators"
                                .into(),
                        );
                    }
                } else if c == '\'' || c == '"' || c == '`' {
                    state = Lex::Quoted(c);
                } else if (c == '-' && next == Some('-')) || (c == '/' && next == Some('*')) {
                    return Err("comments are not allowed in filters".into());
                } else if !(c.is_alphanumeric() || c == '_' || c == '.' || is_value_neighbour(c)) {
                    return Err(format!("the character {c:?} is not allowed in filters"));
                }
            }
        }
        i += 1;
    }
    match state {
        Lex::Code => Ok(()),
        Lex::Quoted(q) => Err(format!("{} is never closed", quote_name(q))),
    }
}

/// Characters a value may touch: whitespace, brackets of an expression, operators, commas.
fn is_value_neighbour(c: char) -> bool {
    c.is_whitespace() || "(),=<>!+-*/%|&~^".contains(c)
}

fn quote_name(q: char) -> &'static str {
    match q {
        '\'' => "a quoted string",
        '"' => "a double-quoted identifier",
        _ => "a backquoted identifier",
    }
}
