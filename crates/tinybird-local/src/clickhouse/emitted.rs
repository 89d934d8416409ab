//! What expression translation emits: SQLite SQL with its ClickHouse type ([`E`]), literals,
//! and quoting. A leaf of the translator: `expr`, `operators` and `functions` build on it.

use sqlparser::ast::Value;

use super::TranslateError;
use super::translate::{Ty, unsupported};
use super::types::{self, ChType};

/// An emitted expression.
#[derive(Debug, Clone, Default)]
pub struct E {
    /// SQLite SQL.
    pub sql: String,
    /// ClickHouse type, when known.
    pub ty: Ty,
    /// Columns read outside any aggregate and not grouped (for ClickHouse's GROUP BY rule).
    pub free: Vec<String>,
    /// Whether it contains an aggregate (outside window functions).
    pub agg: bool,
    /// The text of a string literal, so it can be read as a date where one is compared.
    pub literal: Option<String>,
}

impl E {
    /// An expression built from parts, inheriting their free columns (each once, so a long
    /// chain over one column does not copy a growing list at every level) and aggregates.
    pub fn from_parts(sql: String, ty: Ty, parts: &[&E]) -> E {
        let mut free: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for column in parts.iter().flat_map(|p| p.free.iter()) {
            if seen.insert(column.as_str()) {
                free.push(column.clone());
            }
        }
        E {
            sql,
            ty,
            free,
            agg: parts.iter().any(|p| p.agg),
            literal: None,
        }
    }

    /// A constant of a known type.
    pub fn constant(sql: String, ty: ChType) -> E {
        E {
            sql,
            ty: Some(ty),
            ..E::default()
        }
    }
}

/// An SQLite string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The type of comparisons and predicates.
pub const BOOL_TY: ChType = ChType::UInt(8);

/// A literal.
pub fn value(v: &Value) -> Result<E, TranslateError> {
    match v {
        Value::Number(n, _) => number(n),
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Ok(E {
            sql: quote(s),
            ty: Some(ChType::String),
            literal: Some(s.clone()),
            ..E::default()
        }),
        Value::Boolean(b) => Ok(E::constant(if *b { "1" } else { "0" }.into(), ChType::Bool)),
        Value::Null => Ok(E::constant("NULL".into(), ChType::Nothing)),
        Value::Placeholder(p) if p.starts_with('?') => Ok(E {
            sql: p.clone(),
            ..E::default()
        }),
        other => Err(unsupported(format!("the literal {other}"))),
    }
}

fn number(n: &str) -> Result<E, TranslateError> {
    let clean = n.replace('_', "");
    if let Ok(i) = clean.parse::<i128>() {
        if i > i128::from(u64::MAX) || i < i128::from(i64::MIN) {
            return Err(unsupported(format!("the 128-bit integer {n}")));
        }
        // UInt64 values above i64::MAX have no SQLite integer: they become floats.
        if i > i128::from(i64::MAX) {
            return Ok(E::constant(format!("{i}.0"), ChType::UInt(64)));
        }
        return Ok(E::constant(i.to_string(), types::integer_literal(i)));
    }
    if let Some(hex) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        let i = i64::from_str_radix(hex, 16)
            .map_err(|_| TranslateError::Invalid(format!("bad number {n}")))?;
        return Ok(E::constant(i.to_string(), types::integer_literal(i.into())));
    }
    let f: f64 = clean
        .parse()
        .map_err(|_| TranslateError::Invalid(format!("bad number {n}")))?;
    let text = if f.is_finite() {
        format!("{f:?}")
    } else {
        "NULL".into()
    };
    Ok(E::constant(text, ChType::Float(64)))
}
