//! The `ch_*` functions on a real SQLite connection; each expectation was read off
//! ClickHouse (chdb 26.9), and the differential corpus checks them again end to end.

use rusqlite::Connection;

use super::convert::round_float;
use super::text::{like, substring};
use super::web::url_part;
use super::*;

fn conn() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    register(&c).unwrap();
    c
}

/// The one value `sql` answers, as text (numbers printed as ClickHouse prints them).
fn text(c: &Connection, sql: &str) -> String {
    let value: rusqlite::types::Value = c
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match value {
        rusqlite::types::Value::Integer(n) => n.to_string(),
        rusqlite::types::Value::Real(f) => format_float(f),
        rusqlite::types::Value::Text(t) => t,
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn strings_follow_clickhouse() {
    assert!(like("Trail Runner", "Trail%", false).unwrap());
    assert!(!like("trail", "T%", false).unwrap());
    assert!(like("trail", "T%", true).unwrap());
    assert!(like("a%c", "a\\%c", false).unwrap());
    assert!(!like("abc", "a\\%c", false).unwrap());
    assert!(like("abc", "a_c", false).unwrap());
    assert_eq!(substring("hello", 2, Some(3)), "ell");
    assert_eq!(substring("hello", -3, None), "llo");
    assert_eq!(substring("hello", 0, Some(2)), "");
    assert_eq!(substring("hello", 2, Some(-1)), "ell");
    assert_eq!(round_float(2.5, 0), 2.0);
    assert_eq!(round_float(3.5, 0), 4.0);
    assert_eq!(round_float(2.675, 2), 2.68);
    assert_eq!(round_float(1.005, 2), 1.0);
    assert_eq!(
        url_part("domain", "https://www.example.com:8080/a?x=1", None),
        "www.example.com"
    );
    assert_eq!(
        url_part("extractURLParameter", "http://a.com/p?x=1&y=2", Some("y")),
        "2"
    );
    assert_eq!(
        url_part("cutQueryString", "https://e.com/a?x=1#f", None),
        "https://e.com/a#f"
    );
}

#[test]
fn conversions_wrap_and_refuse_like_clickhouse() {
    let c = conn();
    assert_eq!(text(&c, "SELECT ch_to_int(300, 8, 0, '')"), "44");
    assert_eq!(text(&c, "SELECT ch_to_int(-3.9, 32, 1, '')"), "-3");
    assert_eq!(text(&c, "SELECT ch_to_int('x', 32, 1, 'zero')"), "0");
    let err = c
        .query_row("SELECT ch_to_int('x', 32, 1, '')", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("cannot parse 'x'"), "{err}");
    assert_eq!(text(&c, "SELECT ch_to_string(1.0, '')"), "1");
    assert_eq!(
        text(&c, "SELECT ch_to_string('[\"a\"]', 'Array(String)')"),
        "['a']"
    );
}

#[test]
fn dates_truncate_shift_and_count_like_clickhouse() {
    let c = conn();
    assert_eq!(
        text(
            &c,
            "SELECT ch_start_of('2024-03-06 07:08:09', 'minute', 15, 'datetime')"
        ),
        "2024-03-06 07:00:00"
    );
    assert_eq!(
        text(&c, "SELECT ch_start_of('2024-03-06', 'week', 1, 'date')"),
        "2024-03-04"
    );
    assert_eq!(
        text(&c, "SELECT ch_start_of_week('2024-03-06', 0)"),
        "2024-03-03"
    );
    assert_eq!(
        text(&c, "SELECT ch_add('2024-01-31', 1, 'month', 'date')"),
        "2024-02-29"
    );
    assert_eq!(
        text(
            &c,
            "SELECT ch_date_diff('month', '2024-01-31', '2024-02-01')"
        ),
        "1"
    );
    assert_eq!(
        text(
            &c,
            "SELECT ch_date_diff('week', '2024-03-02', '2024-03-04')"
        ),
        "1"
    );
    assert_eq!(
        text(
            &c,
            "SELECT ch_format_datetime('2024-03-05 07:08:09', '%Y-%m-%d %H:%i|%M|%e')"
        ),
        "2024-03-05 07:08|March|5"
    );
    assert_eq!(
        text(&c, "SELECT ch_date_part('yyyymm', '2024-03-06')"),
        "202403"
    );
}

#[test]
fn arrays_and_aggregates() {
    let c = conn();
    assert_eq!(text(&c, "SELECT ch_has('[1,2]', 2)"), "1");
    assert_eq!(text(&c, "SELECT ch_array_element('[10,20,30]', -1)"), "30");
    assert_eq!(text(&c, "SELECT ch_array_sort('[3,1,2]', 0)"), "[1,2,3]");
    c.execute_batch(
        "CREATE TABLE v (x INTEGER); INSERT INTO v VALUES (1), (2), (3), (4), (10), (NULL);",
    )
    .unwrap();
    assert_eq!(text(&c, "SELECT ch_quantile(x, 0.3) FROM v"), "2.2");
    assert_eq!(text(&c, "SELECT ch_quantile_exact(x, 0.5) FROM v"), "3");
    assert_eq!(text(&c, "SELECT ch_arg_max(x * 2, x) FROM v"), "20");
    assert_eq!(
        text(&c, "SELECT ch_group_array(x, 0) FROM v"),
        "[1,2,3,4,10]"
    );
    assert_eq!(text(&c, "SELECT ch_top_k(x % 2, 1) FROM v"), "[0]");
}

/// `sql_functions`, `fuzz/regressions/sql_functions/argmax-over-large-array-keys`: a few rows
/// whose `argMax` keys were large arrays took seconds per row (each key parsed and compared as
/// text), and no step counted that work, so neither the deadline nor SQLite's progress
/// handler (every 10,000 steps) stopped it.
#[test]
fn aggregate_steps_count_their_work_against_the_deadline() {
    use crate::budget::{self, FunctionLimits, Trip};
    let c = conn();
    c.execute_batch("CREATE TABLE big (v INTEGER, k TEXT)")
        .unwrap();
    let key = format!("[{}]", vec!["\"a\""; 20_000].join(","));
    for v in 0..3 {
        c.execute("INSERT INTO big VALUES (?1, ?2)", rusqlite::params![v, key])
            .unwrap();
    }
    let _scope = budget::enter(FunctionLimits {
        deadline: Some(std::time::Instant::now() - std::time::Duration::from_millis(1)),
        ..FunctionLimits::default()
    });
    for function in [
        "ch_arg_max(v, k)",
        "ch_any(k)",
        "ch_quantiles(k, '[0.5]', 0)",
    ] {
        let result = c.query_row(&format!("SELECT {function} FROM big"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        });
        assert!(result.is_err(), "{function} ran past its deadline");
        assert_eq!(budget::take_trip(), Some(Trip::Deadline), "{function}");
    }
}

/// `sql_functions`, `fuzz/regressions/sql_functions/topk-over-rows-of-large-arrays`:
/// finishing `topK` (and `groupUniqArray`, `quantileExact`) over a few hundred large arrays
/// parsed each one, seconds of work in one call, none of it counted against the deadline.
/// The work a final does is now counted: at least the bytes it converts, on top of what the
/// steps counted.
#[test]
fn aggregate_finals_count_their_work_against_the_deadline() {
    use crate::budget::{self, FunctionLimits};
    let c = conn();
    c.execute_batch("CREATE TABLE arrays (k TEXT)").unwrap();
    let array = format!("[{}]", vec!["\"\""; 2_000].join(","));
    let rows = 3;
    for _ in 0..rows {
        c.execute("INSERT INTO arrays VALUES (?1)", [&array])
            .unwrap();
    }
    let input = (rows * array.len()) as u64;
    for function in [
        "ch_top_k(k, 10)",
        "ch_group_uniq_array(k, 0)",
        "ch_quantile_exact(k, 0.5)",
    ] {
        let _scope = budget::enter(FunctionLimits::default());
        c.query_row(&format!("SELECT {function} FROM arrays"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .unwrap();
        let work = budget::work_done();
        assert!(
            work >= 2 * input,
            "{function} counted {work} units for {input} bytes, steps and final"
        );
    }
}

/// `sql_functions`, `fuzz/regressions/sql_functions/regex-compile-memory-of-a-long-pattern`:
/// compiling a 196 KB pattern took 74 MB before the regex size limit said no; the compile
/// is now held against the query's memory first.
#[test]
fn compiling_a_long_pattern_is_held_against_the_memory_budget() {
    use crate::budget::{self, FunctionLimits, Trip};
    let c = conn();
    let _scope = budget::enter(FunctionLimits {
        max_memory_bytes: 8 << 20,
        ..FunctionLimits::default()
    });
    let pattern = format!("[{}]", vec!["\"\""; 65_535].join(","));
    let result = c.query_row("SELECT ch_extract('', ?1)", [&pattern], |r| {
        r.get::<_, String>(0)
    });
    assert!(result.is_err());
    assert!(matches!(budget::take_trip(), Some(Trip::Memory { .. })));
    assert_eq!(text(&c, "SELECT ch_extract('a1b22', '([0-9]+)')"), "1");
}
