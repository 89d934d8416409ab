//! Aggregates SQLite lacks: `any`, `anyLast`, `argMin`/`argMax`, `groupArray`,
//! `groupUniqArray`, `quantile` (linear interpolation, as ClickHouse's exact-for-small-sets
//! reservoir), `quantileExact`, `quantiles`, `topK` (by count, then first seen) and the
//! variance family. NULL inputs are skipped, as ClickHouse skips them.
//!
//! What an aggregate keeps between rows is held against the query's memory budget
//! ([`crate::budget`]): every kept value's bytes, given back when the group's state is
//! dropped. `any`, `anyLast`, `argMin` and `argMax` keep one row, not all of them; `topK` and
//! `groupUniqArray` count with hashed keys; answers are built with the value limit checked.

use std::collections::HashMap;

use rusqlite::functions::{Aggregate, Context};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::arrays::{ArrayText, Key, compare, to_json};
use super::{fail, flags};
use crate::budget::{self, Held};

/// Bytes of a call's arguments (the work a step does is proportional to them).
fn argument_bytes(ctx: &Context<'_>) -> usize {
    (0..ctx.len())
        .map(|i| match ctx.get_raw(i) {
            ValueRef::Text(t) | ValueRef::Blob(t) => t.len(),
            _ => 8,
        })
        .sum()
}

/// What keeping one value costs: its bytes plus its slot.
fn kept_size(v: &Value) -> usize {
    let payload = match v {
        Value::Text(t) => t.len(),
        Value::Blob(b) => b.len(),
        _ => 0,
    };
    payload + std::mem::size_of::<Value>()
}

/// Which aggregate a [`Collect`] computes.
#[derive(Clone, Copy)]
enum Kind {
    Any,
    AnyLast,
    ArgMax,
    ArgMin,
    GroupArray,
    GroupUniqArray,
    Quantile,
    QuantileExact,
    TopK,
    Var,
}

/// Collects the values, then computes at the end (sets here are small: demo and CI data).
struct Collect(Kind);

/// The rows seen: the values kept (all, or the one `any`/`argMax`... needs), the best key so
/// far for `argMin`/`argMax`, the last constant argument, and the memory they hold.
#[derive(Default)]
struct Acc {
    values: Vec<Value>,
    best: Option<Json>,
    param: Option<Value>,
    held: Held,
}

impl Acc {
    fn keep(&mut self, kind: Kind, value: Value) -> Result<()> {
        budget::tick()?;
        self.held.grow(kind.name(), kept_size(&value))?;
        self.values.push(value);
        Ok(())
    }

    /// Replaces the one kept value (`anyLast`, `argMax`): the old one's bytes stay counted,
    /// a bound that is fine for one row.
    fn replace(&mut self, kind: Kind, value: Value) -> Result<()> {
        self.values.clear();
        self.keep(kind, value)
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Any => "any",
            Kind::AnyLast => "anyLast",
            Kind::ArgMax => "argMax",
            Kind::ArgMin => "argMin",
            Kind::GroupArray => "groupArray",
            Kind::GroupUniqArray => "groupUniqArray",
            Kind::Quantile => "quantile",
            Kind::QuantileExact => "quantileExact",
            Kind::TopK => "topK",
            Kind::Var => "varPop",
        }
    }
}

impl Aggregate<Acc, Value> for Collect {
    fn init(&self, _: &mut Context<'_>) -> Result<Acc> {
        Ok(Acc::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Acc) -> Result<()> {
        // A step's work grows with its arguments (a key compared as text): counted, so a few
        // rows of megabytes cannot slip between the progress handler's checks.
        budget::tick_n(argument_bytes(ctx))?;
        let value: Value = ctx.get_raw(0).into();
        if ctx.len() > 1 {
            acc.param = Some(ctx.get_raw(ctx.len() - 1).into());
        }
        let kind = self.0;
        match kind {
            Kind::ArgMax | Kind::ArgMin => {
                let key = to_json(ctx.get_raw(1));
                if key.is_null() {
                    return Ok(());
                }
                // The first row with the best key wins, as ClickHouse's does.
                let better = acc.best.as_ref().is_none_or(|best| {
                    let ord = compare(&key, best);
                    if matches!(kind, Kind::ArgMax) {
                        ord.is_gt()
                    } else {
                        ord.is_lt()
                    }
                });
                if better {
                    acc.best = Some(key);
                    acc.replace(kind, value)?;
                }
            }
            _ if matches!(value, Value::Null) => {}
            Kind::Any if !acc.values.is_empty() => {}
            Kind::AnyLast => acc.replace(kind, value)?,
            _ => acc.keep(kind, value)?,
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<Acc>) -> Result<Value> {
        let Some(acc) = acc else {
            return Ok(Value::Null);
        };
        finish(self.0, acc)
    }
}

/// A kept value as a JSON element, its conversion counted against the deadline (a nested
/// array is parsed: work proportional to its text).
fn json(v: &Value) -> Result<Json> {
    budget::tick_n(kept_size(v))?;
    Ok(to_json(ValueRef::from(v)))
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Integer(n) => *n as f64,
        Value::Real(f) => *f,
        Value::Text(t) => t.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn level(v: &Option<Value>) -> Result<f64> {
    let p = v.as_ref().map_or(0.5, number);
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(fail("quantile levels must be between 0 and 1"))
    }
}

fn interpolated(sorted: &[f64], p: f64) -> f64 {
    let index = p * (sorted.len() - 1) as f64;
    let left = index.floor() as usize;
    let right = (left + 1).min(sorted.len() - 1);
    sorted[left] + (sorted[right] - sorted[left]) * (index - left as f64)
}

/// The values in ClickHouse's order, each converted once (not once per comparison).
fn sorted_values(values: &[Value]) -> Result<Vec<Value>> {
    let mut keyed = values
        .iter()
        .map(|v| Ok((json(v)?, v)))
        .collect::<Result<Vec<_>>>()?;
    keyed.sort_by(|(a, _), (b, _)| compare(a, b));
    Ok(keyed.into_iter().map(|(_, v)| v.clone()).collect())
}

fn exact(sorted: &[Value], p: f64) -> Value {
    let i = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i].clone()
}

/// An array answer's text, each element checked against the value limit.
fn array_value<'a>(kind: Kind, items: impl IntoIterator<Item = &'a Json>) -> Result<Value> {
    let mut out = ArrayText::new(kind.name());
    for item in items {
        out.push(item)?;
    }
    Ok(Value::Text(out.finish()))
}

fn finish(kind: Kind, acc: Acc) -> Result<Value> {
    let values = acc.values;
    if values.is_empty() && !matches!(kind, Kind::Var) {
        return Ok(Value::Null);
    }
    if !matches!(
        kind,
        Kind::Any | Kind::AnyLast | Kind::ArgMax | Kind::ArgMin
    ) {
        budget::tick_n(
            values
                .len()
                .saturating_mul(values.len().max(2).ilog2() as usize),
        )?;
    }
    Ok(match kind {
        Kind::Any | Kind::AnyLast | Kind::ArgMax | Kind::ArgMin => values[0].clone(),
        Kind::GroupArray | Kind::GroupUniqArray => {
            let limit = acc.param.as_ref().map_or(0, |p| number(p) as usize);
            let mut seen = std::collections::HashSet::new();
            let mut out: Vec<Json> = Vec::new();
            for v in &values {
                let j = json(v)?;
                if matches!(kind, Kind::GroupUniqArray) && !seen.insert(Key::of(&j)) {
                    continue;
                }
                if limit > 0 && out.len() == limit {
                    break;
                }
                out.push(j);
            }
            array_value(kind, &out)?
        }
        Kind::Quantile => {
            let mut nums: Vec<f64> = values.iter().map(number).collect();
            nums.sort_by(f64::total_cmp);
            Value::Real(interpolated(&nums, level(&acc.param)?))
        }
        Kind::QuantileExact => exact(&sorted_values(&values)?, level(&acc.param)?),
        Kind::TopK => {
            let k = acc.param.as_ref().map_or(10, |p| number(p) as usize);
            // Count per key, then by count, ties in order of first appearance.
            let mut counts: HashMap<Key, (usize, usize, Json)> = HashMap::new();
            for (i, v) in values.iter().enumerate() {
                let j = json(v)?;
                counts.entry(Key::of(&j)).or_insert((0, i, j)).0 += 1;
            }
            let mut ranked: Vec<(usize, usize, Json)> = counts.into_values().collect();
            ranked.sort_by_key(|(n, first, _)| (std::cmp::Reverse(*n), *first));
            array_value(kind, ranked.iter().take(k).map(|(_, _, j)| j))?
        }
        Kind::Var => {
            let kind = match &acc.param {
                Some(Value::Text(t)) => t.clone(),
                _ => String::new(),
            };
            let n = values.len() as f64;
            let mean = values.iter().map(number).sum::<f64>() / n;
            let m2: f64 = values.iter().map(|v| (number(v) - mean).powi(2)).sum();
            let var = if kind.ends_with("Samp") {
                m2 / (n - 1.0)
            } else {
                m2 / n
            };
            let out = if kind.starts_with("stddev") {
                var.sqrt()
            } else {
                var
            };
            // ClickHouse answers nan (printed as null) where there is too little data.
            if out.is_finite() {
                Value::Real(out)
            } else {
                Value::Null
            }
        }
    })
}

pub(super) fn register(conn: &Connection) -> Result<()> {
    let f = flags();
    let list = [
        ("ch_any", 1, Kind::Any),
        ("ch_any_last", 1, Kind::AnyLast),
        ("ch_arg_max", 2, Kind::ArgMax),
        ("ch_arg_min", 2, Kind::ArgMin),
        ("ch_group_array", 2, Kind::GroupArray),
        ("ch_group_uniq_array", 2, Kind::GroupUniqArray),
        ("ch_quantile", 2, Kind::Quantile),
        ("ch_quantile_exact", 2, Kind::QuantileExact),
        ("ch_top_k", 2, Kind::TopK),
        ("ch_var", 2, Kind::Var),
    ];
    for (name, args, kind) in list {
        conn.create_aggregate_function(name, args, f, Collect(kind))?;
    }
    conn.create_aggregate_function("ch_quantiles", 3, f, Quantiles)?;
    Ok(())
}

/// `quantiles(levels)(x)`: the levels arrive as JSON text, exactness as the last argument.
struct Quantiles;

/// The values seen, the levels, exactness, and the memory the values hold.
type QuantilesAcc = (Vec<Value>, Option<String>, bool, Held);

impl Aggregate<QuantilesAcc, Value> for Quantiles {
    fn init(&self, _: &mut Context<'_>) -> Result<QuantilesAcc> {
        Ok((Vec::new(), None, false, Held::none()))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut QuantilesAcc) -> Result<()> {
        budget::tick_n(argument_bytes(ctx))?;
        let v: Value = ctx.get_raw(0).into();
        acc.1 = ctx.get::<Option<String>>(1)?;
        acc.2 = ctx.get::<Option<i64>>(2)? == Some(1);
        if !matches!(v, Value::Null) {
            budget::tick()?;
            acc.3.grow("quantiles", kept_size(&v))?;
            acc.0.push(v);
        }
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<QuantilesAcc>) -> Result<Value> {
        let Some((values, levels, is_exact, _held)) = acc else {
            return Ok(Value::Text("[]".into()));
        };
        let levels: Vec<f64> = serde_json::from_str(levels.as_deref().unwrap_or("[]"))
            .map_err(|_| fail("bad quantile levels"))?;
        if values.is_empty() {
            return Ok(Value::Text(
                Json::Array(levels.iter().map(|_| Json::Null).collect()).to_string(),
            ));
        }
        budget::tick_n(
            values
                .len()
                .saturating_mul(values.len().max(2).ilog2() as usize),
        )?;
        let out: Vec<Json> = if is_exact {
            let sorted = sorted_values(&values)?;
            levels
                .iter()
                .map(|p| json(&exact(&sorted, *p)))
                .collect::<Result<Vec<_>>>()?
        } else {
            let mut nums: Vec<f64> = values.iter().map(number).collect();
            nums.sort_by(f64::total_cmp);
            levels
                .iter()
                .map(|p| Json::from(interpolated(&nums, *p)))
                .collect()
        };
        array_value(Kind::Quantile, &out)
    }
}
