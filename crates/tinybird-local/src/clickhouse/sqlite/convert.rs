//! Conversions and arithmetic with ClickHouse's semantics: `toInt32` wrapping and refusing bad
//! text, `toString` of arrays, `round` to even on the shortest decimal form, `intDiv`, `%` on
//! floats and the math functions. Each answers a number or a value no larger than its input
//! (plus a bracket or a quote per element), so none needs more than the budget's value check.

use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::{fail, flags, format_float, int_arg, text_arg};
use crate::budget;

/// Rounds to `digits` decimals as ClickHouse does for floats: half to even on the shortest
/// decimal form (so `round(2.5)` is 2 and `round(2.675, 2)` is 2.68).
pub fn round_float(x: f64, digits: i64) -> f64 {
    if !x.is_finite() || digits > 15 {
        return x;
    }
    if digits < 0 {
        let scale = 10f64.powi((-digits).min(300) as i32);
        return (x / scale).round_ties_even() * scale;
    }
    // Rust prints the shortest decimal that reads back as `x`: round that text.
    let text = format!("{}", x.abs());
    let (int_part, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits = digits as usize;
    if frac.len() <= digits {
        return x;
    }
    let kept = format!("{int_part}{}", &frac[..digits]);
    let next = frac.as_bytes()[digits];
    let rest_nonzero = frac[digits + 1..].bytes().any(|b| b != b'0');
    let last_odd = kept.bytes().last().is_some_and(|b| (b - b'0') % 2 == 1);
    let up = next > b'5' || (next == b'5' && (rest_nonzero || last_odd));
    let mut n: f64 = kept.parse().unwrap_or(0.0);
    if up {
        n += 1.0;
    }
    let r = n / 10f64.powi(digits as i32);
    if x < 0.0 { -r } else { r }
}

fn round_int(x: i64, digits: i64, mode: &str) -> i64 {
    if digits >= 0 {
        return x;
    }
    let step = 10i64.saturating_pow((-digits) as u32);
    let floor = x.div_euclid(step) * step;
    match mode {
        "floor" => floor,
        "ceil" if floor == x => x,
        "ceil" => floor + step,
        _ => {
            let rem = x - floor;
            if rem * 2 >= step && x >= 0 || rem * 2 > step {
                floor + step
            } else {
                floor
            }
        }
    }
}

fn to_int(ctx: &Context<'_>) -> Result<Option<i64>> {
    let bits = int_arg(ctx, 1).unwrap_or(64);
    let signed = int_arg(ctx, 2).unwrap_or(1) == 1;
    let mode = text_arg(ctx, 3).unwrap_or_default();
    let wrap = |n: i128| -> i64 {
        if bits == 1 {
            return i64::from(n != 0);
        }
        if bits >= 64 {
            return n as i64;
        }
        let modulus = 1i128 << bits;
        let v = n.rem_euclid(modulus);
        (if signed && v >= modulus / 2 {
            v - modulus
        } else {
            v
        }) as i64
    };
    let fallback = |what: &str| match mode.as_str() {
        "zero" => Ok(Some(0)),
        "null" => Ok(None),
        _ => Err(fail(format!("cannot parse '{what}' as an integer"))),
    };
    match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(wrap(n.into()))),
        ValueRef::Real(f) if f.is_finite() => Ok(Some(wrap(f.trunc() as i128))),
        ValueRef::Real(_) => fallback("nan"),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t);
            match text.parse::<i128>() {
                Ok(n) => Ok(Some(wrap(n))),
                Err(_) => match super::dates::parse_datetime(&text) {
                    Some(dt) if text.len() >= 10 && mode.is_empty() => {
                        Ok(Some(dt.and_utc().timestamp()))
                    }
                    _ => fallback(&text),
                },
            }
        }
    }
}

fn to_float(ctx: &Context<'_>) -> Result<Option<f64>> {
    let mode = text_arg(ctx, 1).unwrap_or_default();
    match ctx.get_raw(0) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n as f64)),
        ValueRef::Real(f) => Ok(Some(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t);
            match text.parse::<f64>() {
                Ok(f) => Ok(Some(f)),
                Err(_) => match mode.as_str() {
                    "zero" => Ok(Some(0.0)),
                    "null" => Ok(None),
                    _ => Err(fail(format!("cannot parse '{text}' as a Float64"))),
                },
            }
        }
    }
}

/// A value as ClickHouse's `toString` prints it; `hint` is the ClickHouse type when known.
/// Unbudgeted: for rendering results, whose values already fit the limits.
pub fn to_string(v: ValueRef<'_>, hint: &str) -> Option<String> {
    Some(match v {
        ValueRef::Null => return None,
        ValueRef::Integer(n) if hint == "Bool" => (if n != 0 { "true" } else { "false" }).into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => format_float(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t).into_owned();
            if hint.starts_with("Array(") {
                return Some(array_text(&serde_json::from_str(&text).ok()?));
            }
            text
        }
    })
}

/// `toString` inside a query: the array is parsed within the memory budget and its text
/// form sized before it is built.
fn to_string_checked(v: ValueRef<'_>, hint: &str) -> Result<Option<String>> {
    let (ValueRef::Text(t) | ValueRef::Blob(t)) = v else {
        return Ok(to_string(v, hint));
    };
    if !hint.starts_with("Array(") {
        return Ok(Some(String::from_utf8_lossy(t).into_owned()));
    }
    let text = String::from_utf8_lossy(t);
    let Some((json, _held)) = super::arrays::parse_held("toString", &text)? else {
        return Ok(None);
    };
    budget::value("toString", array_text_len(&json))?;
    Ok(Some(array_text(&json)))
}

/// ClickHouse's text form of an array: `[1,2]`, `['a','b']`.
fn array_text(v: &Json) -> String {
    match v {
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(array_text).collect::<Vec<_>>().join(",")
        ),
        Json::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Json::Null => "NULL".into(),
        other => other.to_string(),
    }
}

/// The length [`array_text`] will have, computed without building it.
fn array_text_len(v: &Json) -> usize {
    match v {
        Json::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(array_text_len).sum::<usize>()
        }
        Json::String(s) => 2 + s.len() + s.bytes().filter(|b| matches!(b, b'\\' | b'\'')).count(),
        Json::Null => 4,
        other => other.to_string().len(),
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    conn.create_scalar_function("ch_to_string", 2, f, |ctx| {
        let hint = text_arg(ctx, 1).unwrap_or_default();
        to_string_checked(ctx.get_raw(0), &hint)
    })?;
    conn.create_scalar_function("ch_to_int", 4, f, to_int)?;
    conn.create_scalar_function("ch_to_float", 2, f, to_float)?;
    for name in ["ch_round", "ch_floor", "ch_ceil"] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            let digits = int_arg(ctx, 1).unwrap_or(0);
            let mode = &name[3..];
            Ok(match ctx.get_raw(0) {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(round_int(n, digits, mode)),
                other => {
                    let x = match other {
                        ValueRef::Real(x) => x,
                        v => text_arg(ctx, 0)
                            .and_then(|t| t.parse().ok())
                            .unwrap_or_else(|| {
                                let _ = v;
                                0.0
                            }),
                    };
                    let scale = 10f64.powi(digits.clamp(-15, 15) as i32);
                    Value::Real(match mode {
                        "floor" => (x * scale).floor() / scale,
                        "ceil" => (x * scale).ceil() / scale,
                        _ => round_float(x, digits),
                    })
                }
            })
        })?;
    }
    conn.create_scalar_function("ch_int_div", 3, f, |ctx| {
        let (a, b) = (ctx.get_raw(0), ctx.get_raw(1));
        if matches!(a, ValueRef::Null) || matches!(b, ValueRef::Null) {
            return Ok(None);
        }
        let as_f = |v: ValueRef<'_>| match v {
            ValueRef::Integer(n) => n as f64,
            ValueRef::Real(f) => f,
            _ => f64::NAN,
        };
        if as_f(b) == 0.0 {
            return if int_arg(ctx, 2) == Some(1) {
                Ok(Some(0))
            } else {
                Err(fail("division by zero in intDiv"))
            };
        }
        Ok(Some(match (a, b) {
            (ValueRef::Integer(x), ValueRef::Integer(y)) => x.wrapping_div(y),
            _ => (as_f(a) / as_f(b)).trunc() as i64,
        }))
    })?;
    conn.create_scalar_function("ch_fmod", 2, f, |ctx| {
        let a: Option<f64> = ctx.get(0)?;
        let b: Option<f64> = ctx.get(1)?;
        Ok(a.zip(b).map(|(a, b)| a % b))
    })?;
    conn.create_scalar_function("ch_math", 3, f, |ctx| {
        let name = text_arg(ctx, 0).unwrap_or_default();
        let x: Option<f64> = ctx.get(1)?;
        let y: Option<f64> = ctx.get(2)?;
        let Some(x) = x else { return Ok(None) };
        let r = match name.as_str() {
            "sqrt" => x.sqrt(),
            "exp" => x.exp(),
            "ln" | "log" => x.ln(),
            "log2" => x.log2(),
            "log10" => x.log10(),
            _ => match y {
                Some(y) => x.powf(y),
                None => return Ok(None),
            },
        };
        Ok(Some(r))
    })?;
    Ok(())
}
