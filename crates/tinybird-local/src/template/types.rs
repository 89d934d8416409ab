//! Tinybird's typed parameter functions (`String(x)`, `Int32(x, 10)`, `Array(x, 'Int32')`, ...).
//!
//! Each function reads a parameter's raw text, checks it against its type and returns the typed
//! value. It never produces SQL: turning a value into a `?` placeholder is the output
//! formatter's job, so the same call works inside `{% if %}` comparisons and in `{{ }}` output.
//! Errors a caller can fix (missing or malformed values) travel inside the minijinja error as a
//! [`ParamError`] source, so `render` can hand them back unchanged.

use minijinja::value::{Kwargs, Value};
use minijinja::{Error, ErrorKind};

use super::{Param, ParamError};

/// The scalar types a parameter may be declared as; `Array` takes one of these per element.
pub(super) const SCALAR_TYPES: &[&str] = &[
    "String",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float32",
    "Float64",
    "Date",
    "DateTime",
    "DateTime64",
    "Boolean",
];

/// Longest raw value quoted back in an error message; longer ones are cut (they are user input).
const MAX_QUOTED: usize = 80;

/// `Int32(x)`, `Int32(x, 10)`, `Int32(x, default=10)`: one typed value.
pub(super) fn scalar(ty: &'static str, args: &[Value]) -> Result<Value, Error> {
    let (positional, kwargs) = split_args(args)?;
    if positional.is_empty() || positional.len() > 2 {
        return Err(usage(format!(
            "{ty}() takes a parameter and an optional default, e.g. {ty}(x) or {ty}(x, default)"
        )));
    }
    let (name, raw) = read_target(&positional[0]);
    let raw = raw
        .and_then(|values| values.into_iter().next())
        .filter(|r| ty == "String" || !r.is_empty());
    let default = match positional.get(1) {
        Some(value) => Some(value.clone()),
        None => kwargs_default(&kwargs)?,
    };
    let result = match (raw, default) {
        (Some(raw), _) => parse_typed(&name, ty, &raw),
        // An explicit `None` default makes the parameter optional; it binds as SQL NULL.
        (None, Some(default)) if default.is_none() => Ok(Value::from(())),
        (None, Some(default)) => parse_typed(&name, ty, &default.to_string()),
        (None, None) => Err(ParamError::Missing { name }),
    };
    result.map_err(param_error)
}

/// `Array(x, 'Int32')`, `Array(x, 'String', 'a,b')`: a list of typed values.
pub(super) fn array(args: &[Value]) -> Result<Value, Error> {
    let (positional, kwargs) = split_args(args)?;
    if positional.is_empty() || positional.len() > 3 {
        return Err(usage(
            "Array() takes a parameter, an element type and an optional default, \
             e.g. Array(ids, 'Int32') or Array(ids, 'Int32', '1,2')"
                .into(),
        ));
    }
    let ty = match positional.get(1) {
        None => "String",
        Some(ty) => {
            let ty = ty.as_str().unwrap_or_default();
            SCALAR_TYPES
                .iter()
                .copied()
                .find(|t| *t == ty)
                .ok_or_else(|| {
                    usage(format!(
                        "Array() element type '{ty}' is not one of {}",
                        SCALAR_TYPES.join(", ")
                    ))
                })?
        }
    };
    let (name, raw) = read_target(&positional[0]);
    // One value is split on commas; repeated keys are taken as they are, so a String element
    // may contain a comma when the client repeats the key.
    let raw = raw
        .map(|values| match values.as_slice() {
            [single] => split_list(single),
            _ => values,
        })
        .filter(|values| !values.iter().all(String::is_empty));
    let default = match positional.get(2) {
        Some(value) => Some(value.clone()),
        None => kwargs_default(&kwargs)?,
    };
    let items = match (raw, default) {
        (Some(items), _) => items,
        (None, Some(default)) if default.as_str().is_some() => {
            split_list(default.as_str().unwrap_or_default())
        }
        (None, Some(default)) => match default.try_iter() {
            Ok(iter) => iter.map(|v| v.to_string()).collect(),
            Err(_) => vec![default.to_string()],
        },
        (None, None) => return Err(param_error(ParamError::Missing { name })),
    };
    items
        .iter()
        .map(|item| {
            let item = if ty == "String" { item } else { item.trim() };
            parse_typed(&name, ty, item)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::from)
        .map_err(param_error)
}

/// `defined(x)`: the parameter is present with at least one non-empty value.
pub(super) fn defined(value: &Value) -> bool {
    match value.downcast_object_ref::<Param>() {
        Some(param) => param.is_defined(),
        None => !(value.is_undefined() || value.is_none()),
    }
}

/// Checks `raw` against `ty` and returns the typed value `{{ }}` will bind.
pub(super) fn parse_typed(name: &str, ty: &str, raw: &str) -> Result<Value, ParamError> {
    let invalid = |detail: &str| ParamError::Invalid {
        name: name.to_owned(),
        ty: ty.to_owned(),
        reason: format!("'{}' is not a valid {ty}{detail}", quote(raw)),
    };
    match ty {
        "String" => Ok(Value::from(raw)),
        "Float32" | "Float64" => {
            let number: f64 = raw.trim().parse().map_err(|_| invalid(""))?;
            let finite = number.is_finite() && (ty == "Float64" || number.abs() <= f32::MAX as f64);
            if finite {
                Ok(Value::from(number))
            } else {
                Err(invalid(" (not a finite number in range)"))
            }
        }
        "Date" => {
            let ok = raw.len() == 10 && chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok();
            if ok {
                Ok(Value::from(raw))
            } else {
                Err(invalid(" (expected YYYY-MM-DD)"))
            }
        }
        "DateTime" => {
            let ok = raw.len() == 19
                && chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").is_ok();
            if ok {
                Ok(Value::from(raw))
            } else {
                Err(invalid(" (expected YYYY-MM-DD HH:MM:SS)"))
            }
        }
        "DateTime64" => {
            let ok = raw.len() >= 19
                && chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f").is_ok();
            if ok {
                Ok(Value::from(raw))
            } else {
                Err(invalid(" (expected YYYY-MM-DD HH:MM:SS[.fff])"))
            }
        }
        "Boolean" => {
            let falsy = raw == "0" || raw.eq_ignore_ascii_case("false");
            Ok(Value::from(!falsy))
        }
        _ => {
            let (min, max) = int_range(ty).ok_or_else(|| ParamError::Template {
                message: format!("unknown parameter type {ty}"),
            })?;
            let number: i128 = raw.trim().parse().map_err(|_| invalid(""))?;
            if (min..=max).contains(&number) {
                Ok(Value::from(number))
            } else {
                Err(invalid(&format!(" (out of range {min}..{max})")))
            }
        }
    }
}

/// The inclusive range of an integer type, `None` for other names.
fn int_range(ty: &str) -> Option<(i128, i128)> {
    Some(match ty {
        "Int8" => (i8::MIN.into(), i8::MAX.into()),
        "Int16" => (i16::MIN.into(), i16::MAX.into()),
        "Int32" => (i32::MIN.into(), i32::MAX.into()),
        "Int64" => (i64::MIN.into(), i64::MAX.into()),
        "UInt8" => (0, u8::MAX.into()),
        "UInt16" => (0, u16::MAX.into()),
        "UInt32" => (0, u32::MAX.into()),
        "UInt64" => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// The name to report and the raw values of a type function's first argument. A parameter
/// gives its own name; any other value (a loop variable, a literal) is read as its text.
pub(super) fn read_target(value: &Value) -> (String, Option<Vec<String>>) {
    if let Some(param) = value.downcast_object_ref::<Param>() {
        let values = (!param.values.is_empty()).then(|| param.values.clone());
        return (param.name.clone(), values);
    }
    let values = (!(value.is_undefined() || value.is_none())).then(|| vec![value.to_string()]);
    ("value".to_owned(), values)
}

/// Separates positional arguments from the trailing keyword arguments.
fn split_args(args: &[Value]) -> Result<(&[Value], Option<Kwargs>), Error> {
    match args.split_last() {
        Some((last, rest)) if last.is_kwargs() => Ok((rest, Some(Kwargs::try_from(last.clone())?))),
        _ => Ok((args, None)),
    }
}

/// Tinybird accepts `default=` and documentation keywords (`description=`, `required=`, ...);
/// only `default` changes what is bound, the rest are ignored here.
fn kwargs_default(kwargs: &Option<Kwargs>) -> Result<Option<Value>, Error> {
    match kwargs {
        Some(kwargs) if kwargs.has("default") => kwargs.get::<Value>("default").map(Some),
        _ => Ok(None),
    }
}

fn split_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(str::to_owned).collect()
}

fn quote(raw: &str) -> String {
    match raw.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}...", &raw[..cut]),
        None => raw.to_owned(),
    }
}

/// Wraps a caller-facing error so `render` can recover it from the minijinja error.
pub(super) fn param_error(err: ParamError) -> Error {
    Error::new(ErrorKind::InvalidOperation, err.to_string()).with_source(err)
}

/// A mistake in how the pipe calls a function: the pipe author's to fix, not the caller's.
fn usage(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}
