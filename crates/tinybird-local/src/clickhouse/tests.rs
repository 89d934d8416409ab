//! The translator as a pipe author sees it: what runs, what it answers, what is refused and
//! how. Answers against real ClickHouse are checked by `tests/clickhouse/differential.py`;
//! these tests pin the mechanics (names, types, placeholders, caching, pass-through).

use std::sync::Arc;

use rusqlite::types::Value;

use super::*;
use crate::data::{Database, DemoData};
use crate::query::{self, QueryLimits};
use crate::template::RenderedSql;

fn demo() -> Arc<Database> {
    Database::generate(&DemoData {
        orders: 300,
        ..DemoData::default()
    })
    .unwrap()
}

/// Translates and runs `sql` on the demo; returns (name, type) pairs and rows.
async fn run(db: &Arc<Database>, sql: &str) -> (Vec<(String, String)>, Vec<Vec<Value>>) {
    let translated = db
        .translator
        .query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let conn = db.acquire().await;
    let rendered = RenderedSql {
        sql: translated.sql.clone(),
        binds: Vec::new(),
    };
    let out = query::run_typed(
        &conn,
        &rendered,
        translated.columns.as_deref(),
        QueryLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{sql}\n{}\n{e}", translated.sql));
    let meta = out.columns.into_iter().map(|c| (c.name, c.ty)).collect();
    (meta, out.rows)
}

fn refusal(sql: &str) -> String {
    translate(sql, &Catalog::default()).unwrap_err().to_string()
}

#[tokio::test]
async fn results_carry_clickhouse_names_and_types() {
    let db = demo();
    let (meta, rows) = run(&db, "SELECT count(), 1 + 1, sum(quantity), toDate(ts) AS d, org_id FROM orders GROUP BY d, org_id ORDER BY d, org_id LIMIT 1").await;
    let meta: Vec<(&str, &str)> = meta.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(
        meta,
        [
            ("count()", "UInt64"),
            ("plus(1, 1)", "UInt16"),
            ("sum(quantity)", "UInt64"),
            ("d", "Date"),
            ("org_id", "String")
        ]
    );
    assert_eq!(rows[0][1], Value::Integer(2));
}

#[tokio::test]
async fn clickhouse_meaning_wins_where_sqlite_differs() {
    let db = demo();
    let (_, rows) = run(&db, "SELECT 7 / 2, intDiv(-7, 2), 'abc' LIKE 'A%', 'abc' ILIKE 'A%', round(2.5), toDate('2024-01-31') + INTERVAL 1 MONTH").await;
    assert_eq!(
        rows[0],
        [
            Value::Real(3.5),
            Value::Integer(-3),
            Value::Integer(0),
            Value::Integer(1),
            Value::Real(2.0),
            Value::Text("2024-02-29".into())
        ]
    );
    // A DateTime compared with a date string compares as dates, not as text.
    let (_, rows) = run(
        &db,
        "SELECT toDateTime('2024-01-01 00:00:00') = '2024-01-01'",
    )
    .await;
    assert_eq!(rows[0][0], Value::Integer(1));
    // An empty set sums to 0, not NULL.
    let (_, rows) = run(&db, "SELECT sum(quantity) FROM orders WHERE 0").await;
    assert_eq!(rows[0][0], Value::Integer(0));
}

#[tokio::test]
async fn limit_by_keeps_the_first_rows_of_each_key_in_order() {
    let db = demo();
    let (_, rows) = run(
        &db,
        "SELECT org_id, order_id FROM orders ORDER BY org_id, order_id LIMIT 2 BY org_id",
    )
    .await;
    assert_eq!(rows.len(), 6);
    let orgs: Vec<&Value> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(orgs[0], orgs[1]);
    assert_ne!(orgs[1], orgs[2]);
}

#[test]
fn ungrouped_columns_are_refused_as_clickhouse_does() {
    let catalog = Catalog::from_sqlite(&{
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (a INTEGER NOT NULL, b TEXT NOT NULL)")
            .unwrap();
        c
    })
    .unwrap();
    let err = translate("SELECT a, b FROM t GROUP BY a", &catalog).unwrap_err();
    assert!(
        err.to_string()
            .contains("column b is not under an aggregate"),
        "{err}"
    );
    assert!(translate("SELECT a, any(b) FROM t GROUP BY a", &catalog).is_ok());
    assert!(translate("SELECT a + 1 AS x, count() FROM t GROUP BY x", &catalog).is_ok());
}

#[test]
fn refusals_name_the_construct_and_point_to_tinybird_local() {
    for (sql, word) in [
        ("SELECT quantileState(0.5)(x) FROM t", "quantileState"),
        ("SELECT arrayMap(x -> x, [1])", "arrayMap"),
        ("SELECT * FROM numbers(3)", "numbers"),
        ("SELECT julianday('now')", "julianday"),
        ("SELECT x FROM t ORDER BY x WITH FILL", "WITH FILL"),
        ("SELECT (1, 2)", "tuples"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("SELECT toDateTime(x, 'Asia/Tokyo') FROM t", "time zones"),
    ] {
        let message = refusal(sql);
        assert!(message.contains(word), "{sql}: {message}");
        assert!(message.contains("Tinybird Local"), "{sql}: {message}");
    }
    for sql in ["DELETE FROM t", "SELECT 1; SELECT 2", "SELECT FROM WHERE"] {
        assert!(translate(sql, &Catalog::default()).is_err(), "{sql}");
    }
}

#[test]
fn schema_qualified_names_pass_through_untouched() {
    let out = translate(
        "SELECT token_name, count() FROM tinybird.pipe_stats_rt GROUP BY token_name",
        &Catalog::default(),
    )
    .unwrap();
    assert!(
        out.sql.contains("FROM `tinybird`.`pipe_stats_rt`"),
        "{}",
        out.sql
    );
    let types: Vec<Option<ChType>> = out.columns.unwrap().into_iter().map(|c| c.ty).collect();
    // Unknown columns are typed from their values at run time; count() is still UInt64.
    assert_eq!(types, [None, Some(ChType::UInt(64))]);
}

#[test]
fn placeholders_keep_their_source_order_whatever_is_reordered() {
    let (numbered, count) = translate::number_placeholders("SELECT '?', ? -- ?\n, \"?\", ?", 2);
    assert_eq!(numbered, "SELECT '?', ?3 -- ?\n, \"?\", ?4");
    assert_eq!(count, 2);
    // An alias used twice repeats its placeholder number rather than taking a new one.
    let out = translate("SELECT ? AS a, a + 1 AS b", &Catalog::default()).unwrap();
    assert_eq!(out.sql.matches("?1").count(), 2, "{}", out.sql);
}

#[test]
fn pipe_nodes_become_ctes_readable_by_name() {
    let translator = Translator::new(Arc::new(Catalog::default()));
    let out = translator
        .pipe(
            &[
                ("first", "SELECT ? AS x"),
                ("second", "SELECT x + 1 AS y FROM first"),
            ],
            "SELECT y FROM second WHERE y > ?",
        )
        .unwrap();
    assert!(
        out.sql
            .starts_with("WITH `first` AS (SELECT ?1 AS `x`), `second` AS"),
        "{}",
        out.sql
    );
    assert!(out.sql.ends_with("WHERE `y` > ?2"), "{}", out.sql);
    // The same text is translated once.
    let again = translator.query("SELECT 1").unwrap();
    assert!(Arc::ptr_eq(&again, &translator.query("SELECT 1").unwrap()));
}
