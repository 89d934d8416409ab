//! The sandbox on the real demo database and connection pool, without HTTP: row filters
//! hold, the pooled connection is clean afterwards, and budgets apply. The full list of
//! bypass attempts runs over real sockets in `tests/api/sql.rs`.

use std::time::Duration;

use rusqlite::types::Value;

use super::*;
use crate::data::{DEMO_ORGS, Database, DemoData};
use crate::query::{self, QueryLimits};
use crate::template::RenderedSql;

async fn db() -> Arc<Database> {
    Database::generate(&DemoData {
        orders: 600,
        ..DemoData::default()
    })
    .unwrap()
}

fn tenant(org: &str) -> SqlAccess {
    // Demo tenant ids need no escaping (the grants quote real ones: `grants::sql_literal`).
    let filter = format!("org_id = '{org}'");
    SqlAccess::Filtered(
        ["orders", "products", "orgs"]
            .into_iter()
            .map(|t| (t.to_owned(), Some(filter.clone())))
            .collect(),
    )
}

/// Translates the ClickHouse query, then runs it in the sandbox, as `/v0/sql` does.
async fn run(db: &Arc<Database>, access: &SqlAccess, sql: &str) -> Result<QueryOutput, SqlError> {
    let translated = db.translator.query(sql)?;
    let conn = db.acquire().await;
    let columns = translated.columns.as_deref();
    sandbox::run_typed(
        &conn,
        &translated.sql,
        columns,
        access,
        QueryLimits::default(),
        std::time::Instant::now() + QueryLimits::default().timeout,
    )
}

fn ints(out: &QueryOutput) -> Vec<i64> {
    out.rows
        .iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref other => panic!("not an integer: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn each_tenant_counts_only_its_rows_and_the_admin_counts_all() {
    let db = db().await;
    let mut sum = 0;
    for (org, _, _) in DEMO_ORGS {
        let out = run(&db, &tenant(org), "SELECT count(*) FROM orders")
            .await
            .unwrap();
        let n = ints(&out)[0];
        assert!(n > 0, "{org}");
        let foreign = run(
            &db,
            &tenant(org),
            "SELECT count(*) FROM orders WHERE org_id <> (SELECT min(org_id) FROM orgs)",
        )
        .await
        .unwrap();
        assert_eq!(ints(&foreign), [0], "{org}");
        sum += n;
    }
    let all = run(&db, &SqlAccess::Admin, "SELECT count(*) FROM orders")
        .await
        .unwrap();
    assert_eq!(ints(&all), [sum]);
    assert_eq!(sum, 600);
}

#[tokio::test]
async fn column_types_come_through_the_views() {
    let db = db().await;
    let out = run(
        &db,
        &tenant("acme"),
        "SELECT ts, day, amount, quantity, customer FROM orders LIMIT 1",
    )
    .await
    .unwrap();
    let types: Vec<&str> = out.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(types, ["DateTime", "Date", "Float64", "UInt8", "String"]);
}

#[tokio::test]
async fn a_scope_without_filter_reads_every_row_of_that_table_only() {
    let db = db().await;
    let access = SqlAccess::Filtered([("orgs".to_owned(), None)].into());
    let out = run(&db, &access, "SELECT count(*) FROM orgs")
        .await
        .unwrap();
    assert_eq!(ints(&out), [DEMO_ORGS.len() as i64]);
    let err = run(&db, &access, "SELECT count(*) FROM orders")
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::FORBIDDEN, "{err}");
    assert!(
        err.to_string()
            .contains("no DATASOURCES:READ scope for data source orders"),
        "{err}"
    );
}

#[tokio::test]
async fn a_constant_filter_still_counts() {
    // No column used anywhere: SQLite's column-less read notice after flattening.
    let db = db().await;
    let access = SqlAccess::Filtered([("orgs".to_owned(), Some("1 = 1".to_owned()))].into());
    for sql in ["SELECT count(*) FROM orgs", "SELECT 1 FROM orgs"] {
        let out = run(&db, &access, sql).await.unwrap();
        assert!(!out.rows.is_empty(), "{sql}");
    }
}

#[tokio::test]
async fn the_pooled_connection_is_clean_after_success_and_failure() {
    let db = db().await;
    for sql in [
        "SELECT count(*) FROM orders",
        "SELECT * FROM main.orders",
        "SELECT nope FROM orders",
    ] {
        let _ = run(&db, &tenant("acme"), sql).await;
    }
    // Every pooled connection: no temp objects, no authorizer, still read-only.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(db.acquire().await);
    }
    for conn in &held {
        let temp: i64 = conn
            .query_row("SELECT count(*) FROM temp.sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp, 0);
        let out = query::run(
            conn,
            &RenderedSql {
                sql: "SELECT count(*) FROM orders".into(),
                binds: vec![],
            },
            QueryLimits::default(),
        )
        .unwrap();
        assert_eq!(ints(&out), [600], "pipes see the whole table again");
        assert!(
            conn.execute_batch("CREATE TEMP TABLE x (a)").is_err(),
            "query_only is back on"
        );
        let long: i64 = conn
            .query_row("SELECT length(zeroblob(20000000))", [], |r| r.get(0))
            .unwrap();
        assert_eq!(long, 20_000_000, "the length limit is lifted for pipes");
    }
}

#[tokio::test]
async fn budgets_apply() {
    let db = db().await;
    let conn = db.acquire().await;
    let quick = QueryLimits {
        timeout: Duration::from_millis(50),
        max_rows: 10,
        ..QueryLimits::default()
    };
    let slow =
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";
    let err = sandbox::run(&conn, slow, &tenant("acme"), quick).unwrap_err();
    assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT, "{err}");
    let err = sandbox::run(&conn, "SELECT * FROM orders", &tenant("acme"), quick).unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
    let doubling = "WITH RECURSIVE r(s, n) AS (SELECT 'x', 0 UNION ALL SELECT s || s, n + 1 FROM r WHERE n < 40) SELECT max(length(s)) FROM r";
    let err = sandbox::run(&conn, doubling, &tenant("acme"), QueryLimits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("larger than the 16777216 bytes allowed per value"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_filter_is_named() {
    let db = db().await;
    let access =
        SqlAccess::Filtered([("orders".to_owned(), Some("no_such_column = 1".to_owned()))].into());
    let err = run(&db, &access, "SELECT count(*) FROM orders")
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let text = err.to_string();
    assert!(text.contains("filter for data source orders"), "{text}");
    assert!(
        !text.contains("tbrls_"),
        "the secret view name leaked: {text}"
    );
}

#[test]
fn scopes_become_access() {
    let ds = |r: &str, f: Option<&str>| Scope {
        scope_type: ScopeType::DatasourcesRead,
        resource: r.into(),
        fixed_params: None,
        filter: f.map(Into::into),
    };
    let pipe = Scope::pipe("top_products", Default::default());
    assert!(matches!(
        SqlAccess::from_scopes(std::slice::from_ref(&pipe)),
        Err(SqlError::Scopes(_))
    ));
    let both = SqlAccess::from_scopes(&[
        pipe,
        ds("orders", Some("a = 1")),
        ds("orders", Some("a = 1")),
    ])
    .unwrap();
    assert_eq!(
        both,
        SqlAccess::Filtered([("orders".to_owned(), Some("a = 1".to_owned()))].into())
    );
    let clash = SqlAccess::from_scopes(&[ds("orders", Some("a = 1")), ds("orders", None)]);
    assert!(matches!(clash, Err(SqlError::Scopes(_))));
}

#[test]
fn sqlite_never_asks_about_using_columns_so_the_bytecode_check_must() {
    // The gap the check pass's EXPLAIN exists for: with the strictest policy installed, a
    // USING join on `main.orders` compiles without a single question to the authorizer.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, org_id TEXT);
         INSERT INTO orders VALUES (1, 'acme'), (2, 'globex');
         CREATE TEMP TABLE orders AS SELECT * FROM main.orders WHERE 0;",
    )
    .unwrap();
    let policy = policy::Policy::new(policy::Mode::Check, ["orders"], []);
    conn.authorizer(Some(
        move |ctx: rusqlite::hooks::AuthContext<'_>| match policy.decide(&ctx) {
            Ok(()) => rusqlite::hooks::Authorization::Allow,
            Err(_) => rusqlite::hooks::Authorization::Deny,
        },
    ));
    let leak = "SELECT count(*) FROM (SELECT 'globex' AS org_id) JOIN main.orders USING (org_id)";
    let n: i64 = conn.query_row(leak, [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "the authorizer alone lets this count globex's rows");
    assert!(conn.prepare("SELECT count(*) FROM main.orders").is_err());
}

#[tokio::test]
async fn parameters_are_refused_plainly() {
    let db = db().await;
    for access in [tenant("acme"), SqlAccess::Admin] {
        let err = run(&db, &access, "SELECT * FROM orders WHERE org_id = ?")
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
        assert!(err.to_string().contains("parameters"), "{err}");
    }
}

#[tokio::test]
async fn a_filter_cannot_add_a_statement() {
    let db = db().await;
    let filter = "1); CREATE TEMP TABLE smuggled (a); SELECT (1".to_owned();
    let access = SqlAccess::Filtered([("orgs".to_owned(), Some(filter))].into());
    let err = run(&db, &access, "SELECT count(*) FROM orgs")
        .await
        .unwrap_err();
    assert!(matches!(err, SqlError::BadFilter { .. }), "{err}");
}

/// ClickHouse has no bare `VALUES` statement (it is a table function there): refused, named.
#[tokio::test]
async fn sqlite_only_syntax_is_refused_by_name() {
    let db = db().await;
    for (sql, word) in [
        ("VALUES (1, 'a')", "VALUES"),
        ("SELECT julianday(day) FROM orders", "julianday"),
        ("SELECT strftime('%Y', ts) FROM orders", "strftime"),
    ] {
        let err = run(&db, &tenant("acme"), sql).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{sql}");
        assert!(
            err.to_string().contains(word) && err.to_string().contains("Tinybird Local"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn ordinary_analytics_queries_run() {
    let db = db().await;
    for sql in [
        "SELECT p.product_name, sum(o.amount) AS revenue FROM orders o JOIN products p USING (org_id, product_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
        "WITH daily AS (SELECT day, sum(amount) AS s FROM orders GROUP BY day) SELECT day, s, avg(s) OVER (ORDER BY day ROWS 6 PRECEDING) FROM daily",
        "SELECT g.org_name, count(*) FROM orgs g LEFT JOIN orders o ON o.org_id = g.org_id GROUP BY 1",
        "SELECT toStartOfMonth(ts) AS month, round(sum(amount), 2) FROM orders GROUP BY month",
        "SELECT customer FROM orders WHERE product_id IN (SELECT product_id FROM products WHERE category = 'gear') LIMIT 3",
        "SELECT 1 AS n, 'a' AS s UNION ALL SELECT 2, 'b'",
    ] {
        let out = run(&db, &tenant("acme"), sql).await;
        assert!(
            out.as_ref().is_ok_and(|o| !o.rows.is_empty()),
            "{sql}: {out:?}"
        );
    }
}
