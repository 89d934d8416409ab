//! The `ch_*` SQLite functions: ClickHouse semantics the translated SQL calls by name.
//!
//! [`register`] installs them on a connection (every pooled connection, before any query);
//! [`FUNCTIONS`] lists their names so the `/v0/sql` authorizer can allow exactly these on
//! top of SQLite's own allow-list. They are pure (no I/O, no connection state), so they
//! widen nothing a query can reach. Each one keeps to the query's budget
//! ([`crate::budget`]): output sized before it is allocated, memory held counted,
//! loops counted against the deadline.

pub mod aggregates;
pub mod arrays;
pub mod convert;
pub mod dates;
pub mod like;
pub mod text;
pub mod web;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, Result};

/// Every function [`register`] installs.
#[rustfmt::skip]
pub const FUNCTIONS: &[&str] = &[
    "ch_like", "ch_ilike", "ch_fmod", "ch_to_date", "ch_to_datetime", "ch_to_datetime64",
    "ch_substring", "ch_position", "ch_starts_with", "ch_ends_with", "ch_replace_all", "ch_replace_one",
    "ch_replace_regexp", "ch_match", "ch_extract", "ch_extract_all", "ch_split", "ch_reverse",
    "ch_repeat", "ch_pad", "ch_to_string", "ch_to_int", "ch_to_float", "ch_round", "ch_floor",
    "ch_ceil", "ch_int_div", "ch_math", "ch_json", "ch_url", "ch_has", "ch_has_any", "ch_has_all",
    "ch_index_of", "ch_array_element", "ch_array_sort", "ch_array_distinct",
    "ch_array_reverse", "ch_array_concat", "ch_array_slice", "ch_array_string_concat",
    "ch_start_of", "ch_start_of_week", "ch_add", "ch_date_diff", "ch_age", "ch_date_part",
    "ch_format_datetime", "ch_any", "ch_any_last", "ch_arg_max", "ch_arg_min",
    "ch_group_array", "ch_group_uniq_array", "ch_quantile", "ch_quantile_exact",
    "ch_quantiles", "ch_top_k", "ch_var",
];

/// Installs every `ch_*` function on `conn`.
pub fn register(conn: &Connection) -> Result<()> {
    text::register(conn)?;
    convert::register(conn)?;
    dates::register(conn)?;
    arrays::register(conn)?;
    web::register(conn)?;
    aggregates::register(conn)
}

/// Deterministic UTF-8 functions (SQLite may fold them).
pub(crate) fn flags() -> FunctionFlags {
    FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC
}

/// The longest function error message: one quotes its argument, which may be megabytes.
const MAX_MESSAGE: usize = 512;

/// A function error the query's caller reads (as ClickHouse would throw it), cut to
/// [`MAX_MESSAGE`] bytes.
pub(crate) fn fail(message: impl Into<String>) -> Error {
    let mut message = message.into();
    if message.len() > MAX_MESSAGE {
        let cut = (0..=MAX_MESSAGE)
            .rev()
            .find(|i| message.is_char_boundary(*i))
            .unwrap_or(0);
        message.truncate(cut);
        message.push_str("...");
    }
    Error::UserFunctionError(message.into())
}

/// Argument `i` as text (numbers formatted), `None` for NULL.
pub(crate) fn text_arg(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(f) => Some(format_float(f)),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

/// Argument `i` as an integer (text parsed), `None` for NULL or not a number.
pub(crate) fn int_arg(ctx: &Context<'_>, i: usize) -> Option<i64> {
    match ctx.get_raw(i) {
        ValueRef::Integer(n) => Some(n),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// A float as ClickHouse prints it: shortest round-trip digits, no trailing `.0`.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let text = format!("{f}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests;
