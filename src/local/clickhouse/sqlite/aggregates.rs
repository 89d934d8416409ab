//! Aggregates SQLite lacks: `any`, `anyLast`, `argMin`/`argMax`, `groupArray`,
//! `groupUniqArray`, `quantile` (linear interpolation, as ClickHouse's exact-for-small-sets
//! reservoir), `quantileExact`, `quantiles`, `topK` (by count, then first seen) and the
//! variance family. NULL inputs are skipped, as ClickHouse skips them.

use rusqlite::functions::{Aggregate, Context};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Result};
use serde_json::Value as Json;

use super::arrays::{compare, to_json};
use super::{fail, flags};

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

/// The rows seen: value, optional key, and the last constant argument.
#[derive(Default)]
struct Acc {
    values: Vec<Value>,
    keys: Vec<Value>,
    param: Option<Value>,
}

impl Aggregate<Acc, Value> for Collect {
    fn init(&self, _: &mut Context<'_>) -> Result<Acc> {
        Ok(Acc::default())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Acc) -> Result<()> {
        let value: Value = ctx.get_raw(0).into();
        if ctx.len() > 1 {
            acc.param = Some(ctx.get_raw(ctx.len() - 1).into());
        }
        match self.0 {
            Kind::ArgMax | Kind::ArgMin => {
                let key: Value = ctx.get_raw(1).into();
                if matches!(key, Value::Null) {
                    return Ok(());
                }
                acc.values.push(value);
                acc.keys.push(key);
            }
            _ if matches!(value, Value::Null) => {}
            _ => acc.values.push(value),
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

fn json(v: &Value) -> Json {
    to_json(ValueRef::from(v))
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

fn sorted_values(values: &[Value]) -> Vec<Value> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| compare(&json(a), &json(b)));
    v
}

fn exact(sorted: &[Value], p: f64) -> Value {
    let i = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[i].clone()
}

fn finish(kind: Kind, acc: Acc) -> Result<Value> {
    let values = acc.values;
    if values.is_empty() && !matches!(kind, Kind::Var) {
        return Ok(Value::Null);
    }
    Ok(match kind {
        Kind::Any => values[0].clone(),
        Kind::AnyLast => values[values.len() - 1].clone(),
        Kind::ArgMax | Kind::ArgMin => {
            let mut best = 0;
            for i in 1..acc.keys.len() {
                let ord = compare(&json(&acc.keys[i]), &json(&acc.keys[best]));
                let better = if matches!(kind, Kind::ArgMax) {
                    ord.is_gt()
                } else {
                    ord.is_lt()
                };
                if better {
                    best = i;
                }
            }
            values[best].clone()
        }
        Kind::GroupArray | Kind::GroupUniqArray => {
            let limit = acc.param.as_ref().map_or(0, |p| number(p) as usize);
            let mut out: Vec<Json> = Vec::new();
            for v in &values {
                let j = json(v);
                if matches!(kind, Kind::GroupUniqArray)
                    && out.iter().any(|o| compare(o, &j).is_eq())
                {
                    continue;
                }
                if limit > 0 && out.len() == limit {
                    break;
                }
                out.push(j);
            }
            Value::Text(Json::Array(out).to_string())
        }
        Kind::Quantile => {
            let mut nums: Vec<f64> = values.iter().map(number).collect();
            nums.sort_by(f64::total_cmp);
            Value::Real(interpolated(&nums, level(&acc.param)?))
        }
        Kind::QuantileExact => exact(&sorted_values(&values), level(&acc.param)?),
        Kind::TopK => {
            let k = acc.param.as_ref().map_or(10, |p| number(p) as usize);
            let mut counts: Vec<(Json, usize)> = Vec::new();
            for v in &values {
                let j = json(v);
                match counts.iter_mut().find(|(x, _)| compare(x, &j).is_eq()) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((j, 1)),
                }
            }
            counts.sort_by_key(|c| std::cmp::Reverse(c.1));
            let out: Vec<Json> = counts.into_iter().take(k).map(|(j, _)| j).collect();
            Value::Text(Json::Array(out).to_string())
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

impl Aggregate<(Vec<Value>, Option<String>, bool), Value> for Quantiles {
    fn init(&self, _: &mut Context<'_>) -> Result<(Vec<Value>, Option<String>, bool)> {
        Ok((Vec::new(), None, false))
    }

    fn step(
        &self,
        ctx: &mut Context<'_>,
        acc: &mut (Vec<Value>, Option<String>, bool),
    ) -> Result<()> {
        let v: Value = ctx.get_raw(0).into();
        acc.1 = ctx.get::<Option<String>>(1)?;
        acc.2 = ctx.get::<Option<i64>>(2)? == Some(1);
        if !matches!(v, Value::Null) {
            acc.0.push(v);
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<(Vec<Value>, Option<String>, bool)>,
    ) -> Result<Value> {
        let Some((values, levels, is_exact)) = acc else {
            return Ok(Value::Text("[]".into()));
        };
        let levels: Vec<f64> = serde_json::from_str(levels.as_deref().unwrap_or("[]"))
            .map_err(|_| fail("bad quantile levels"))?;
        if values.is_empty() {
            return Ok(Value::Text(
                Json::Array(levels.iter().map(|_| Json::Null).collect()).to_string(),
            ));
        }
        let out: Vec<Json> = if is_exact {
            let sorted = sorted_values(&values);
            levels.iter().map(|p| json(&exact(&sorted, *p))).collect()
        } else {
            let mut nums: Vec<f64> = values.iter().map(number).collect();
            nums.sort_by(f64::total_cmp);
            levels
                .iter()
                .map(|p| Json::from(interpolated(&nums, *p)))
                .collect()
        };
        Ok(Value::Text(Json::Array(out).to_string()))
    }
}
