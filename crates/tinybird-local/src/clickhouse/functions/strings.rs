//! String, regular-expression, JSON and URL functions, and conversions (`toString`,
//! `toInt32`, `CAST`). ClickHouse counts string lengths and positions in bytes; the
//! `ch_*` SQLite functions they map to do too (see `super::super::sqlite::text`).

use super::{arity, nullable_like, simple};
use crate::clickhouse::TranslateError;
use crate::clickhouse::emitted::E;
use crate::clickhouse::translate::unsupported;
use crate::clickhouse::types::ChType;

fn string_ty(args: &[E]) -> Option<ChType> {
    nullable_like(ChType::String, args)
}

fn bool_ty(args: &[E]) -> Option<ChType> {
    nullable_like(ChType::UInt(8), args)
}

fn is_array(e: &E) -> bool {
    matches!(e.ty.as_ref().map(ChType::base), Some(ChType::Array(_)))
}

/// The string functions; `None` when `name` is not one.
pub fn call(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    let with = |extra: &[&str]| -> Vec<E> {
        let mut all: Vec<E> = extra
            .iter()
            .map(|x| E::constant((*x).to_owned(), ChType::String))
            .collect();
        all.extend(args.iter().cloned());
        all
    };
    Ok(Some(match name {
        "concat" => {
            if args.is_empty() {
                return Err(TranslateError::Invalid("concat needs arguments".into()));
            }
            let parts: Vec<E> = args.iter().map(|a| as_text(a.clone())).collect();
            let sql = parts
                .iter()
                .map(|p| p.sql.as_str())
                .collect::<Vec<_>>()
                .join(" || ");
            E::from_parts(
                format!("({sql})"),
                string_ty(args),
                &args.iter().collect::<Vec<_>>(),
            )
        }
        "lower" | "lcase" | "lowerUTF8" => {
            arity(name, args, 1, 1)?;
            simple("lower", args, string_ty(args))
        }
        "upper" | "ucase" | "upperUTF8" => {
            arity(name, args, 1, 1)?;
            simple("upper", args, string_ty(args))
        }
        "length" => {
            arity(name, args, 1, 1)?;
            let func = if is_array(&args[0]) {
                "json_array_length"
            } else {
                "octet_length"
            };
            simple(func, args, nullable_like(ChType::UInt(64), args))
        }
        "lengthUTF8" | "char_length" | "character_length" => {
            arity(name, args, 1, 1)?;
            simple("length", args, nullable_like(ChType::UInt(64), args))
        }
        "empty" | "notEmpty" => {
            arity(name, args, 1, 1)?;
            let len = if is_array(&args[0]) {
                "json_array_length"
            } else {
                "octet_length"
            };
            let op = if name == "empty" { "=" } else { ">" };
            E::from_parts(
                format!("({len}({}) {op} 0)", args[0].sql),
                bool_ty(args),
                &[&args[0]],
            )
        }
        "substring" | "substr" | "mid" => {
            arity(name, args, 2, 3)?;
            simple("ch_substring", args, string_ty(args))
        }
        "left" => {
            arity(name, args, 2, 2)?;
            let sql = format!("ch_substring({}, 1, {})", args[0].sql, args[1].sql);
            E::from_parts(sql, string_ty(args), &[&args[0], &args[1]])
        }
        "right" => {
            arity(name, args, 2, 2)?;
            let sql = format!("ch_substring({}, -({}))", args[0].sql, args[1].sql);
            E::from_parts(sql, string_ty(args), &[&args[0], &args[1]])
        }
        "position" | "locate" => {
            arity(name, args, 2, 2)?;
            simple("ch_position", args, nullable_like(ChType::UInt(64), args))
        }
        "positionCaseInsensitive" => {
            arity(name, args, 2, 2)?;
            let sql = format!(
                "ch_position(lower({}), lower({}))",
                args[0].sql, args[1].sql
            );
            E::from_parts(
                sql,
                nullable_like(ChType::UInt(64), args),
                &[&args[0], &args[1]],
            )
        }
        "startsWith" => {
            arity(name, args, 2, 2)?;
            simple("ch_starts_with", args, bool_ty(args))
        }
        "endsWith" => {
            arity(name, args, 2, 2)?;
            simple("ch_ends_with", args, bool_ty(args))
        }
        "replaceAll" | "replace" => {
            arity(name, args, 3, 3)?;
            simple("ch_replace_all", args, string_ty(args))
        }
        "replaceOne" => {
            arity(name, args, 3, 3)?;
            simple("ch_replace_one", args, string_ty(args))
        }
        "replaceRegexpAll" | "replaceRegexpOne" => {
            arity(name, args, 3, 3)?;
            let mut all = args.to_vec();
            let flag = if name == "replaceRegexpAll" { "1" } else { "0" };
            all.push(E::constant(flag.into(), ChType::UInt(8)));
            simple("ch_replace_regexp", &all, string_ty(args))
        }
        "match" => {
            arity(name, args, 2, 2)?;
            simple("ch_match", args, bool_ty(args))
        }
        "extract" => {
            arity(name, args, 2, 2)?;
            simple("ch_extract", args, string_ty(args))
        }
        "extractAll" => {
            arity(name, args, 2, 2)?;
            simple(
                "ch_extract_all",
                args,
                Some(ChType::Array(Box::new(ChType::String))),
            )
        }
        "splitByChar" | "splitByString" => {
            arity(name, args, 2, 2)?;
            simple(
                "ch_split",
                args,
                Some(ChType::Array(Box::new(ChType::String))),
            )
        }
        "trim" | "trimBoth" | "trimLeft" | "ltrim" | "trimRight" | "rtrim" => {
            arity(name, args, 1, 1)?;
            let func = match name {
                "trimLeft" | "ltrim" => "ltrim",
                "trimRight" | "rtrim" => "rtrim",
                _ => "trim",
            };
            let sql = format!("{func}({}, ' ')", args[0].sql);
            E::from_parts(sql, string_ty(args), &[&args[0]])
        }
        "reverse" => {
            arity(name, args, 1, 1)?;
            if is_array(&args[0]) {
                simple("ch_array_reverse", args, args[0].ty.clone())
            } else {
                simple("ch_reverse", args, string_ty(args))
            }
        }
        "repeat" => {
            arity(name, args, 2, 2)?;
            simple("ch_repeat", args, string_ty(args))
        }
        "leftPad" | "rightPad" => {
            arity(name, args, 2, 3)?;
            let mut all = args.to_vec();
            if all.len() == 2 {
                all.push(E::constant("' '".into(), ChType::String));
            }
            let side = if name == "leftPad" { "1" } else { "0" };
            all.push(E::constant(side.into(), ChType::UInt(8)));
            simple("ch_pad", &all, string_ty(args))
        }
        "JSONExtractString" | "JSONExtractRaw" => json(name, &with, args, ChType::String)?,
        "JSONExtractInt" => json(name, &with, args, ChType::Int(64))?,
        "JSONExtractUInt" => json(name, &with, args, ChType::UInt(64))?,
        "JSONExtractFloat" => json(name, &with, args, ChType::Float(64))?,
        "JSONExtractBool" | "JSONHas" => json(name, &with, args, ChType::UInt(8))?,
        "JSONLength" => json(name, &with, args, ChType::UInt(64))?,
        "domain" | "domainWithoutWWW" | "path" | "pathFull" | "cutQueryString" | "cutFragment"
        | "protocol" | "queryString" | "fragment" | "topLevelDomain" | "cutWWW" => {
            arity(name, args, 1, 1)?;
            simple("ch_url", &with(&[&format!("'{name}'")]), string_ty(args))
        }
        "extractURLParameter" => {
            arity(name, args, 2, 2)?;
            simple("ch_url", &with(&["'extractURLParameter'"]), string_ty(args))
        }
        _ => return conversion(name, args),
    }))
}

fn json(
    name: &str,
    with: &dyn Fn(&[&str]) -> Vec<E>,
    args: &[E],
    ty: ChType,
) -> Result<E, TranslateError> {
    arity(name, args, 1, 16)?;
    Ok(simple("ch_json", &with(&[&format!("'{name}'")]), Some(ty)))
}

/// `toString`, `toInt32`, `toFloat64OrZero`, `toDate`, ...
fn conversion(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    let (base, mode) = if let Some(b) = name.strip_suffix("OrZero") {
        (b, "zero")
    } else if let Some(b) = name.strip_suffix("OrNull") {
        (b, "null")
    } else {
        (name, "")
    };
    let Some(target) = base.strip_prefix("to").and_then(ChType::parse) else {
        return Ok(None);
    };
    if base == "toDateTime64" {
        arity(name, args, 2, 3)?;
    } else {
        arity(name, args, 1, 2)?;
    }
    if base != "toDateTime64" && args.len() == 2 {
        // toDateTime(x, 'UTC'): every time here is UTC.
        match &args[1].literal {
            Some(tz) if tz == "UTC" || tz == "Etc/UTC" => {}
            _ => return Err(unsupported("time zones other than UTC")),
        }
    }
    let e = args[0].clone();
    let target = match (base, args.get(1)) {
        ("toDateTime64", Some(p)) => {
            let precision = p.sql.parse().map_err(|_| {
                TranslateError::Invalid("toDateTime64 wants a constant precision".into())
            })?;
            ChType::DateTime64(precision)
        }
        _ => target,
    };
    let converted = convert_mode(e, &target, mode)?;
    Ok(Some(converted))
}

/// Converts a value to `ty` as `CAST`/`toT` do.
pub fn convert(e: E, ty: &ChType) -> Result<E, TranslateError> {
    convert_mode(e, ty, "")
}

fn convert_mode(e: E, ty: &ChType, mode: &str) -> Result<E, TranslateError> {
    let nullable_out = ty.is_nullable() || mode == "null";
    let base = ty.base().clone();
    let mode_sql = format!("'{mode}'");
    let sql = match &base {
        ChType::String => return Ok(typed(as_text(e), ty.clone())),
        ChType::UInt(bits) | ChType::Int(bits) => {
            let signed = matches!(base, ChType::Int(_));
            format!(
                "ch_to_int({}, {bits}, {}, {mode_sql})",
                e.sql,
                u8::from(signed)
            )
        }
        ChType::Bool => format!("ch_to_int({}, 1, 0, {mode_sql})", e.sql),
        ChType::Float(_) => format!("ch_to_float({}, {mode_sql})", e.sql),
        ChType::Date => format!("ch_to_date({})", e.sql),
        ChType::DateTime => format!("ch_to_datetime({})", e.sql),
        ChType::DateTime64(p) => format!("ch_to_datetime64({}, {p})", e.sql),
        ChType::Array(_) | ChType::Nullable(_) | ChType::Nothing => {
            return Err(unsupported(format!("conversion to {ty}")));
        }
    };
    let out = if nullable_out || e.ty.as_ref().is_some_and(ChType::is_nullable) {
        base.nullable()
    } else {
        base
    };
    Ok(E {
        sql,
        ty: Some(out),
        literal: None,
        ..e
    })
}

fn typed(e: E, ty: ChType) -> E {
    E { ty: Some(ty), ..e }
}

/// A value as ClickHouse prints it in `toString`/`concat`.
pub fn as_text(e: E) -> E {
    let sql = match e.ty.as_ref().map(ChType::base) {
        Some(ChType::String | ChType::Date | ChType::DateTime | ChType::DateTime64(_)) => {
            return typed(e, ChType::String);
        }
        Some(ChType::UInt(_) | ChType::Int(_)) => format!("CAST({} AS TEXT)", e.sql),
        Some(ChType::Bool) => format!("ch_to_string({}, 'Bool')", e.sql),
        Some(ChType::Array(inner)) => format!("ch_to_string({}, 'Array({inner})')", e.sql),
        _ => format!("ch_to_string({}, '')", e.sql),
    };
    let nullable = e.ty.as_ref().is_some_and(ChType::is_nullable);
    E {
        sql,
        ty: Some(if nullable {
            ChType::String.nullable()
        } else {
            ChType::String
        }),
        literal: None,
        ..e
    }
}
