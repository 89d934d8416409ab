//! String, regex, JSON and URL functions and conversions, with ClickHouse's semantics:
//! byte positions, case-sensitive `LIKE`, `toInt32` wrapping and refusing bad text,
//! `round` to even, floats printed without a trailing `.0`.

use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::{fail, flags, format_float, int_arg, text_arg};

/// `LIKE` matching with `%`, `_` and backslash escapes, on characters.
pub fn like(text: &str, pattern: &str, fold: bool) -> bool {
    let (t, p): (Vec<char>, Vec<char>) = if fold {
        (
            text.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (text.chars().collect(), pattern.chars().collect())
    };
    // Iterative wildcard matching with one backtrack point (linear for `%` patterns).
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let (literal, width) = match p.get(pi) {
            Some('\\') if pi + 1 < p.len() => (Some(p[pi + 1]), 2),
            Some('%') => (None, 1),
            Some('_') => (Some('\u{0}'), 1),
            Some(c) => (Some(*c), 1),
            None => (Some('\u{1}'), 0),
        };
        match (p.get(pi), literal) {
            (Some('%'), _) => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            (Some('_'), _) => {
                ti += 1;
                pi += 1;
                continue;
            }
            (Some(_), Some(c)) if c == t[ti] => {
                ti += 1;
                pi += width;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// ClickHouse's `substring` on bytes: 1-based, negative offsets count from the end, a
/// negative length stops that many bytes before the end.
pub fn substring(s: &str, offset: i64, len: Option<i64>) -> String {
    let bytes = s.as_bytes();
    let n = bytes.len() as i64;
    let start = match offset {
        0 => return String::new(),
        o if o > 0 => o - 1,
        o => (n + o).max(0),
    };
    let end = match len {
        None => n,
        Some(l) if l >= 0 => start.saturating_add(l),
        Some(l) => n + l,
    };
    let (start, end) = (start.clamp(0, n) as usize, end.clamp(0, n) as usize);
    if start >= end {
        return String::new();
    }
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

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

fn regex(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|e| fail(format!("bad regular expression: {e}")))
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    for (name, fold) in [("ch_like", false), ("ch_ilike", true)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
                (Some(t), Some(p)) => Some(i64::from(like(&t, &p, fold))),
                _ => None,
            })
        })?;
    }
    conn.create_scalar_function("ch_substring", -1, f, |ctx| {
        let Some(s) = text_arg(ctx, 0) else {
            return Ok(None);
        };
        let offset = int_arg(ctx, 1).unwrap_or(1);
        let len = if ctx.len() > 2 { int_arg(ctx, 2) } else { None };
        Ok(Some(substring(&s, offset, len)))
    })?;
    conn.create_scalar_function("ch_position", 2, f, |ctx| {
        Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
            (Some(h), Some(n)) => Some(h.find(&n).map_or(0, |i| i as i64 + 1)),
            _ => None,
        })
    })?;
    for (name, start) in [("ch_starts_with", true), ("ch_ends_with", false)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            Ok(match (text_arg(ctx, 0), text_arg(ctx, 1)) {
                (Some(s), Some(p)) => Some(i64::from(if start {
                    s.starts_with(&p)
                } else {
                    s.ends_with(&p)
                })),
                _ => None,
            })
        })?;
    }
    conn.create_scalar_function("ch_replace_one", 3, f, |ctx| {
        let (Some(s), Some(from), Some(to)) =
            (text_arg(ctx, 0), text_arg(ctx, 1), text_arg(ctx, 2))
        else {
            return Ok(None);
        };
        Ok(Some(if from.is_empty() {
            s
        } else {
            s.replacen(&from, &to, 1)
        }))
    })?;
    conn.create_scalar_function("ch_replace_regexp", 4, f, |ctx| {
        let (Some(s), Some(re), Some(to)) = (text_arg(ctx, 0), text_arg(ctx, 1), text_arg(ctx, 2))
        else {
            return Ok(None);
        };
        // ClickHouse writes groups as \1; the regex crate as ${1}.
        let mut replacement = to.replace('$', "$$");
        for d in 0..10 {
            replacement = replacement.replace(&format!("\\{d}"), &format!("${{{d}}}"));
        }
        let re = regex(&re)?;
        let all = int_arg(ctx, 3) == Some(1);
        Ok(Some(
            if all {
                re.replace_all(&s, replacement.as_str())
            } else {
                re.replace(&s, replacement.as_str())
            }
            .into_owned(),
        ))
    })?;
    conn.create_scalar_function("ch_match", 2, f, |ctx| {
        let (Some(s), Some(re)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        Ok(Some(i64::from(regex(&re)?.is_match(&s))))
    })?;
    conn.create_scalar_function("ch_extract", 2, f, |ctx| {
        let (Some(s), Some(re)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let re = regex(&re)?;
        Ok(Some(
            re.captures(&s)
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map_or(String::new(), |m| m.as_str().to_owned()),
        ))
    })?;
    conn.create_scalar_function("ch_extract_all", 2, f, |ctx| {
        let (Some(s), Some(re)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let re = regex(&re)?;
        let found: Vec<Json> = re
            .captures_iter(&s)
            .filter_map(|c| {
                c.get(1)
                    .or_else(|| c.get(0))
                    .map(|m| Json::String(m.as_str().into()))
            })
            .collect();
        Ok(Some(Json::Array(found).to_string()))
    })?;
    conn.create_scalar_function("ch_split", 2, f, |ctx| {
        let (Some(sep), Some(s)) = (text_arg(ctx, 0), text_arg(ctx, 1)) else {
            return Ok(None);
        };
        let parts: Vec<Json> = if sep.is_empty() {
            s.chars().map(|c| Json::String(c.to_string())).collect()
        } else {
            s.split(sep.as_str())
                .map(|p| Json::String(p.into()))
                .collect()
        };
        Ok(Some(Json::Array(parts).to_string()))
    })?;
    conn.create_scalar_function("ch_reverse", 1, f, |ctx| {
        Ok(text_arg(ctx, 0).map(|s| s.chars().rev().collect::<String>()))
    })?;
    conn.create_scalar_function("ch_repeat", 2, f, |ctx| {
        let n = int_arg(ctx, 1).unwrap_or(0).clamp(0, 1 << 20) as usize;
        Ok(text_arg(ctx, 0).map(|s| s.repeat(n)))
    })?;
    conn.create_scalar_function("ch_pad", 4, f, |ctx| {
        let (Some(s), Some(fill)) = (text_arg(ctx, 0), text_arg(ctx, 2)) else {
            return Ok(None);
        };
        let len = int_arg(ctx, 1).unwrap_or(0).clamp(0, 1 << 20) as usize;
        let chars: Vec<char> = s.chars().collect();
        if chars.len() >= len || fill.is_empty() {
            return Ok(Some(
                chars[..len.min(chars.len())].iter().collect::<String>(),
            ));
        }
        let pad: String = fill.chars().cycle().take(len - chars.len()).collect();
        Ok(Some(if int_arg(ctx, 3) == Some(1) {
            pad + &s
        } else {
            s + &pad
        }))
    })?;
    conn.create_scalar_function("ch_to_string", 2, f, |ctx| {
        let hint = text_arg(ctx, 1).unwrap_or_default();
        Ok(to_string(ctx.get_raw(0), &hint))
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
