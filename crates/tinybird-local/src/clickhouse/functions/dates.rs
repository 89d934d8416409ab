//! Date and time: `toStartOf*`, `toYYYYMM`, `today`/`now`, `INTERVAL` arithmetic,
//! `dateDiff`, `dateAdd`, `formatDateTime`, `toUnixTimestamp`, `EXTRACT`.
//!
//! Dates are stored as ISO text (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`), in UTC. What SQLite
//! cannot say in SQL is a `ch_*` function (`super::super::sqlite::dates`). Result types
//! follow ClickHouse: `toStartOfMonth` is a `Date`, `toStartOfHour` a `DateTime`, `Date +
//! INTERVAL 1 HOUR` a `DateTime`.

use sqlparser::ast::{BinaryOperator, DateTimeField, Expr, Interval, Value};

use super::{arity, nullable_like, simple};
use crate::clickhouse::TranslateError;
use crate::clickhouse::emitted::{E, quote};
use crate::clickhouse::translate::{Ctx, unsupported};
use crate::clickhouse::types::ChType;

/// The unit of an interval, as the SQLite functions spell it.
fn unit_name(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().trim_end_matches('s') {
        "second" | "ss" => "second",
        "minute" | "mi" | "n" => "minute",
        "hour" | "hh" | "h" => "hour",
        "day" | "dd" | "d" => "day",
        "week" | "wk" | "ww" => "week",
        "month" | "mm" | "m" => "month",
        "quarter" | "qq" | "q" => "quarter",
        "year" | "yyyy" | "yy" => "year",
        _ => return None,
    })
}

fn field_unit(field: &DateTimeField) -> Result<&'static str, TranslateError> {
    let text = field.to_string();
    unit_name(&text).ok_or_else(|| unsupported(format!("the interval unit {text}")))
}

/// Whether a unit keeps a `Date` a `Date` when added.
fn is_calendar(unit: &str) -> bool {
    matches!(unit, "day" | "week" | "month" | "quarter" | "year")
}

/// The type of `x ± INTERVAL n unit`.
fn shifted_type(ty: &ChType, unit: &str) -> ChType {
    let out = match ty.base() {
        ChType::Date if is_calendar(unit) => ChType::Date,
        ChType::DateTime64(p) => ChType::DateTime64(*p),
        _ => ChType::DateTime,
    };
    out.nullable_if(&[ty])
}

/// The kind of text a `ch_*` date function should return for `ty`.
fn out_kind(ty: &ChType) -> String {
    match ty.base() {
        ChType::Date => "'date'".into(),
        ChType::DateTime64(p) => format!("'datetime64:{p}'"),
        _ => "'datetime'".into(),
    }
}

fn shift(x: &E, n_sql: &str, unit: &str, n: &E) -> Result<E, TranslateError> {
    let ty = x.ty.clone().ok_or_else(|| {
        unsupported("date arithmetic on a column outside the catalog (wrap it in toDateTime)")
    })?;
    if !ty.is_temporal() {
        return Err(TranslateError::Invalid(format!(
            "INTERVAL arithmetic needs a Date or DateTime, not {ty}"
        )));
    }
    let out = shifted_type(&ty, unit);
    let sql = format!("ch_add({}, {n_sql}, '{unit}', {})", x.sql, out_kind(&out));
    Ok(E::from_parts(sql, Some(out), &[x, n]))
}

/// `x ± INTERVAL`: `Some` when one side is an `INTERVAL` (the only sides translated here).
pub fn interval_arithmetic(
    ctx: &mut Ctx<'_>,
    l: &Expr,
    op: &BinaryOperator,
    r: &Expr,
) -> Result<Option<E>, TranslateError> {
    let minus = matches!(op, BinaryOperator::Minus);
    let (date, interval, sign) = match (l, r) {
        (x, Expr::Interval(i)) => (x, i, if minus { "-" } else { "" }),
        (Expr::Interval(i), x) if !minus => (x, i, ""),
        _ => return Ok(None),
    };
    let x = ctx.expr(date)?;
    let (n, unit) = interval_parts(ctx, interval)?;
    let n_sql = format!("{sign}({})", n.sql);
    shift(&x, &n_sql, unit, &n).map(Some)
}

/// `Date ± n`, `DateTime ± n`, `DateTime - DateTime` over sides already translated (each
/// side is translated once: translating them again here made `1 + 1 + ... + 1` take 2^n
/// steps). Gives the sides back when neither is a date.
pub fn temporal_arithmetic(a: E, b: E, minus: bool) -> Result<Result<E, (E, E)>, TranslateError> {
    let temporal = |e: &E| e.ty.as_ref().is_some_and(ChType::is_temporal);
    let integer = |e: &E| e.ty.as_ref().is_none_or(ChType::is_integer);
    if temporal(&a) && temporal(&b) && minus {
        let unit = match a.ty.as_ref().map(ChType::base) {
            Some(ChType::Date) => "day",
            _ => "second",
        };
        let sql = format!("ch_date_diff('{unit}', {}, {})", b.sql, a.sql);
        let nullable = [&a, &b]
            .iter()
            .any(|e| e.ty.as_ref().is_some_and(ChType::is_nullable));
        let ty = if nullable {
            ChType::Int(32).nullable()
        } else {
            ChType::Int(32)
        };
        return Ok(Ok(E::from_parts(sql, Some(ty), &[&a, &b])));
    }
    let (x, n) = match (temporal(&a), temporal(&b)) {
        (true, false) if integer(&b) => (a, b),
        (false, true) if integer(&a) && !minus => (b, a),
        _ => return Ok(Err((a, b))),
    };
    let unit = match x.ty.as_ref().map(ChType::base) {
        Some(ChType::Date) => "day",
        _ => "second",
    };
    let n_sql = if minus {
        format!("-({})", n.sql)
    } else {
        n.sql.clone()
    };
    shift(&x, &n_sql, unit, &n).map(Ok)
}

fn interval_parts(ctx: &mut Ctx<'_>, i: &Interval) -> Result<(E, &'static str), TranslateError> {
    if i.last_field.is_some() || i.fractional_seconds_precision.is_some() {
        return Err(unsupported("compound INTERVALs"));
    }
    let field = i
        .leading_field
        .as_ref()
        .ok_or_else(|| unsupported("an INTERVAL without a unit"))?;
    Ok((ctx.expr(&i.value)?, field_unit(field)?))
}

/// A unit given as `'day'`, `day` or `DAY`.
fn unit_arg(e: &Expr) -> Result<&'static str, TranslateError> {
    let text = match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(id) => id.value.clone(),
        other => other.to_string(),
    };
    unit_name(&text).ok_or_else(|| unsupported(format!("the date unit {text}")))
}

/// Date functions that need their arguments as syntax (units, intervals).
pub fn special(ctx: &mut Ctx<'_>, name: &str, args: &[Expr]) -> Result<Option<E>, TranslateError> {
    Ok(Some(match name {
        "toStartOfInterval" => {
            let [t, Expr::Interval(i)] = args else {
                return Err(TranslateError::Invalid(
                    "toStartOfInterval(t, INTERVAL n unit) takes a time and an interval".into(),
                ));
            };
            let t = ctx.expr(t)?;
            let (n, unit) = interval_parts(ctx, i)?;
            start_of(&t, unit, &n.sql)?
        }
        "dateDiff" | "date_diff" | "DATE_DIFF" | "timestampDiff" | "age" => {
            let [unit, a, b] = args else {
                return Err(TranslateError::Invalid(format!("{name}(unit, start, end)")));
            };
            let unit = unit_arg(unit)?;
            let (a, b) = (ctx.expr(a)?, ctx.expr(b)?);
            let func = if name == "age" {
                "ch_age"
            } else {
                "ch_date_diff"
            };
            let sql = format!("{func}('{unit}', {}, {})", a.sql, b.sql);
            E::from_parts(
                sql,
                nullable_like(ChType::Int(64), &[a.clone(), b.clone()]),
                &[&a, &b],
            )
        }
        "dateAdd" | "date_add" | "DATE_ADD" | "dateSub" | "date_sub" | "DATE_SUB"
        | "timestampAdd" | "timestamp_add" | "timestampSub" | "timestamp_sub" => {
            let minus = name.to_ascii_lowercase().contains("sub");
            let sign = if minus { "-" } else { "" };
            match args {
                [unit, n, x] if !matches!(n, Expr::Interval(_)) => {
                    let unit = unit_arg(unit)?;
                    let (n, x) = (ctx.expr(n)?, ctx.expr(x)?);
                    shift(&x, &format!("{sign}({})", n.sql), unit, &n)?
                }
                [x, Expr::Interval(i)] => {
                    let x = ctx.expr(x)?;
                    let (n, unit) = interval_parts(ctx, i)?;
                    shift(&x, &format!("{sign}({})", n.sql), unit, &n)?
                }
                _ => {
                    return Err(TranslateError::Invalid(format!(
                        "{name}(unit, n, date) or {name}(date, INTERVAL n unit)"
                    )));
                }
            }
        }
        _ => return Ok(None),
    }))
}

fn start_of(t: &E, unit: &str, n: &str) -> Result<E, TranslateError> {
    let ty = t.ty.clone().unwrap_or(ChType::DateTime);
    let out = match (ty.base(), unit) {
        (_, "week" | "month" | "quarter" | "year") => ChType::Date,
        (ChType::Date, "day") => ChType::Date,
        _ => ChType::DateTime,
    }
    .nullable_if(&[&ty]);
    let sql = format!("ch_start_of({}, '{unit}', {n}, {})", t.sql, out_kind(&out));
    Ok(E::from_parts(sql, Some(out), &[t]))
}

/// Date functions over emitted arguments; `None` when `name` is not one.
pub fn call(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    let starts = [
        ("toStartOfSecond", "second", 1),
        ("toStartOfMinute", "minute", 1),
        ("toStartOfFiveMinutes", "minute", 5),
        ("toStartOfFiveMinute", "minute", 5),
        ("toStartOfTenMinutes", "minute", 10),
        ("toStartOfFifteenMinutes", "minute", 15),
        ("toStartOfHour", "hour", 1),
        ("toStartOfDay", "day", 1),
        ("toMonday", "week", 1),
        ("toStartOfMonth", "month", 1),
        ("toStartOfQuarter", "quarter", 1),
        ("toStartOfYear", "year", 1),
    ];
    if let Some((_, unit, n)) = starts.iter().find(|(f, _, _)| *f == name) {
        arity(name, args, 1, 2)?;
        let mut e = start_of(&args[0], unit, &n.to_string())?;
        if *unit == "day" {
            // toStartOfDay is a DateTime even for a Date.
            e.sql = e.sql.replace("'date')", "'datetime')");
            e.ty = e.ty.map(|t| ChType::DateTime.nullable_if(&[&t]));
        }
        return Ok(Some(e));
    }
    let parts = [
        ("toYear", "year", ChType::UInt(16)),
        ("toQuarter", "quarter", ChType::UInt(8)),
        ("toMonth", "month", ChType::UInt(8)),
        ("toDayOfMonth", "day", ChType::UInt(8)),
        ("toDayOfWeek", "dayofweek", ChType::UInt(8)),
        ("toDayOfYear", "dayofyear", ChType::UInt(16)),
        ("toHour", "hour", ChType::UInt(8)),
        ("toMinute", "minute", ChType::UInt(8)),
        ("toSecond", "second", ChType::UInt(8)),
        ("toYYYYMM", "yyyymm", ChType::UInt(32)),
        ("toYYYYMMDD", "yyyymmdd", ChType::UInt(32)),
        ("toUnixTimestamp", "unix", ChType::UInt(32)),
        ("toISOWeek", "isoweek", ChType::UInt(8)),
    ];
    if let Some((_, part, ty)) = parts.iter().find(|(f, _, _)| *f == name) {
        arity(name, args, 1, 1)?;
        let sql = format!("ch_date_part('{part}', {})", args[0].sql);
        return Ok(Some(E::from_parts(
            sql,
            nullable_like(ty.clone(), args),
            &[&args[0]],
        )));
    }
    let adds = [
        ("addSeconds", "second"),
        ("addMinutes", "minute"),
        ("addHours", "hour"),
        ("addDays", "day"),
        ("addWeeks", "week"),
        ("addMonths", "month"),
        ("addQuarters", "quarter"),
        ("addYears", "year"),
    ];
    for (prefix, sign) in [("add", ""), ("subtract", "-")] {
        let found = adds
            .iter()
            .find(|(f, _)| name.strip_prefix(prefix) == f.strip_prefix("add"));
        if let Some((_, unit)) = found {
            arity(name, args, 2, 2)?;
            return shift(
                &args[0],
                &format!("{sign}({})", args[1].sql),
                unit,
                &args[1],
            )
            .map(Some);
        }
    }
    Ok(Some(match name {
        "toStartOfWeek" => {
            arity(name, args, 1, 2)?;
            // Mode 0 (the default) starts weeks on Sunday; odd modes on Monday.
            let mode = args.get(1).map_or("0".to_owned(), |m| m.sql.clone());
            let sql = format!("ch_start_of_week({}, {mode})", args[0].sql);
            E::from_parts(sql, nullable_like(ChType::Date, &args[..1]), &[&args[0]])
        }
        "today" | "CURRENT_DATE" => E::constant("date('now')".into(), ChType::Date),
        "yesterday" => E::constant("date('now', '-1 day')".into(), ChType::Date),
        "now" | "CURRENT_TIMESTAMP" => {
            arity(name, args, 0, 1)?;
            E::constant("datetime('now')".into(), ChType::DateTime)
        }
        "formatDateTime" | "DATE_FORMAT" => {
            arity(name, args, 2, 2)?;
            simple(
                "ch_format_datetime",
                args,
                nullable_like(ChType::String, &args[..1]),
            )
        }
        _ => return Ok(None),
    }))
}

/// The function `EXTRACT(field FROM x)` stands for.
pub fn extract_function(field: &DateTimeField) -> Result<&'static str, TranslateError> {
    Ok(match field_unit(field)? {
        "year" => "toYear",
        "quarter" => "toQuarter",
        "month" => "toMonth",
        "day" => "toDayOfMonth",
        "hour" => "toHour",
        "minute" => "toMinute",
        "second" => "toSecond",
        other => return Err(unsupported(format!("EXTRACT({other} FROM ...)"))),
    })
}

/// A string literal naming a date, as SQL (used by tests).
pub fn date_literal(text: &str) -> String {
    quote(text)
}
