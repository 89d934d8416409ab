//! Aggregate functions (with the `-If` and `-Distinct` combinators) and window functions.
//!
//! SQLite's own aggregates are used where the meaning is the same, with ClickHouse's empty
//! results (`sum` of no rows is 0, not NULL); the rest are `ch_*` aggregates registered per
//! connection (`super::sqlite::aggregates`). `uniq` and the other approximate counters are
//! exact here: ClickHouse's are exact for small sets too, and larger answers only differ
//! within its documented error. `-SimpleState` of `any`, `anyLast`, `min`, `max` and `sum` is the
//! plain aggregate; `-State`/`-Merge`/`-MergeState` of `uniq`, `count`, `sum`, `min`, `max` are
//! in `super::states`; other combinators are refused.

use sqlparser::ast::WindowType;

use super::TranslateError;
use super::emitted::E;
use super::functions::CallArgs;
use super::translate::{Ctx, unsupported};
use super::types::ChType;

const BASES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "any",
    "anyLast",
    "argMin",
    "argMax",
    "uniq",
    "uniqExact",
    "uniqCombined",
    "uniqCombined64",
    "uniqHLL12",
    "groupArray",
    "groupUniqArray",
    "quantile",
    "quantiles",
    "quantileExact",
    "quantilesExact",
    "median",
    "medianExact",
    "topK",
    "stddevPop",
    "stddevSamp",
    "varPop",
    "varSamp",
    "anyHeavy",
];

/// Splits `sumIf` into (`sum`, if, distinct); `None` when not an aggregate.
fn parse_name(name: &str) -> Result<Option<(&'static str, bool, bool)>, TranslateError> {
    let lowered = name.to_ascii_lowercase();
    let plain = ["count", "sum", "avg", "min", "max"];
    if let Some(base) = plain.iter().find(|b| **b == lowered) {
        return Ok(Some((base, false, false)));
    }
    // `fSimpleState(x)` is `f(x)`, typed `SimpleAggregateFunction(f, T)` by ClickHouse: what a
    // materialized view writes to such a column (`project::engines` merges it with `f`).
    if let Some(base) = name.strip_suffix("SimpleState")
        && let Some(base) = ["any", "anyLast", "min", "max", "sum"]
            .iter()
            .find(|b| **b == base)
    {
        return Ok(Some((base, false, false)));
    }
    for suffix in [
        "State",
        "Merge",
        "MergeState",
        "SimpleState",
        "ForEach",
        "Array",
        "Map",
        "OrNull",
        "OrDefault",
        "Resample",
        "ArgMin",
        "ArgMax",
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            let base = base.strip_suffix("If").unwrap_or(base);
            if BASES.contains(&base) {
                return Err(unsupported(format!(
                    "{name} (the -{suffix} combinator; -State/-Merge need AggregatingMergeTree \
                     and materialized views)"
                )));
            }
        }
    }
    let (rest, is_if) = match name.strip_suffix("If") {
        Some(base) if BASES.contains(&base) || base.ends_with("Distinct") => (base, true),
        _ => (name, false),
    };
    let (rest, distinct) = match rest.strip_suffix("Distinct") {
        Some(base) if BASES.contains(&base) => (base, true),
        _ => (rest, false),
    };
    Ok(BASES
        .iter()
        .find(|b| **b == rest)
        .map(|b| (*b, is_if, distinct)))
}

fn float() -> Option<ChType> {
    Some(ChType::Float(64))
}

impl Ctx<'_> {
    /// Emits an aggregate call; `None` when `name` is not an aggregate.
    pub fn aggregate(&mut self, name: &str, call: &CallArgs) -> Result<Option<E>, TranslateError> {
        if let Some((base, comb)) = super::states::combinator(name) {
            let e = self.state_aggregate(base, comb, name, call)?;
            return Ok(Some(E {
                free: Vec::new(),
                agg: true,
                literal: None,
                ..e
            }));
        }
        let Some((base, is_if, distinct_suffix)) = parse_name(name)? else {
            return Ok(None);
        };
        let distinct = call.distinct || distinct_suffix;
        let mut args = Vec::new();
        for a in &call.args {
            args.push(self.expr(a)?);
        }
        let mut params = Vec::new();
        for p in &call.params {
            params.push(self.expr(p)?);
        }
        if is_if {
            let cond = args.pop().ok_or_else(|| {
                TranslateError::Invalid(format!("{name} needs a condition as its last argument"))
            })?;
            if args.is_empty() && base == "count" {
                args.push(E::constant("1".into(), ChType::UInt(8)));
            }
            for a in &mut args {
                a.sql = format!("CASE WHEN {} THEN {} END", cond.sql, a.sql);
            }
        }
        let e = aggregate_sql(base, name, &args, &params, call.star, distinct)?;
        // An aggregate reads rows, so the columns inside it need no grouping.
        Ok(Some(E {
            free: Vec::new(),
            agg: true,
            literal: None,
            ..e
        }))
    }

    /// Emits `f(...) OVER (...)`.
    pub fn window(
        &mut self,
        name: &str,
        call: &CallArgs,
        over: &WindowType,
    ) -> Result<E, TranslateError> {
        let WindowType::WindowSpec(spec) = over else {
            return Err(unsupported("named windows"));
        };
        if spec.window_name.is_some() {
            return Err(unsupported("named windows"));
        }
        let ranking = [
            "row_number",
            "rank",
            "dense_rank",
            "percent_rank",
            "cume_dist",
            "first_value",
            "last_value",
            "nth_value",
            "ntile",
        ];
        let lower = name.to_ascii_lowercase();
        let mut args = Vec::new();
        for a in &call.args {
            args.push(self.expr(a)?);
        }
        let (func, ty) = if ranking.contains(&name) {
            let ty = match name {
                "percent_rank" | "cume_dist" => float(),
                "first_value" | "last_value" | "nth_value" => {
                    args.first().and_then(|a| a.ty.clone())
                }
                _ => Some(ChType::UInt(64)),
            };
            (name.to_owned(), ty)
        } else if ["count", "sum", "avg", "min", "max"].contains(&lower.as_str())
            && call.params.is_empty()
        {
            if call.distinct {
                return Err(unsupported("DISTINCT in window functions"));
            }
            let e = aggregate_sql(&lower, name, &args, &[], call.star, false)?;
            // The aggregate's own text, minus ClickHouse's empty-set default wrapper.
            let raw = e.sql.strip_prefix("coalesce(").map_or(e.sql.clone(), |s| {
                s.rsplit_once(", ")
                    .map_or(s.to_owned(), |(inner, _)| inner.to_owned())
            });
            return self.over(raw, e.ty, &args, spec);
        } else {
            return Err(unsupported(format!("{name} as a window function")));
        };
        let refs: Vec<&E> = args.iter().collect();
        let sql = super::functions::sql_call(&func, &refs);
        self.over(sql, ty, &args, spec)
    }

    fn over(
        &mut self,
        call: String,
        ty: Option<ChType>,
        args: &[E],
        spec: &sqlparser::ast::WindowSpec,
    ) -> Result<E, TranslateError> {
        let mut parts: Vec<E> = args.to_vec();
        let mut clauses = Vec::new();
        if !spec.partition_by.is_empty() {
            let mut keys = Vec::new();
            for p in &spec.partition_by {
                let e = self.expr(p)?;
                keys.push(e.sql.clone());
                parts.push(e);
            }
            clauses.push(format!("PARTITION BY {}", keys.join(", ")));
        }
        if !spec.order_by.is_empty() {
            let mut keys = Vec::new();
            for o in &spec.order_by {
                let e = self.expr(&o.expr)?;
                let desc = matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
                let nulls = if o.options.nulls_first == Some(true) {
                    "NULLS FIRST"
                } else {
                    "NULLS LAST"
                };
                keys.push(format!(
                    "{} {} {nulls}",
                    e.sql,
                    if desc { "DESC" } else { "ASC" }
                ));
                parts.push(e);
            }
            clauses.push(format!("ORDER BY {}", keys.join(", ")));
        }
        if let Some(frame) = &spec.window_frame {
            let end = frame
                .end_bound
                .as_ref()
                .map_or("CURRENT ROW".to_owned(), ToString::to_string);
            clauses.push(format!(
                "{} BETWEEN {} AND {end}",
                frame.units, frame.start_bound
            ));
        }
        let sql = format!("{call} OVER ({})", clauses.join(" "));
        let refs: Vec<&E> = parts.iter().collect();
        Ok(E::from_parts(sql, ty, &refs))
    }
}

fn one(name: &str, args: &[E]) -> Result<E, TranslateError> {
    match args {
        [a] => Ok(a.clone()),
        _ => Err(TranslateError::Invalid(format!(
            "{name} takes one argument"
        ))),
    }
}

fn param(name: &str, params: &[E], default: &str) -> Result<String, TranslateError> {
    match params {
        [] => Ok(default.to_owned()),
        [p] => Ok(p.sql.clone()),
        _ => Err(TranslateError::Invalid(format!(
            "{name} takes one parameter"
        ))),
    }
}

/// The SQL of aggregate `base` over emitted arguments.
pub(super) fn aggregate_sql(
    base: &str,
    name: &str,
    args: &[E],
    params: &[E],
    star: bool,
    distinct: bool,
) -> Result<E, TranslateError> {
    let d = if distinct { "DISTINCT " } else { "" };
    let arg_ty = args.first().and_then(|a| a.ty.clone());
    let nullable_arg = arg_ty.as_ref().is_some_and(ChType::is_nullable);
    let text = |func: &str| {
        let inner: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
        format!("{func}({d}{})", inner.join(", "))
    };
    // ClickHouse answers an empty set with the type's default unless the input is Nullable.
    let with_default = |sql: String, ty: &Option<ChType>| match ty {
        Some(t) if !nullable_arg && !t.is_nullable() => {
            format!("coalesce({sql}, {})", t.default_sql())
        }
        _ => sql,
    };
    let (sql, ty) = match base {
        "count" if star || args.is_empty() => ("count(*)".to_owned(), Some(ChType::UInt(64))),
        "count" => (text("count"), Some(ChType::UInt(64))),
        "uniq" | "uniqExact" | "uniqCombined" | "uniqCombined64" | "uniqHLL12" => {
            let sql = if args.len() == 1 {
                format!("count(DISTINCT {})", args[0].sql)
            } else {
                let inner: Vec<&str> = args.iter().map(|a| a.sql.as_str()).collect();
                format!("count(DISTINCT json_array({}))", inner.join(", "))
            };
            (sql, Some(ChType::UInt(64)))
        }
        "sum" => {
            let a = one(name, args)?;
            let ty = a.ty.as_ref().map(|t| {
                match t.base() {
                    ChType::UInt(_) | ChType::Bool => ChType::UInt(64),
                    ChType::Int(_) => ChType::Int(64),
                    _ => ChType::Float(64),
                }
                .nullable_if(&[t])
            });
            let func = if ty
                .as_ref()
                .is_some_and(|t| matches!(t.base(), ChType::Float(_)))
            {
                "total"
            } else {
                "sum"
            };
            let sql = if func == "total" && nullable_arg {
                text("sum")
            } else {
                text(func)
            };
            (with_default(sql, &ty), ty)
        }
        "avg" => {
            one(name, args)?;
            (
                text("avg"),
                float().map(|t| t.nullable_if(&[arg_ty.as_ref().unwrap_or(&ChType::Float(64))])),
            )
        }
        "min" | "max" => {
            one(name, args)?;
            (with_default(text(base), &arg_ty), arg_ty.clone())
        }
        "any" | "anyLast" | "anyHeavy" => {
            one(name, args)?;
            let func = if base == "anyLast" {
                "ch_any_last"
            } else {
                "ch_any"
            };
            (with_default(text(func), &arg_ty), arg_ty.clone())
        }
        "argMin" | "argMax" => {
            if args.len() != 2 {
                return Err(TranslateError::Invalid(format!("{name}(value, key)")));
            }
            let func = if base == "argMax" {
                "ch_arg_max"
            } else {
                "ch_arg_min"
            };
            (with_default(text(func), &arg_ty), arg_ty.clone())
        }
        "groupArray" | "groupUniqArray" => {
            one(name, args)?;
            let limit = param(name, params, "0")?;
            let func = if base == "groupArray" {
                "ch_group_array"
            } else {
                "ch_group_uniq_array"
            };
            let ty = arg_ty
                .as_ref()
                .map(|t| ChType::Array(Box::new(t.base().clone())));
            (
                format!("coalesce({func}({}, {limit}), '[]')", args[0].sql),
                ty,
            )
        }
        "quantile" | "quantileExact" | "median" | "medianExact" => {
            let a = one(name, args)?;
            let p = param(name, params, "0.5")?;
            let exact = base.ends_with("Exact");
            let ty = if exact { arg_ty.clone() } else { float() };
            let func = if exact {
                "ch_quantile_exact"
            } else {
                "ch_quantile"
            };
            (format!("{func}({}, {p})", a.sql), ty)
        }
        "quantiles" | "quantilesExact" => {
            let a = one(name, args)?;
            if params.is_empty() {
                return Err(TranslateError::Invalid(format!(
                    "{name}(levels...)(x) needs levels"
                )));
            }
            let levels: Vec<&str> = params.iter().map(|p| p.sql.as_str()).collect();
            let exact = base == "quantilesExact";
            let elem = if exact {
                arg_ty.clone().map(|t| t.base().clone())
            } else {
                float()
            };
            let sql = format!(
                "ch_quantiles({}, json_array({}), {})",
                a.sql,
                levels.join(", "),
                u8::from(exact)
            );
            (sql, elem.map(|t| ChType::Array(Box::new(t))))
        }
        "topK" => {
            let a = one(name, args)?;
            let k = param(name, params, "10")?;
            let ty = arg_ty
                .as_ref()
                .map(|t| ChType::Array(Box::new(t.base().clone())));
            (format!("coalesce(ch_top_k({}, {k}), '[]')", a.sql), ty)
        }
        "stddevPop" | "stddevSamp" | "varPop" | "varSamp" => {
            let a = one(name, args)?;
            (format!("ch_var({}, '{base}')", a.sql), float())
        }
        other => return Err(unsupported(format!("the aggregate {other}"))),
    };
    if distinct
        && !matches!(
            base,
            "count" | "sum" | "avg" | "min" | "max" | "uniq" | "uniqExact"
        )
    {
        return Err(unsupported(format!("DISTINCT with {name}")));
    }
    let refs: Vec<&E> = args.iter().collect();
    Ok(E::from_parts(sql, ty, &refs))
}

/// Whether an expression calls an aggregate (used by the fuzz target's invariants).
pub fn is_aggregate_name(name: &str) -> bool {
    matches!(parse_name(name), Ok(Some(_))) || super::states::combinator(name).is_some()
}
