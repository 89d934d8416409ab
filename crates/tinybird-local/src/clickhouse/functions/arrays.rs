//! Arrays: literals, `arr[i]`, `has`, `indexOf`, `arraySort`, `arrayJoin`, ...
//!
//! An array is stored as JSON text (`[1,2]`, `["a","b"]`), which SQLite's JSON functions
//! build and read; the result type keeps the element type so `meta` says `Array(String)`
//! and the JSON output is a real array. `arrayJoin` multiplies rows by joining a numbers
//! series (at most `ARRAY_JOIN_MAX` elements per array).

use super::{arity, nullable_like, simple};
use crate::clickhouse::TranslateError;
use crate::clickhouse::emitted::E;
use crate::clickhouse::translate::Ctx;
use crate::clickhouse::types::{self, ChType};

fn element_type(e: &E) -> Option<ChType> {
    match e.ty.as_ref().map(ChType::base) {
        Some(ChType::Array(inner)) => Some((**inner).clone()),
        _ => None,
    }
}

/// The JSON form of an element inside `json_array(...)`.
fn json_value(e: &E) -> String {
    match e.ty.as_ref().map(ChType::base) {
        Some(ChType::Array(_)) => format!("json({})", e.sql),
        _ => e.sql.clone(),
    }
}

/// `[a, b, c]`.
pub fn literal(elems: &[E]) -> Result<E, TranslateError> {
    let mut types = Vec::new();
    for e in elems {
        if let Some(t) = &e.ty {
            types.push(t.clone());
        }
    }
    let ty = if types.len() == elems.len() {
        let refs: Vec<&ChType> = types.iter().collect();
        let elem = types::common(&refs)
            .ok_or_else(|| TranslateError::Invalid("array elements have no common type".into()))?;
        Some(ChType::Array(Box::new(elem)))
    } else {
        None
    };
    let parts: Vec<String> = elems.iter().map(json_value).collect();
    let refs: Vec<&E> = elems.iter().collect();
    Ok(E::from_parts(
        format!("json_array({})", parts.join(", ")),
        ty,
        &refs,
    ))
}

/// `arr[i]` (1-based; negative from the end; out of range is the element type's default).
pub fn element(array: E, index: E) -> Result<E, TranslateError> {
    let elem = element_type(&array);
    let default = elem.as_ref().map_or("NULL", ChType::default_sql);
    let sql = format!(
        "coalesce(ch_array_element({}, {}), {default})",
        array.sql, index.sql
    );
    Ok(E::from_parts(sql, elem, &[&array, &index]))
}

/// `arrayJoin(arr)`: one row per element, from a numbers series joined to the `FROM`.
pub fn array_join(ctx: &mut Ctx<'_>, array: E) -> Result<E, TranslateError> {
    let elem = element_type(&array);
    if array.ty.is_some() && elem.is_none() {
        return Err(TranslateError::Invalid("arrayJoin needs an array".into()));
    }
    let level = ctx.level();
    let k = match level.array_joins.iter().position(|a| *a == array.sql) {
        Some(k) => k,
        None => {
            level.array_joins.push(array.sql.clone());
            level.array_joins.len() - 1
        }
    };
    let sql = format!("json_extract({}, '$[' || `_tb_aj{k}`.i || ']')", array.sql);
    Ok(E::from_parts(sql, elem, &[&array]))
}

/// Array functions that take a lambda: refused by name before their arguments are read.
pub const LAMBDA_FUNCTIONS: &[&str] = &[
    "arrayMap",
    "arrayFilter",
    "arrayExists",
    "arrayAll",
    "arrayCount",
    "arraySum",
    "arrayFirst",
    "arrayLast",
    "arraySplit",
    "arrayFill",
    "arrayReduce",
    "arrayMin",
    "arrayMax",
    "arrayAvg",
];

/// Array functions over emitted arguments; `None` when `name` is not one.
pub fn call(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    let bool_ty = || nullable_like(ChType::UInt(8), &args[..1]);
    Ok(Some(match name {
        "has" => {
            arity(name, args, 2, 2)?;
            simple("ch_has", args, bool_ty())
        }
        "hasAny" | "hasAll" => {
            arity(name, args, 2, 2)?;
            let func = if name == "hasAny" {
                "ch_has_any"
            } else {
                "ch_has_all"
            };
            simple(func, args, bool_ty())
        }
        "indexOf" => {
            arity(name, args, 2, 2)?;
            simple("ch_index_of", args, Some(ChType::UInt(64)))
        }
        "arrayElement" => {
            arity(name, args, 2, 2)?;
            element(args[0].clone(), args[1].clone())?
        }
        "arraySort" | "arrayReverseSort" => {
            arity(name, args, 1, 1)?;
            let desc = if name == "arraySort" { "0" } else { "1" };
            let sql = format!("ch_array_sort({}, {desc})", args[0].sql);
            E::from_parts(sql, args[0].ty.clone(), &[&args[0]])
        }
        "arrayDistinct" => {
            arity(name, args, 1, 1)?;
            simple("ch_array_distinct", args, args[0].ty.clone())
        }
        "arrayReverse" => {
            arity(name, args, 1, 1)?;
            simple("ch_array_reverse", args, args[0].ty.clone())
        }
        "arrayConcat" => {
            arity(name, args, 1, 32)?;
            let refs: Vec<&ChType> = args.iter().filter_map(|a| a.ty.as_ref()).collect();
            let ty = if refs.len() == args.len() {
                types::common(&refs)
            } else {
                None
            };
            simple("ch_array_concat", args, ty)
        }
        "arraySlice" => {
            arity(name, args, 2, 3)?;
            simple("ch_array_slice", args, args[0].ty.clone())
        }
        "arrayStringConcat" => {
            arity(name, args, 1, 2)?;
            let mut all = args.to_vec();
            if all.len() == 1 {
                all.push(E::constant("''".into(), ChType::String));
            }
            simple("ch_array_string_concat", &all, Some(ChType::String))
        }
        _ => return Ok(None),
    }))
}
