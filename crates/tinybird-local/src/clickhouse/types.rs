//! ClickHouse data types as the translator infers them, and ClickHouse's rules for combining
//! them (the result type of `a + b`, of `if(c, a, b)`, of a literal).
//!
//! The types travel beside the SQLite SQL so `meta` says what ClickHouse would say (`count()`
//! is `UInt64`, `1 + 1` is `UInt16`) and so the translator can pick ClickHouse's meaning where
//! SQLite's differs (a `Date` compared with a `DateTime`, a `String` literal compared with a
//! `Date`). The rules were read off real ClickHouse (chdb 26.9) with `toTypeName`; they cover
//! the types the local endpoint stores: integers, floats, strings, dates, arrays, `Nullable`.

use std::fmt;

/// A ClickHouse type the translator can reason about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChType {
    /// `UInt8` .. `UInt64` (`bits` is 8, 16, 32 or 64).
    UInt(u8),
    /// `Int8` .. `Int64`.
    Int(u8),
    /// `Float32` or `Float64`.
    Float(u8),
    /// `Bool` (stored as 0/1).
    Bool,
    /// `String` (also `LowCardinality(String)`, `FixedString`, `UUID`, stored as text).
    String,
    /// `Date` (`YYYY-MM-DD` text).
    Date,
    /// `DateTime` (`YYYY-MM-DD HH:MM:SS` text, UTC).
    DateTime,
    /// `DateTime64(p)` (`YYYY-MM-DD HH:MM:SS.fff` text).
    DateTime64(u8),
    /// `Array(T)` (stored as JSON text).
    Array(Box<ChType>),
    /// `Nullable(T)`.
    Nullable(Box<ChType>),
    /// The type of a bare `NULL` literal.
    Nothing,
}

impl fmt::Display for ChType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChType::UInt(bits) => write!(f, "UInt{bits}"),
            ChType::Int(bits) => write!(f, "Int{bits}"),
            ChType::Float(bits) => write!(f, "Float{bits}"),
            ChType::Bool => f.write_str("Bool"),
            ChType::String => f.write_str("String"),
            ChType::Date => f.write_str("Date"),
            ChType::DateTime => f.write_str("DateTime"),
            ChType::DateTime64(p) => write!(f, "DateTime64({p})"),
            ChType::Array(inner) if **inner == ChType::Nothing => f.write_str("Array(Nothing)"),
            ChType::Array(inner) => write!(f, "Array({inner})"),
            ChType::Nullable(inner) => write!(f, "Nullable({inner})"),
            ChType::Nothing => f.write_str("Nullable(Nothing)"),
        }
    }
}

impl ChType {
    /// Parses a type name as `.datasource` files and `CAST` write it. Wrappers that do not
    /// change the stored value (`LowCardinality`, `SimpleAggregateFunction`) are unwrapped.
    pub fn parse(text: &str) -> Option<ChType> {
        let text = text.trim();
        if let Some(inner) = unwrap(text, "Nullable") {
            return Some(ChType::Nullable(Box::new(ChType::parse(inner)?)));
        }
        if let Some(inner) = unwrap(text, "LowCardinality") {
            return ChType::parse(inner);
        }
        if let Some(inner) = unwrap(text, "Array") {
            return Some(ChType::Array(Box::new(ChType::parse(inner)?)));
        }
        if let Some(inner) = unwrap(text, "DateTime64") {
            let precision = inner.split(',').next()?.trim().parse().ok()?;
            return Some(ChType::DateTime64(precision));
        }
        if unwrap(text, "DateTime").is_some() {
            return Some(ChType::DateTime);
        }
        if unwrap(text, "FixedString").is_some() {
            return Some(ChType::String);
        }
        Some(match text {
            "UInt8" => ChType::UInt(8),
            "UInt16" => ChType::UInt(16),
            "UInt32" => ChType::UInt(32),
            "UInt64" => ChType::UInt(64),
            "Int8" => ChType::Int(8),
            "Int16" => ChType::Int(16),
            "Int32" => ChType::Int(32),
            "Int64" => ChType::Int(64),
            "Float32" => ChType::Float(32),
            "Float64" => ChType::Float(64),
            "Bool" | "Boolean" => ChType::Bool,
            "String" | "UUID" => ChType::String,
            "Date" | "Date32" => ChType::Date,
            "DateTime" => ChType::DateTime,
            _ => return None,
        })
    }

    /// Like [`ChType::parse`], also reading the upper-case names `CAST(x AS String)` is
    /// printed with by the parser (`STRING`, `DATE`, `INT64`, ...).
    pub fn parse_loose(text: &str) -> Option<ChType> {
        if let Some(t) = ChType::parse(text) {
            return Some(t);
        }
        let names = [
            "UInt8", "UInt16", "UInt32", "UInt64", "Int8", "Int16", "Int32", "Int64", "Float32",
            "Float64", "Bool", "Boolean", "String", "UUID", "Date", "Date32", "DateTime",
        ];
        let upper = text.trim().to_ascii_uppercase();
        for wrapper in ["Nullable", "Array", "LowCardinality"] {
            let w = wrapper.to_ascii_uppercase();
            if let Some(inner) = upper
                .strip_prefix(&format!("{w}("))
                .and_then(|s| s.strip_suffix(')'))
            {
                let inner = ChType::parse_loose(inner)?;
                return ChType::parse(&format!("{wrapper}({inner})"));
            }
        }
        names
            .iter()
            .find(|n| n.to_ascii_uppercase() == upper)
            .and_then(|n| ChType::parse(n))
    }

    /// The type without `Nullable`.
    pub fn base(&self) -> &ChType {
        match self {
            ChType::Nullable(inner) => inner,
            other => other,
        }
    }

    /// Whether values may be NULL.
    pub fn is_nullable(&self) -> bool {
        matches!(self, ChType::Nullable(_) | ChType::Nothing)
    }

    /// `Nullable(self)` (idempotent; arrays and `Nothing` are never wrapped).
    pub fn nullable(self) -> ChType {
        match self {
            ChType::Nullable(_) | ChType::Nothing | ChType::Array(_) => self,
            other => ChType::Nullable(Box::new(other)),
        }
    }

    /// `self`, made `Nullable` when `like` is.
    pub fn nullable_if(self, like: &[&ChType]) -> ChType {
        if like.iter().any(|t| t.is_nullable()) {
            self.nullable()
        } else {
            self
        }
    }

    /// Integer, float or Bool.
    pub fn is_number(&self) -> bool {
        matches!(
            self.base(),
            ChType::UInt(_) | ChType::Int(_) | ChType::Float(_) | ChType::Bool
        )
    }

    /// Integer or Bool.
    pub fn is_integer(&self) -> bool {
        matches!(self.base(), ChType::UInt(_) | ChType::Int(_) | ChType::Bool)
    }

    /// `Date`, `DateTime` or `DateTime64`.
    pub fn is_temporal(&self) -> bool {
        matches!(
            self.base(),
            ChType::Date | ChType::DateTime | ChType::DateTime64(_)
        )
    }

    /// Whether ClickHouse's JSON output quotes the values (64-bit integers).
    pub fn is_64bit_integer(&self) -> bool {
        matches!(self.base(), ChType::UInt(64) | ChType::Int(64))
    }

    /// The SQLite column type that stores it (for `CREATE TABLE` of a data source).
    pub fn sqlite_decl(&self) -> &'static str {
        match self.base() {
            ChType::UInt(_) | ChType::Int(_) | ChType::Bool => "INTEGER",
            ChType::Float(_) => "REAL",
            _ => "TEXT",
        }
    }

    /// The value ClickHouse uses where a non-Nullable column has none (outer joins, empty
    /// aggregates), as SQLite SQL.
    pub fn default_sql(&self) -> &'static str {
        match self {
            ChType::UInt(_) | ChType::Int(_) | ChType::Bool => "0",
            ChType::Float(_) => "0.0",
            ChType::Date => "'1970-01-01'",
            ChType::DateTime => "'1970-01-01 00:00:00'",
            ChType::Array(_) => "'[]'",
            ChType::Nullable(_) | ChType::Nothing => "NULL",
            _ => "''",
        }
    }
}

fn unwrap<'a>(text: &'a str, wrapper: &str) -> Option<&'a str> {
    text.strip_prefix(wrapper)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// The smallest type ClickHouse gives an integer literal.
pub fn integer_literal(value: i128) -> ChType {
    if value >= 0 {
        match value {
            0..=0xFF => ChType::UInt(8),
            0x100..=0xFFFF => ChType::UInt(16),
            0x1_0000..=0xFFFF_FFFF => ChType::UInt(32),
            _ => ChType::UInt(64),
        }
    } else {
        match value {
            -0x80..=-1 => ChType::Int(8),
            -0x8000..=-0x81 => ChType::Int(16),
            -0x8000_0000..=-0x8001 => ChType::Int(32),
            _ => ChType::Int(64),
        }
    }
}

/// Which arithmetic operator a result type is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `+` and `*`: the next wider integer.
    Widen,
    /// `-`: the next wider *signed* integer.
    Minus,
    /// `%`, `intDiv`: the wider of the two, no promotion.
    Keep,
}

/// The result type of integer/float arithmetic, as ClickHouse computes it.
pub fn arithmetic(op: Arith, a: &ChType, b: &ChType) -> ChType {
    let (x, y) = (numeric(a.base()), numeric(b.base()));
    let result = match (x, y) {
        (ChType::Float(_), _) | (_, ChType::Float(_)) => ChType::Float(64),
        (x, y) => {
            let (xs, xb) = int_parts(&x);
            let (ys, yb) = int_parts(&y);
            let bits = xb.max(yb);
            let signed = xs || ys || op == Arith::Minus;
            let bits = match op {
                Arith::Keep if xs == ys => bits,
                // Mixed signedness needs a wider signed type to hold both ranges.
                Arith::Keep if (xs && xb > yb) || (ys && yb > xb) => bits,
                _ => (bits * 2).min(64),
            };
            if signed {
                ChType::Int(bits)
            } else {
                ChType::UInt(bits)
            }
        }
    };
    result.nullable_if(&[a, b])
}

fn numeric(t: &ChType) -> ChType {
    match t {
        ChType::Bool => ChType::UInt(8),
        ChType::Float(_) => ChType::Float(64),
        other => other.clone(),
    }
}

fn int_parts(t: &ChType) -> (bool, u8) {
    match t {
        ChType::Int(bits) => (true, *bits),
        ChType::UInt(bits) => (false, *bits),
        _ => (true, 64),
    }
}

/// The common type of branches (`if`, `multiIf`, `CASE`, `coalesce`, array elements), or
/// `None` when ClickHouse has none (it refuses such a query).
pub fn common(types: &[&ChType]) -> Option<ChType> {
    let nullable = types.iter().any(|t| t.is_nullable());
    let mut bases = types
        .iter()
        .map(|t| t.base())
        .filter(|t| **t != ChType::Nothing);
    let Some(first) = bases.next() else {
        return Some(ChType::Nothing);
    };
    let mut acc = first.clone();
    for t in bases {
        acc = match (&acc, t) {
            (a, b) if a == b => acc.clone(),
            (a, b) if a.is_number() && b.is_number() => widest_number(a, b),
            (ChType::Date, ChType::DateTime) | (ChType::DateTime, ChType::Date) => ChType::DateTime,
            (ChType::Array(a), ChType::Array(b)) => ChType::Array(Box::new(common(&[a, b])?)),
            _ => return None,
        };
    }
    Some(if nullable { acc.nullable() } else { acc })
}

/// The smallest number type holding both (`UInt8` and `Int8` give `Int16`).
fn widest_number(a: &ChType, b: &ChType) -> ChType {
    match (numeric(a), numeric(b)) {
        (ChType::Float(_), _) | (_, ChType::Float(_)) => ChType::Float(64),
        (x, y) => {
            let (xs, xb) = int_parts(&x);
            let (ys, yb) = int_parts(&y);
            if xs == ys {
                if xs {
                    ChType::Int(xb.max(yb))
                } else {
                    ChType::UInt(xb.max(yb))
                }
            } else {
                let (ub, sb) = if xs { (yb, xb) } else { (xb, yb) };
                if sb > ub {
                    ChType::Int(sb)
                } else if ub == 64 {
                    // ClickHouse would pick Int128, which is not stored here.
                    ChType::Int(64)
                } else {
                    ChType::Int(ub * 2)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> ChType {
        ChType::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_datasource_types() {
        for name in [
            "UInt64",
            "Int8",
            "Float64",
            "String",
            "Date",
            "DateTime",
            "Array(String)",
            "Nullable(Int32)",
            "DateTime64(3)",
        ] {
            assert_eq!(t(name).to_string(), name);
        }
        assert_eq!(t("LowCardinality(String)"), ChType::String);
        assert_eq!(t("DateTime('UTC')"), ChType::DateTime);
        assert_eq!(ChType::parse("Decimal(10, 2)"), None);
    }

    #[test]
    fn arithmetic_follows_clickhouse() {
        // Each expected type was read off ClickHouse with toTypeName.
        let cases = [
            (Arith::Widen, "UInt8", "UInt8", "UInt16"),
            (Arith::Minus, "UInt8", "UInt8", "Int16"),
            (Arith::Widen, "UInt32", "UInt32", "UInt64"),
            (Arith::Widen, "UInt64", "Int64", "Int64"),
            (Arith::Widen, "Int32", "UInt8", "Int64"),
            (Arith::Widen, "UInt8", "Int8", "Int16"),
            (Arith::Widen, "Float32", "UInt8", "Float64"),
        ];
        for (op, a, b, want) in cases {
            assert_eq!(
                arithmetic(op, &t(a), &t(b)).to_string(),
                want,
                "{a} {op:?} {b}"
            );
        }
        assert_eq!(integer_literal(300), ChType::UInt(16));
        assert_eq!(integer_literal(-1), ChType::Int(8));
    }

    #[test]
    fn common_types_of_branches() {
        let c = |a: &str, b: &str| common(&[&t(a), &t(b)]).map(|t| t.to_string());
        assert_eq!(c("UInt8", "Float64").as_deref(), Some("Float64"));
        assert_eq!(c("UInt8", "Int8").as_deref(), Some("Int16"));
        assert_eq!(c("Date", "DateTime").as_deref(), Some("DateTime"));
        assert_eq!(
            c("Nullable(UInt8)", "UInt8").as_deref(),
            Some("Nullable(UInt8)")
        );
        assert_eq!(c("String", "UInt8"), None);
        assert_eq!(
            common(&[&ChType::Nothing, &t("UInt8")]).map(|t| t.to_string()),
            Some("Nullable(UInt8)".into())
        );
    }
}
