//! ClickHouse functions: the call dispatcher and the scalar functions that are plain
//! SQLite (conditionals, math), with the families in their own files: [`dates`],
//! [`strings`] (strings, JSON, URLs, conversions) and [`arrays`]. Aggregates and window
//! functions are in [`super::aggregates`].
//!
//! A name not listed anywhere is refused by name, with the hint to use Tinybird Local.

pub mod arrays;
pub mod dates;
pub mod strings;

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
};

use super::TranslateError;
use super::emitted::{E, quote};
use super::translate::{Ctx, Ty, unsupported};
use super::types::ChType;

/// A function call's arguments, still as syntax.
pub struct CallArgs {
    /// `f(params)(args)`: the parameters of a parametric aggregate.
    pub params: Vec<Expr>,
    /// The arguments.
    pub args: Vec<Expr>,
    /// `count(*)`.
    pub star: bool,
    /// `count(DISTINCT x)`.
    pub distinct: bool,
}

fn arg_list(
    args: &FunctionArguments,
    what: &str,
) -> Result<(Vec<Expr>, bool, bool), TranslateError> {
    match args {
        FunctionArguments::None => Ok((Vec::new(), false, false)),
        FunctionArguments::Subquery(_) => Err(unsupported(format!("a subquery as {what}"))),
        FunctionArguments::List(list) => {
            if !list.clauses.is_empty() {
                return Err(unsupported("ORDER BY/LIMIT inside a function call"));
            }
            let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
            let mut out = Vec::new();
            let mut star = false;
            for arg in &list.args {
                match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e.clone()),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                    other => return Err(unsupported(format!("the argument {other}"))),
                }
            }
            Ok((out, star, distinct))
        }
    }
}

impl Ctx<'_> {
    /// Emits a function call.
    pub fn function(&mut self, f: &Function) -> Result<E, TranslateError> {
        let name = f.name.to_string();
        if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(unsupported(format!("FILTER/WITHIN GROUP/NULLS on {name}")));
        }
        let (params, _, _) = arg_list(&f.parameters, "a parameter")?;
        let (args, star, distinct) = arg_list(&f.args, "an argument")?;
        let call = CallArgs {
            params,
            args,
            star,
            distinct,
        };
        if let Some(over) = &f.over {
            return self.window(&name, &call, over);
        }
        if arrays::LAMBDA_FUNCTIONS.contains(&name.as_str()) {
            return Err(unsupported(format!("{name} (lambda array functions)")));
        }
        if let Some(e) = self.aggregate(&name, &call)? {
            return Ok(e);
        }
        if call.star || call.distinct || !call.params.is_empty() {
            return Err(unsupported(format!(
                "{name} with *, DISTINCT or parameters"
            )));
        }
        if let Some(e) = dates::special(self, &name, &call.args)? {
            return Ok(e);
        }
        if name == "arrayJoin" {
            let [arg] = call.args.as_slice() else {
                return Err(TranslateError::Invalid("arrayJoin takes one array".into()));
            };
            let array = self.expr(arg)?;
            return arrays::array_join(self, array);
        }
        let mut emitted = Vec::with_capacity(call.args.len());
        for a in &call.args {
            emitted.push(self.expr(a)?);
        }
        call_scalar(self, &name, emitted)
    }
}

/// `name(a, b)` as SQL.
pub fn sql_call(name: &str, args: &[&E]) -> String {
    let inner: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
    format!("{name}({})", inner.join(", "))
}

/// `name(args)` typed `ty`, inheriting the arguments' free columns.
pub fn simple(name: &str, args: &[E], ty: Ty) -> E {
    let refs: Vec<&E> = args.iter().collect();
    E::from_parts(sql_call(name, &refs), ty, &refs)
}

/// `ty`, `Nullable` when any argument is.
pub fn nullable_like(ty: ChType, args: &[E]) -> Ty {
    let nullable = args
        .iter()
        .any(|a| a.ty.as_ref().is_some_and(ChType::is_nullable));
    Some(if nullable { ty.nullable() } else { ty })
}

pub(super) fn arity(name: &str, args: &[E], min: usize, max: usize) -> Result<(), TranslateError> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(TranslateError::Invalid(format!(
            "function {name} takes {want} arguments, not {}",
            args.len()
        )));
    }
    Ok(())
}

/// Scalar functions by ClickHouse name (case-sensitive, as ClickHouse's camelCase names are;
/// the SQL-standard ones also in lower or upper case).
pub fn call_scalar(ctx: &mut Ctx<'_>, name: &str, args: Vec<E>) -> Result<E, TranslateError> {
    let lower = name.to_ascii_lowercase();
    let standard = [
        "if",
        "coalesce",
        "nullif",
        "ifnull",
        "greatest",
        "least",
        "abs",
        "round",
        "floor",
        "ceil",
        "ceiling",
        "sqrt",
        "exp",
        "ln",
        "log",
        "log2",
        "log10",
        "pow",
        "power",
        "sign",
        "pi",
        "lower",
        "upper",
        "length",
        "concat",
        "substring",
        "substr",
        "trim",
        "ltrim",
        "rtrim",
        "position",
        "locate",
        "replace",
        "reverse",
        "repeat",
        "left",
        "right",
        "char_length",
        "character_length",
        "lcase",
        "ucase",
        "isnull",
        "isnotnull",
        "mid",
    ];
    let name = if standard.contains(&lower.as_str()) {
        lower.as_str()
    } else {
        name
    };
    let e = match name {
        "if" => {
            arity(name, &args, 3, 3)?;
            let ty = ctx.branches(&args[1..])?;
            let sql = format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                args[0].sql, args[1].sql, args[2].sql
            );
            E::from_parts(sql, ty, &args.iter().collect::<Vec<_>>())
        }
        "multiIf" => {
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err(TranslateError::Invalid(
                    "multiIf takes condition, value pairs and a final else value".into(),
                ));
            }
            let mut sql = String::from("CASE");
            let mut results = Vec::new();
            for pair in args[..args.len() - 1].chunks(2) {
                sql.push_str(&format!(" WHEN {} THEN {}", pair[0].sql, pair[1].sql));
                results.push(pair[1].clone());
            }
            let last = args.last().expect("odd count");
            sql.push_str(&format!(" ELSE {} END", last.sql));
            results.push(last.clone());
            let ty = ctx.branches(&results)?;
            E::from_parts(sql, ty, &args.iter().collect::<Vec<_>>())
        }
        "ifnull" | "ifNull" | "coalesce" => {
            if args.is_empty() {
                return Err(TranslateError::Invalid(format!("{name} needs arguments")));
            }
            let ty = ctx.branches(&args)?;
            // Non-Nullable as soon as one argument can never be NULL.
            let never_null = args
                .iter()
                .any(|a| a.ty.as_ref().is_some_and(|t| !t.is_nullable()));
            let ty = ty.map(|t| if never_null { t.base().clone() } else { t });
            let func = if name == "coalesce" {
                "coalesce"
            } else {
                "ifnull"
            };
            if func == "ifnull" {
                arity(name, &args, 2, 2)?;
            }
            let refs: Vec<&E> = args.iter().collect();
            E::from_parts(sql_call(func, &refs), ty, &refs)
        }
        "nullif" | "nullIf" => {
            arity(name, &args, 2, 2)?;
            let ty = args[0].ty.clone().map(ChType::nullable);
            simple("nullif", &args, ty)
        }
        "isnull" | "isNull" | "isnotnull" | "isNotNull" => {
            arity(name, &args, 1, 1)?;
            let op = if name.eq_ignore_ascii_case("isnull") {
                "IS NULL"
            } else {
                "IS NOT NULL"
            };
            E::from_parts(
                format!("({} {op})", args[0].sql),
                Some(ChType::UInt(8)),
                &[&args[0]],
            )
        }
        "assumeNotNull" | "toNullable" | "materialize" | "identity" => {
            arity(name, &args, 1, 1)?;
            let mut e = args.into_iter().next().expect("one");
            e.ty = match name {
                "assumeNotNull" => e.ty.map(|t| t.base().clone()),
                "toNullable" => e.ty.map(ChType::nullable),
                _ => e.ty,
            };
            e.literal = None;
            e
        }
        "greatest" | "least" => {
            arity(name, &args, 2, 64)?;
            let ty = ctx.branches(&args)?;
            let func = if name == "greatest" { "max" } else { "min" };
            simple(func, &args, ty)
        }
        "toTypeName" => {
            arity(name, &args, 1, 1)?;
            let ty = args[0]
                .ty
                .as_ref()
                .ok_or_else(|| unsupported("toTypeName of a column outside the catalog"))?;
            let name = quote(&ty.to_string());
            if args[0].agg {
                // Keep the aggregate in the SQL, so the query still aggregates.
                let sql = format!(
                    "CASE WHEN ({}) IS NULL THEN {name} ELSE {name} END",
                    args[0].sql
                );
                E {
                    sql,
                    ty: Some(ChType::String),
                    agg: true,
                    ..E::default()
                }
            } else {
                E::constant(name, ChType::String)
            }
        }
        _ => {
            // ClickHouse: an ordinary function of a bare NULL is Nullable(Nothing).
            let nothing = args.iter().any(|a| a.ty == Some(ChType::Nothing));
            let mut e = scalar_family(name, &args)?.ok_or_else(|| unknown(name))?;
            if nothing {
                e.ty = Some(ChType::Nothing);
            }
            e
        }
    };
    Ok(e)
}

/// The families of plain scalar functions, asked in turn.
fn scalar_family(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    if let Some(e) = math(name, args)? {
        return Ok(Some(e));
    }
    if let Some(e) = strings::call(name, args)? {
        return Ok(Some(e));
    }
    if let Some(e) = dates::call(name, args)? {
        return Ok(Some(e));
    }
    arrays::call(name, args)
}

fn unknown(name: &str) -> TranslateError {
    let state = ["State", "Merge", "MergeState", "SimpleState"];
    if state
        .iter()
        .any(|s| name.ends_with(s) && name.len() > s.len())
    {
        return unsupported(format!(
            "{name} (-State/-Merge combinators need AggregatingMergeTree and materialized views)"
        ));
    }
    unsupported(format!("the function {name}"))
}

fn math(name: &str, args: &[E]) -> Result<Option<E>, TranslateError> {
    let first = args.first().and_then(|a| a.ty.clone());
    let float = || nullable_like(ChType::Float(64), args);
    Ok(Some(match name {
        "abs" => {
            arity(name, args, 1, 1)?;
            let ty = first.map(|t| match t.base() {
                ChType::Int(bits) => ChType::UInt(*bits).nullable_if(&[&t]),
                _ => t,
            });
            simple("abs", args, ty)
        }
        "round" | "floor" | "ceil" | "ceiling" => {
            arity(name, args, 1, 2)?;
            let func = match name {
                "round" => "ch_round",
                "floor" => "ch_floor",
                _ => "ch_ceil",
            };
            let mut all = args.to_vec();
            if all.len() == 1 {
                all.push(E::constant("0".into(), ChType::UInt(8)));
            }
            let ty = first.map(|t| {
                if t.is_integer() || t.is_number() {
                    t
                } else {
                    ChType::Float(64)
                }
            });
            simple(func, &all, ty)
        }
        "sqrt" | "exp" | "log2" | "log10" | "ln" | "log" | "pow" | "power" => {
            let two = matches!(name, "pow" | "power");
            arity(name, args, 1 + usize::from(two), 1 + usize::from(two))?;
            let mut all = vec![E::constant(quote(name), ChType::String)];
            all.extend(args.iter().cloned());
            if !two {
                all.push(E::constant("NULL".into(), ChType::Nothing));
            }
            simple("ch_math", &all, float())
        }
        "pi" => E::constant("3.141592653589793".into(), ChType::Float(64)),
        "e" => E::constant("2.718281828459045".into(), ChType::Float(64)),
        "sign" => {
            arity(name, args, 1, 1)?;
            simple("sign", args, nullable_like(ChType::Int(8), args))
        }
        "like" | "ilike" | "notLike" | "notILike" => {
            arity(name, args, 2, 2)?;
            let func = if name.to_ascii_lowercase().ends_with("ilike") {
                "ch_ilike"
            } else {
                "ch_like"
            };
            let not = if name.starts_with("not") { "NOT " } else { "" };
            let sql = format!("{not}{func}({}, {})", args[0].sql, args[1].sql);
            E::from_parts(
                sql,
                nullable_like(ChType::UInt(8), args),
                &[&args[0], &args[1]],
            )
        }
        "intDiv" | "intDivOrZero" => {
            arity(name, args, 2, 2)?;
            let ty = match (&args[0].ty, &args[1].ty) {
                (Some(a), Some(b)) => Some(
                    match (a.base(), b.base()) {
                        (ChType::UInt(bits), ChType::Int(_)) => ChType::Int(*bits),
                        (x, _) if x.is_integer() => x.clone(),
                        _ => ChType::Int(64),
                    }
                    .nullable_if(&[a, b]),
                ),
                _ => None,
            };
            let zero = if name == "intDivOrZero" { "1" } else { "0" };
            let mut all = args.to_vec();
            all.push(E::constant(zero.into(), ChType::UInt(8)));
            simple("ch_int_div", &all, ty)
        }
        "modulo" => {
            arity(name, args, 2, 2)?;
            E::from_parts(
                format!("({} % {})", args[0].sql, args[1].sql),
                first,
                &[&args[0], &args[1]],
            )
        }
        "negate" => {
            arity(name, args, 1, 1)?;
            let ty = first.map(|t| match t.base() {
                ChType::UInt(bits) => ChType::Int((bits * 2).min(64)).nullable_if(&[&t]),
                _ => t,
            });
            E::from_parts(format!("-({})", args[0].sql), ty, &[&args[0]])
        }
        _ => return Ok(None),
    }))
}

/// `CAST(x AS T)` and `x::T`: the conversion function of `T`.
pub fn cast(e: E, type_name: &str) -> Result<E, TranslateError> {
    let ty = ChType::parse_loose(type_name)
        .ok_or_else(|| unsupported(format!("CAST to {type_name}")))?;
    strings::convert(e, &ty)
}
