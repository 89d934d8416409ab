//! Aggregate states: the `-State`, `-Merge` and `-MergeState` combinators of `uniq` (and its
//! approximate siblings), `count`, `sum`, `min` and `max`, for `AggregateFunction(f, T)`
//! columns of `AggregatingMergeTree` data sources written by materialized views.
//!
//! A state is stored as ClickHouse's merge would need it, in a form SQLite can combine: for
//! `uniq`, the JSON array of the distinct values seen (so `uniq` stays exact here, as in
//! [`super::aggregates`]); for `count` and `sum`, the running total; for `min`/`max`, the
//! value. `fMerge(state)` finishes the states of a group into `f`'s answer, `fMergeState`
//! combines them into one state (what `project::engines` does on merges too).

use super::TranslateError;
use super::aggregates::aggregate_sql;
use super::emitted::E;
use super::functions::CallArgs;
use super::translate::{Ctx, unsupported};
use super::types::ChType;

/// Which combinator a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combinator {
    /// `fState(x)`: a state from values.
    State,
    /// `fMerge(state)`: the answer from states.
    Merge,
    /// `fMergeState(state)`: one state from states.
    MergeState,
}

/// The `uniq` family: exact here.
pub const UNIQ: &[&str] = &[
    "uniq",
    "uniqExact",
    "uniqCombined",
    "uniqCombined64",
    "uniqHLL12",
];

/// Splits `uniqMerge` into (`uniq`, Merge); `None` for any other name. A combinator over a
/// function without states here (e.g. `quantileState`) is left to the refusal in
/// `aggregates`.
pub fn combinator(name: &str) -> Option<(&'static str, Combinator)> {
    let bases = UNIQ.iter().chain(&["count", "sum", "min", "max"]);
    for (suffix, comb) in [
        ("MergeState", Combinator::MergeState),
        ("Merge", Combinator::Merge),
        ("State", Combinator::State),
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(found) = bases.clone().find(|b| **b == base)
        {
            return Some((found, comb));
        }
    }
    None
}

/// SQLite SQL that unions the `uniq` states (JSON arrays) of a group into one.
pub fn uniq_union(state: &str) -> String {
    format!(
        "(SELECT json_group_array(DISTINCT _tb_j.value) FROM json_each(json_group_array(json({state}))) AS _tb_a, json_each(_tb_a.value) AS _tb_j)"
    )
}

fn uniq_count(state: &str) -> String {
    format!(
        "(SELECT count(DISTINCT _tb_j.value) FROM json_each(json_group_array(json({state}))) AS _tb_a, json_each(_tb_a.value) AS _tb_j)"
    )
}

impl Ctx<'_> {
    /// Emits a `-State`/`-Merge`/`-MergeState` aggregate.
    pub fn state_aggregate(
        &mut self,
        base: &str,
        comb: Combinator,
        name: &str,
        call: &CallArgs,
    ) -> Result<E, TranslateError> {
        if !call.params.is_empty() || call.distinct {
            return Err(unsupported(format!("{name} with parameters or DISTINCT")));
        }
        let mut args = Vec::new();
        for a in &call.args {
            args.push(self.expr(a)?);
        }
        let refs: Vec<&E> = args.iter().collect();
        let one = || match args.as_slice() {
            [a] => Ok(a.sql.clone()),
            _ => Err(TranslateError::Invalid(format!(
                "{name} takes one argument"
            ))),
        };
        let (sql, ty) = if UNIQ.contains(&base) {
            match comb {
                Combinator::State => {
                    if args.is_empty() {
                        return Err(TranslateError::Invalid(format!("{name} needs an argument")));
                    }
                    let value = match args.as_slice() {
                        [a] => a.sql.clone(),
                        many => {
                            let inner: Vec<&str> = many.iter().map(|a| a.sql.as_str()).collect();
                            format!("json_array({})", inner.join(", "))
                        }
                    };
                    (
                        format!(
                            "coalesce(json_group_array(DISTINCT {value}) FILTER (WHERE {value} IS NOT NULL), '[]')"
                        ),
                        ChType::String,
                    )
                }
                Combinator::Merge => (uniq_count(&one()?), ChType::UInt(64)),
                Combinator::MergeState => (uniq_union(&one()?), ChType::String),
            }
        } else if base == "count" {
            match comb {
                Combinator::State if call.star || args.is_empty() => {
                    ("count(*)".to_owned(), ChType::UInt(64))
                }
                Combinator::State => (format!("count({})", one()?), ChType::UInt(64)),
                _ => (format!("coalesce(sum({}), 0)", one()?), ChType::UInt(64)),
            }
        } else {
            // sum, min, max: the state is the value, and merging is the same aggregate.
            let e = aggregate_sql(base, name, &args, &[], false, false)?;
            return Ok(E::from_parts(e.sql, e.ty, &refs));
        };
        Ok(E::from_parts(sql, Some(ty), &refs))
    }
}
