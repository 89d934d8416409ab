//! Tinybird's template functions beyond the type functions: `columns`, `column`, `symbol`,
//! `sql_and`, `split_to_array`, `error`.
//!
//! Values still never reach the SQL text: `split_to_array` returns values that print as
//! `[?, ?]`, and `sql_and` builds a condition whose values are binds. Only *names* can be
//! printed (`symbol`, `column`, `columns`, the column names of `sql_and`), and only names
//! made of `[A-Za-z_][A-Za-z0-9_]*` (optionally `table.column`), printed back-quoted:
//! anything else is a 400 naming the parameter. What a name may read is still judged by
//! SQLite (and, on `/v0/sql`, the row-filter sandbox), never by this check.

use std::sync::Arc;

use minijinja::value::{Kwargs, Object, ObjectRepr, Rest, Value};
use minijinja::{Error, ErrorKind};
use rusqlite::types::Value as SqlValue;

use super::types::{param_error, read_target};
use super::{ParamError, sql_value};

/// Names printed as back-quoted identifiers, comma-separated.
#[derive(Debug)]
pub(super) struct Identifiers(pub Vec<String>);

impl Object for Identifiers {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

impl Identifiers {
    /// The SQL text: `` `a`, `b` ``.
    pub fn sql(&self) -> String {
        self.0
            .iter()
            .map(|name| {
                name.split('.')
                    .map(|part| format!("`{part}`"))
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A list printed as an array literal `[?, ?]` (what `split_to_array` gives Tinybird).
#[derive(Debug)]
pub(super) struct ArrayValues(pub Vec<Value>);

impl Object for ArrayValues {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

/// SQL built from names and bound values (what `sql_and` returns).
#[derive(Debug)]
pub(super) struct Fragment {
    pub sql: String,
    pub binds: Vec<SqlValue>,
}

impl Object for Fragment {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

fn is_name(text: &str) -> bool {
    let part = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.len() <= 128
    };
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() <= 2 && parts.iter().all(|p| part(p))
}

fn names(function: &str, args: &[Value]) -> Result<(String, Vec<String>), Error> {
    let target = args.first().ok_or_else(|| usage(function))?;
    let (param, raw) = read_target(target);
    let text = match raw.and_then(|v| v.into_iter().find(|v| !v.is_empty())) {
        Some(text) => text,
        None => match args.get(1) {
            Some(default) => default
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| default.to_string()),
            None => return Err(param_error(ParamError::Missing { name: param })),
        },
    };
    let list: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    match list.iter().find(|n| !is_name(n)) {
        Some(bad) => Err(param_error(ParamError::Invalid {
            name: param,
            ty: "column name".into(),
            reason: format!(
                "'{}' is not a column name (letters, digits and _, optionally table.column)",
                bad.chars().take(80).collect::<String>()
            ),
        })),
        None => Ok((param, list)),
    }
}

fn usage(function: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "{function}() takes a parameter and an optional default, e.g. {function}(x, 'name')"
        ),
    )
}

/// `symbol(x)` / `column(x, 'default')`: one column name.
pub(super) fn column(function: &'static str, args: Rest<Value>) -> Result<Value, Error> {
    let (param, list) = names(function, &args)?;
    if list.len() != 1 {
        return Err(param_error(ParamError::Invalid {
            name: param,
            ty: "column name".into(),
            reason: "one column name expected, not a list".into(),
        }));
    }
    Ok(Value::from_object(Identifiers(list)))
}

/// `columns(x, 'a,b')`: a comma-separated list of column names.
pub(super) fn columns(args: Rest<Value>) -> Result<Value, Error> {
    let (_, list) = names("columns", &args)?;
    Ok(Value::from_object(Identifiers(list)))
}

/// `split_to_array(x, 'a,b')`: the comma-separated values of `x`, as an array literal.
pub(super) fn split_to_array(args: Rest<Value>) -> Result<Value, Error> {
    let target = args.first().ok_or_else(|| usage("split_to_array"))?;
    let (_, raw) = read_target(target);
    let text = match raw
        .and_then(|v| v.into_iter().next())
        .filter(|v| !v.is_empty())
    {
        Some(text) => text,
        None => args
            .get(1)
            .and_then(|d| d.as_str().map(str::to_owned))
            .unwrap_or_default(),
    };
    let items: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').map(|s| Value::from(s.trim())).collect()
    };
    Ok(Value::from_object(ArrayValues(items)))
}

/// `sql_and(col=value, col__in=values, col__gte=value, ...)`: the conditions whose value is
/// defined, joined with AND (`1` when none is).
pub(super) fn sql_and(kwargs: Kwargs) -> Result<Value, Error> {
    let mut parts = Vec::new();
    let mut binds = Vec::new();
    let mut keys: Vec<&str> = kwargs.args().collect();
    keys.sort_unstable();
    for key in keys {
        let value: Value = kwargs.get(key)?;
        if value.is_undefined() || value.is_none() {
            continue;
        }
        let (column, op) = key.rsplit_once("__").unwrap_or((key, "eq"));
        if !is_name(column) {
            return Err(usage("sql_and"));
        }
        let op_sql = match op {
            "eq" => "=",
            "not" | "ne" => "<>",
            "gt" => ">",
            "gte" => ">=",
            "lt" => "<",
            "lte" => "<=",
            "in" => "IN",
            "not_in" => "NOT IN",
            "like" => "LIKE",
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "sql_and: operator __{other} is not supported (eq, not, gt, gte, lt, lte, in, not_in, like)"
                    ),
                ));
            }
        };
        let rhs = if op.ends_with("in") {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                continue;
            }
            let mut marks = Vec::new();
            for item in &items {
                binds.push(sql_value(item)?);
                marks.push("?");
            }
            format!("({})", marks.join(", "))
        } else {
            binds.push(sql_value(&value)?);
            "?".to_owned()
        };
        parts.push(format!(
            "{} {op_sql} {rhs}",
            Identifiers(vec![column.to_owned()]).sql()
        ));
    }
    kwargs.assert_all_used()?;
    let sql = if parts.is_empty() {
        "1".to_owned()
    } else {
        parts.join(" AND ")
    };
    Ok(Value::from_object(Fragment { sql, binds }))
}

/// `{{ error('message', 400) }}`: the pipe author's own refusal, with their status code.
pub(super) fn error(message: String, status: Option<u16>) -> Result<Value, Error> {
    let status = status.unwrap_or(400);
    let status = if (400..600).contains(&status) {
        status
    } else {
        400
    };
    Err(param_error(ParamError::Raised { message, status }))
}
