//! Array functions over JSON-text arrays: `has`, `indexOf`, `arr[i]`, sort, distinct, ...
//! Elements compare as ClickHouse compares them: numbers by value, strings by bytes.
//!
//! Arrays arrive as JSON text. Parsing one holds memory against the query's budget first
//! ([`parse_held`], sized by [`parsed_size`]); answers are built with [`ArrayText`], which
//! checks the value limit before each element; set operations use hashed [`Key`]s, so none
//! is quadratic in the array's length.

use std::cmp::Ordering;
use std::collections::HashSet;

use rusqlite::functions::Context;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::{fail, flags, int_arg, text_arg};
use crate::budget::{self, Held};

/// At most the bytes a parsed JSON document takes: its text, plus 128 per value (a
/// `serde_json::Value` is 32 bytes, doubled by vector growth, more in an object).
pub fn parsed_size(text: &str) -> usize {
    let values = text
        .bytes()
        .filter(|b| matches!(b, b',' | b'[' | b'{' | b':'))
        .count()
        + 1;
    text.len().saturating_add(values.saturating_mul(128))
}

/// Parses JSON text for `what`, holding its parsed size against the query's memory budget
/// for as long as the returned [`Held`] lives; `None` when it is not JSON.
pub fn parse_held(what: &str, text: &str) -> Result<Option<(Json, Held)>> {
    budget::tick_n(text.len())?;
    let held = budget::hold(what, parsed_size(text))?;
    Ok(serde_json::from_str(text).ok().map(|json| (json, held)))
}

/// Argument `i` as an array (`None` for NULL); its memory is held while the array lives.
fn array(ctx: &Context<'_>, i: usize, what: &str) -> Result<Option<(Vec<Json>, Held)>> {
    let Some(text) = text_arg(ctx, i) else {
        return Ok(None);
    };
    match parse_held(what, &text)? {
        Some((Json::Array(items), held)) => Ok(Some((items, held))),
        _ => {
            let shown: String = text.chars().take(60).collect();
            Err(fail(format!("{what}: '{shown}' is not an array")))
        }
    }
}

/// A JSON array's text built one element at a time, checked against the value limit before
/// each element is added (never a `Vec` of a million values first).
pub struct ArrayText {
    what: &'static str,
    text: String,
}

impl ArrayText {
    /// An empty array for the function `what`.
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            text: String::from("["),
        }
    }

    fn push_text(&mut self, element: &str) -> Result<()> {
        budget::tick_n(element.len())?;
        budget::value(self.what, self.text.len() + element.len() + 2)?;
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(element);
        Ok(())
    }

    /// Appends a string element.
    pub fn push_str(&mut self, item: &str) -> Result<()> {
        budget::value(self.what, self.text.len() + item.len())?;
        self.push_text(&Json::String(item.to_owned()).to_string())
    }

    /// Appends any element.
    pub fn push(&mut self, item: &Json) -> Result<()> {
        self.push_text(&item.to_string())
    }

    /// The array's text.
    pub fn finish(mut self) -> String {
        self.text.push(']');
        self.text
    }
}

/// An array's text from `items`, checked as it is built.
pub fn array_text<'a>(
    what: &'static str,
    items: impl IntoIterator<Item = &'a Json>,
) -> Result<String> {
    let mut out = ArrayText::new(what);
    for item in items {
        out.push(item)?;
    }
    Ok(out.finish())
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
            if text.trim_start().starts_with('[')
                && let Ok(v @ Json::Array(_)) = serde_json::from_str::<Json>(&text)
            {
                return v;
            }
            Json::String(text)
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

/// An element reduced to what [`compare`] calls equal: numbers by value, strings by bytes,
/// anything else by its text. Hashable, so distinct and membership tests are linear.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `null`.
    Null,
    /// A number, as the bits of its `f64` (with `-0` as `0`).
    Number(u64),
    /// A string.
    Text(String),
    /// Anything else, as its JSON text.
    Other(String),
}

impl Key {
    /// The key of `v`.
    pub fn of(v: &Json) -> Key {
        match v {
            Json::Null => Key::Null,
            Json::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                Key::Number(if f == 0.0 { 0 } else { f.to_bits() })
            }
            Json::String(s) => Key::Text(s.clone()),
            other => Key::Other(other.to_string()),
        }
    }
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    conn.create_scalar_function("ch_array_element", 2, f, |ctx| {
        let (Some((items, _held)), Some(i)) = (array(ctx, 0, "arrayElement")?, int_arg(ctx, 1))
        else {
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
        let Some((items, _held)) = array(ctx, 0, "has")? else {
            return Ok(None);
        };
        let needle = Key::of(&to_json(ctx.get_raw(1)));
        budget::tick_n(items.len())?;
        Ok(Some(i64::from(items.iter().any(|x| Key::of(x) == needle))))
    })?;
    for (name, all) in [("ch_has_any", false), ("ch_has_all", true)] {
        conn.create_scalar_function(name, 2, f, move |ctx| {
            let what = if all { "hasAll" } else { "hasAny" };
            let (Some((a, _ha)), Some((b, _hb))) = (array(ctx, 0, what)?, array(ctx, 1, what)?)
            else {
                return Ok(None);
            };
            budget::tick_n(a.len() + b.len())?;
            let present: HashSet<Key> = a.iter().map(Key::of).collect();
            let found = |x: &Json| present.contains(&Key::of(x));
            Ok(Some(i64::from(if all {
                b.iter().all(found)
            } else {
                b.iter().any(found)
            })))
        })?;
    }
    conn.create_scalar_function("ch_index_of", 2, f, |ctx| {
        let Some((items, _held)) = array(ctx, 0, "indexOf")? else {
            return Ok(None);
        };
        let needle = Key::of(&to_json(ctx.get_raw(1)));
        budget::tick_n(items.len())?;
        Ok(Some(
            items
                .iter()
                .position(|x| Key::of(x) == needle)
                .map_or(0, |i| i as i64 + 1),
        ))
    })?;
    conn.create_scalar_function("ch_array_sort", 2, f, |ctx| {
        let Some((mut items, _held)) = array(ctx, 0, "arraySort")? else {
            return Ok(None);
        };
        budget::tick_n(
            items
                .len()
                .saturating_mul(items.len().max(2).ilog2() as usize),
        )?;
        items.sort_by(compare);
        if int_arg(ctx, 1) == Some(1) {
            items.reverse();
        }
        array_text("arraySort", &items).map(Some)
    })?;
    conn.create_scalar_function("ch_array_distinct", 1, f, |ctx| {
        let Some((items, _held)) = array(ctx, 0, "arrayDistinct")? else {
            return Ok(None);
        };
        let mut seen = HashSet::new();
        let kept = items
            .iter()
            .filter(|x| !x.is_null() && seen.insert(Key::of(x)));
        array_text("arrayDistinct", kept).map(Some)
    })?;
    conn.create_scalar_function("ch_array_reverse", 1, f, |ctx| {
        let Some((items, _held)) = array(ctx, 0, "arrayReverse")? else {
            return Ok(None);
        };
        array_text("arrayReverse", items.iter().rev()).map(Some)
    })?;
    conn.create_scalar_function("ch_array_concat", -1, f, |ctx| {
        let mut out = ArrayText::new("arrayConcat");
        for i in 0..ctx.len() {
            match array(ctx, i, "arrayConcat")? {
                Some((items, _held)) => {
                    for item in &items {
                        out.push(item)?;
                    }
                }
                None => return Ok(None),
            }
        }
        Ok(Some(out.finish()))
    })?;
    conn.create_scalar_function("ch_array_slice", -1, f, |ctx| {
        let Some((items, _held)) = array(ctx, 0, "arraySlice")? else {
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
            Some(l) if l >= 0 => start.saturating_add(l),
            Some(l) => n + l,
        };
        let (start, end) = (start.clamp(0, n) as usize, end.clamp(0, n) as usize);
        let slice = if start < end { &items[start..end] } else { &[] };
        array_text("arraySlice", slice).map(Some)
    })?;
    conn.create_scalar_function("ch_array_string_concat", 2, f, |ctx| {
        let Some((items, _held)) = array(ctx, 0, "arrayStringConcat")? else {
            return Ok(None);
        };
        let sep = text_arg(ctx, 1).unwrap_or_default();
        let mut out = String::new();
        for (i, item) in items.iter().filter(|x| !x.is_null()).enumerate() {
            budget::tick()?;
            let part = match item {
                Json::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                other => std::borrow::Cow::Owned(other.to_string()),
            };
            let joiner = if i == 0 { "" } else { sep.as_str() };
            budget::value("arrayStringConcat", out.len() + joiner.len() + part.len())?;
            out.push_str(joiner);
            out.push_str(&part);
        }
        Ok(Some(out))
    })?;
    Ok(())
}
