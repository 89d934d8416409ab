//! Array functions over JSON-text arrays: `has`, `indexOf`, `arr[i]`, sort, distinct, ...
//! Elements compare as ClickHouse compares them: numbers by value, strings by bytes.

use std::cmp::Ordering;

use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::{fail, flags, int_arg, text_arg};

fn array(ctx: &Context<'_>, i: usize) -> Result<Option<Vec<Json>>> {
    let Some(text) = text_arg(ctx, i) else {
        return Ok(None);
    };
    match serde_json::from_str(&text) {
        Ok(Json::Array(items)) => Ok(Some(items)),
        _ => Err(fail(format!("'{text}' is not an array"))),
    }
}

/// An SQLite value as a JSON element.
pub fn to_json(v: ValueRef<'_>) -> Json {
    match v {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(n) => Json::from(n),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let text = String::from_utf8_lossy(t).into_owned();
            // A nested array arrives as its JSON text.
            match serde_json::from_str::<Json>(&text) {
                Ok(v @ Json::Array(_)) => v,
                _ => Json::String(text),
            }
        }
    }
}

/// A JSON element as an SQLite value (nested arrays stay JSON text).
pub fn to_sql(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0)), Value::Integer),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// ClickHouse's order of elements: numbers by value, strings by bytes, NULLs last.
pub fn compare(a: &Json, b: &Json) -> Ordering {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Json::String(x), Json::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Json::Null, Json::Null) => Ordering::Equal,
        (Json::Null, _) => Ordering::Greater,
        (_, Json::Null) => Ordering::Less,
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

fn same(a: &Json, b: &Json) -> bool {
    compare(a, b) == Ordering::Equal && a.is_null() == b.is_null()
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    conn.create_scalar_function("ch_array_element", 2, f, |ctx| {
        let (Some(items), Some(i)) = (array(ctx, 0)?, int_arg(ctx, 1)) else {
            return Ok(Value::Null);
        };
        let index = match i {
            0 => None,
            i if i > 0 => Some(i as usize - 1),
            i => items.len().checked_sub(i.unsigned_abs() as usize),
        };
        Ok(index.and_then(|i| items.get(i)).map_or(Value::Null, to_sql))
    })?;
    conn.create_scalar_function("ch_has", 2, f, |ctx| {
        let Some(items) = array(ctx, 0)? else {
            return Ok(None);
        };
        let needle = to_json(ctx.get_raw(1));
        Ok(Some(i64::from(items.iter().any(|x| same(x, &needle)))))
    })?;
    for (name, all) in [("ch_has_any", false), ("ch_has_all", true)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            let (Some(a), Some(b)) = (array(ctx, 0)?, array(ctx, 1)?) else {
                return Ok(None);
            };
            let found = |x: &Json| a.iter().any(|y| same(x, y));
            Ok(Some(i64::from(if all {
                b.iter().all(found)
            } else {
                b.iter().any(found)
            })))
        })?;
    }
    conn.create_scalar_function("ch_index_of", 2, f, |ctx| {
        let Some(items) = array(ctx, 0)? else {
            return Ok(None);
        };
        let needle = to_json(ctx.get_raw(1));
        Ok(Some(
            items
                .iter()
                .position(|x| same(x, &needle))
                .map_or(0, |i| i as i64 + 1),
        ))
    })?;
    conn.create_scalar_function("ch_array_sort", 2, f, |ctx| {
        let Some(mut items) = array(ctx, 0)? else {
            return Ok(None);
        };
        items.sort_by(compare);
        if int_arg(ctx, 1) == Some(1) {
            items.reverse();
        }
        Ok(Some(Json::Array(items).to_string()))
    })?;
    conn.create_scalar_function("ch_array_distinct", 1, f, |ctx| {
        let Some(items) = array(ctx, 0)? else {
            return Ok(None);
        };
        let mut out: Vec<Json> = Vec::new();
        for x in items.into_iter().filter(|x| !x.is_null()) {
            if !out.iter().any(|y| same(&x, y)) {
                out.push(x);
            }
        }
        Ok(Some(Json::Array(out).to_string()))
    })?;
    conn.create_scalar_function("ch_array_reverse", 1, f, |ctx| {
        let Some(mut items) = array(ctx, 0)? else {
            return Ok(None);
        };
        items.reverse();
        Ok(Some(Json::Array(items).to_string()))
    })?;
    conn.create_scalar_function("ch_array_concat", -1, f, |ctx| {
        let mut out = Vec::new();
        for i in 0..ctx.len() {
            match array(ctx, i)? {
                Some(items) => out.extend(items),
                None => return Ok(None),
            }
        }
        Ok(Some(Json::Array(out).to_string()))
    })?;
    conn.create_scalar_function("ch_array_slice", -1, f, |ctx| {
        let Some(items) = array(ctx, 0)? else {
            return Ok(None);
        };
        let n = items.len() as i64;
        let offset = int_arg(ctx, 1).unwrap_or(1);
        let start = match offset {
            0 => return Ok(Some("[]".to_owned())),
            o if o > 0 => o - 1,
            o => (n + o).max(0),
        };
        let end = match if ctx.len() > 2 { int_arg(ctx, 2) } else { None } {
            None => n,
            Some(l) if l >= 0 => start + l,
            Some(l) => n + l,
        };
        let (start, end) = (start.clamp(0, n) as usize, end.clamp(0, n) as usize);
        let slice = if start < end {
            items[start..end].to_vec()
        } else {
            Vec::new()
        };
        Ok(Some(Json::Array(slice).to_string()))
    })?;
    conn.create_scalar_function("ch_array_string_concat", 2, f, |ctx| {
        let Some(items) = array(ctx, 0)? else {
            return Ok(None);
        };
        let sep = text_arg(ctx, 1).unwrap_or_default();
        let parts: Vec<String> = items
            .iter()
            .filter(|x| !x.is_null())
            .map(|x| match x {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        Ok(Some(parts.join(&sep)))
    })?;
    Ok(())
}
