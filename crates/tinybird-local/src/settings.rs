//! The local endpoint's limits as the command line spells them: one flag per limit, each
//! with its default, what it protects against, and a check that refuses nonsense with the
//! fix (docs/local-limits.md lists them; SECURITY.md says what each one stops).
//!
//! Sizes take a plain byte count or a binary unit (`64MiB`, `2KiB`, `1GiB`); durations take
//! humantime's forms (`10s`, `1500ms`).

use std::time::Duration;

use super::clickhouse::TranslateLimits;
use super::query::QueryLimits;
use super::stats::StatsSettings;

/// Reads `64MiB`, `2KiB`, `1GiB`, `512B` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write bytes, e.g. 65536, 64KiB or 16MiB"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "{other:?} is not a size unit: use B, KiB, MiB or GiB, e.g. 16MiB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Reads a duration such as `10s` or `1500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}): write e.g. 10s or 1500ms"))
}

/// Every limit of one local endpoint, as set on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Per query: time, rows, bytes, values, memory.
    pub query: QueryLimits,
    /// Per query text: size, depth, expanded nodes.
    pub translate: TranslateLimits,
    /// `tinybird.pipe_stats_rt`: rows, bytes, text per row.
    pub stats: StatsSettings,
}

impl Limits {
    /// Every problem with these limits, each naming its flag and the fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut at_least = |flag: &str, value: usize, min: usize, why: &str| {
            if value < min {
                problems.push(format!(
                    "--{flag} {value} is too small: use at least {min} ({why})"
                ));
            }
        };
        let q = &self.query;
        at_least(
            "max-result-rows",
            q.max_rows,
            1,
            "a query must be able to answer a row",
        );
        at_least(
            "max-result-bytes",
            q.max_result_bytes,
            1024,
            "one row of a few columns",
        );
        at_least(
            "max-value-bytes",
            q.max_value_bytes,
            1024,
            "a URL or a JSON event",
        );
        at_least(
            "max-memory-bytes",
            q.max_memory_bytes,
            q.max_value_bytes,
            "functions hold at least one value at a time",
        );
        let t = &self.translate;
        at_least("max-query-size", t.max_query_size, 1024, "a pipe's SQL");
        at_least(
            "max-ast-depth",
            t.max_ast_depth,
            16,
            "ordinary nesting of functions and operators",
        );
        at_least(
            "max-expanded-ast-elements",
            t.max_expanded_ast_elements,
            1000,
            "a pipe with its aliases expanded",
        );
        let s = &self.stats;
        at_least(
            "stats-max-rows",
            s.max_rows,
            1,
            "keep at least the last request",
        );
        at_least(
            "stats-max-text-bytes",
            s.max_text_bytes,
            64,
            "a pipe name and a short URL",
        );
        at_least(
            "stats-max-bytes",
            s.max_bytes,
            s.max_text_bytes * 8 + 1024,
            "one row of full-size text",
        );
        if q.timeout.is_zero() {
            problems.push("--query-timeout 0s would refuse every query: use e.g. 10s".into());
        }
        // The translation threads' stacks grow with these (see `offload`): keep them sane.
        if t.max_query_size > 64 << 20 {
            problems.push(format!(
                "--max-query-size {} is larger than 64MiB: nothing sends queries that long",
                t.max_query_size
            ));
        }
        if t.max_ast_depth > 100_000 {
            problems.push(format!(
                "--max-ast-depth {} is deeper than 100000: ClickHouse's default is 1000",
                t.max_ast_depth
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_and_without_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
        assert!(
            parse_bytes("16 furlongs")
                .unwrap_err()
                .contains("not a size unit")
        );
        assert!(parse_bytes("MiB").unwrap_err().contains("not a size"));
        assert!(parse_bytes("99999999999999999999GiB").is_err());
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_defaults_pass_and_nonsense_is_named_with_its_flag() {
        assert_eq!(Limits::default().problems(), Vec::<String>::new());
        let mut limits = Limits::default();
        limits.query.max_memory_bytes = 10;
        limits.translate.max_ast_depth = 3;
        limits.query.timeout = Duration::ZERO;
        let problems = limits.problems().join("\n");
        assert!(
            problems.contains("--max-memory-bytes 10 is too small"),
            "{problems}"
        );
        assert!(
            problems.contains("--max-ast-depth 3 is too small"),
            "{problems}"
        );
        assert!(problems.contains("--query-timeout 0s"), "{problems}");
    }
}
