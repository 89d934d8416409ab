//! No request may hold the local endpoint (issue #25, items 7, 8 and 10): functions stay
//! linear or stop at the query's deadline, slow queries give their connection back in time,
//! the usage record keeps bounded text and nothing of unauthenticated requests, and the
//! translator is linear, bounded, and off the async workers.
//!
//! The tests that would hang a single-threaded runtime on a broken build run on two workers
//! and give up after a short client timeout, so a regression fails in seconds.

use std::time::Duration;

use serde_json::Value;
use tinybird_local::LocalConfig;
use tinybird_local::auth::{StaticScope, StaticToken};
use tinybird_local::clickhouse::TranslateLimits;
use tinybird_local::query::QueryLimits;
use tinybird_local::stats::StatsSettings;

use super::process::alice;
use super::{Reply, send};
use crate::helpers::{LocalServer, admin_key, admin_key_text, jwt_for, spawn_local_with};

/// A local endpoint served from a thread and runtime of its own that nobody waits for: a
/// query that never ends (on a broken build) cannot keep the test from failing in time,
/// since dropping the test's runtime would wait for its blocking tasks.
struct Detached {
    url: String,
}

/// An endpoint whose queries must end within `timeout`.
async fn endpoint(timeout: Duration) -> Detached {
    let mut config = LocalConfig::new(admin_key());
    config.query_limits = QueryLimits {
        timeout,
        ..QueryLimits::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let server = spawn_local_with(config).await;
            let _ = tx.send(server.url.clone());
            // Serves until the test process exits.
            std::future::pending::<()>().await;
            drop(server);
        });
    });
    Detached {
        url: rx.await.expect("the endpoint starts"),
    }
}

/// Where a test endpoint listens.
trait Url {
    fn url(&self) -> &str;
}

impl Url for Detached {
    fn url(&self) -> &str {
        &self.url
    }
}

impl Url for LocalServer {
    fn url(&self) -> &str {
        &self.url
    }
}

/// `POST /v0/sql` with a client that gives up after `patience`.
async fn sql(server: &impl Url, token: &str, query: &str, patience: Duration) -> Reply {
    let client = reqwest::Client::builder()
        .timeout(patience)
        .build()
        .unwrap();
    send(
        client
            .post(format!("{}/v0/sql", server.url()))
            .bearer_auth(token)
            .body(query.to_owned()),
    )
    .await
}

fn first_value(reply: &Reply, column: &str) -> Value {
    reply.rows()[0][column].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_with_a_long_pattern_over_a_long_text_answers_at_once() {
    let server = endpoint(Duration::from_secs(2)).await;
    // ~n²/4 steps for the textbook matcher: minutes at a megabyte.
    let q = "SELECT repeat('a', 1000000) LIKE concat('%', repeat('a', 500000), 'b') AS m, \
             repeat('ab', 500000) LIKE concat('%', repeat('ab', 200000), '%') AS n";
    let r = sql(&server, &alice(), q, Duration::from_secs(8)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(first_value(&r, "m"), 0);
    assert_eq!(first_value(&r, "n"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_like_that_stays_quadratic_stops_at_the_deadline() {
    let server = endpoint(Duration::from_secs(1)).await;
    // An `_` inside a segment is matched position by position: the deadline holds inside.
    let q = "SELECT repeat('a', 4000000) LIKE concat('%', repeat('a', 100000), '_b%') AS m";
    let r = sql(&server, &alice(), q, Duration::from_secs(8)).await;
    r.assert_error(408, &["took longer than the 1s limit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_give_their_connections_back_in_time() {
    let server = endpoint(Duration::from_secs(1)).await;
    let q = "SELECT repeat('a', 4000000) LIKE concat('%', repeat('a', 100000), '_b%') AS m";
    // More slow queries than pooled connections.
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let r = client
                    .post(format!("{url}/v0/sql"))
                    .bearer_auth(alice())
                    .body(q)
                    .send()
                    .await;
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(6))
        .build()
        .unwrap();
    let pipe = send(
        client
            .get(format!("{}/v0/pipes/top_products.json?limit=1", server.url))
            .bearer_auth(&token),
    )
    .await;
    // Either served, or itself out of time: never stuck behind the slow ones.
    assert!(
        pipe.status == 200 || pipe.status == 408,
        "a pipe call behind six slow queries: {} {}",
        pipe.status,
        pipe.body
    );
    for s in slow {
        assert_eq!(s.await.unwrap(), 408, "a slow query ended by its deadline");
    }
    assert_eq!(
        send(
            client
                .get(format!("{}/v0/pipes/top_products.json?limit=1", server.url))
                .bearer_auth(&token)
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_and_aliases_translate_in_linear_time_or_are_refused_by_name() {
    let server = endpoint(Duration::from_secs(5)).await;
    let patience = Duration::from_secs(8);
    // 60 terms: 2^60 steps when each side of `+` was translated twice.
    let q = format!("SELECT {} AS n", vec!["1"; 60].join("+"));
    let r = sql(&server, &alice(), &q, patience).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(first_value(&r, "n"), "60");
    // Dates still take the date path, each side translated once.
    let q = "SELECT toDate('2024-01-30') + 1 + 1 AS d, now() - now() AS z";
    let r = sql(&server, &alice(), q, patience).await;
    assert_eq!(first_value(&r, "d"), "2024-02-01");
    // Each alias used twice doubles the work: bounded by max_expanded_ast_elements.
    let mut items = vec!["1 AS a0".to_owned()];
    items.extend((1..=40).map(|i| format!("a{p} + a{p} AS a{i}", p = i - 1)));
    let q = format!("SELECT {}", items.join(", "));
    let r = sql(&server, &alice(), &q, patience).await;
    r.assert_error(400, &["max_expanded_ast_elements"]);
}

#[tokio::test]
async fn translation_limits_are_settings() {
    let mut config = LocalConfig::new(admin_key());
    config.translate_limits = TranslateLimits {
        max_query_size: 2048,
        max_ast_depth: 20,
        max_expanded_ast_elements: 100,
        deadline: None,
    };
    let server = spawn_local_with(config).await;
    let patience = Duration::from_secs(10);
    let r = sql(
        &server,
        &alice(),
        &format!("SELECT '{}'", "x".repeat(3000)),
        patience,
    )
    .await;
    r.assert_error(400, &["3009 bytes", "2048", "max_query_size"]);
    let deep = format!("SELECT {} AS n", vec!["1"; 30].join("+"));
    sql(&server, &alice(), &deep, patience)
        .await
        .assert_error(400, &["20 levels", "max_ast_depth"]);
    let wide = format!("SELECT {}", vec!["1"; 150].join(", "));
    sql(&server, &alice(), &wide, patience)
        .await
        .assert_error(400, &["100 expression nodes", "max_expanded_ast_elements"]);
    let fine = format!("SELECT {} AS n", ["1"; 10].join("+"));
    assert_eq!(sql(&server, &alice(), &fine, patience).await.status, 200);
}

#[tokio::test]
async fn function_limits_are_settings() {
    let mut config = LocalConfig::new(admin_key());
    config.query_limits = QueryLimits {
        max_value_bytes: 4096,
        max_memory_bytes: 64 * 1024,
        max_result_bytes: 16 * 1024,
        ..QueryLimits::default()
    };
    let server = spawn_local_with(config).await;
    let patience = Duration::from_secs(10);
    let token = alice();
    let run = |q: &'static str| sql(&server, &token, q, patience);
    run("SELECT leftPad('x', 5000, 'ab') AS s")
        .await
        .assert_error(400, &["leftPad", "4096 bytes per value"]);
    run("SELECT replaceRegexpAll(repeat('a', 100), 'a', repeat('b', 100)) AS s")
        .await
        .assert_error(400, &["replaceRegexpAll", "4096 bytes per value"]);
    run("SELECT splitByString('', repeat('a', 3000)) AS s")
        .await
        .assert_error(400, &["splitByString", "4096"]);
    // SQLite's own functions keep to the same per-value limit.
    run("SELECT concat(repeat('a', 3000), repeat('b', 3000)) AS s")
        .await
        .assert_error(400, &["4096 bytes allowed per value"]);
    // Aggregate states count against the query's memory.
    run("SELECT groupArray(concat(toString(order_id), repeat('x', 100))) AS a FROM orders")
        .await
        .assert_error(400, &["groupArray", "memory limit of 65536 bytes"]);
    run("SELECT order_id, product_id, day FROM orders")
        .await
        .assert_error(400, &["16384 bytes allowed"]);
    assert_eq!(run("SELECT repeat('x', 4096) AS s").await.status, 200);
}

const STATS_TOKEN: &str = "p.resources-stats-reader";

/// Reads `tinybird.pipe_stats_rt` with the static token scoped to it.
async fn stats(server: &LocalServer, query: &str) -> Vec<Value> {
    let reply = send(
        crate::helpers::client()
            .get(format!("{}/v0/sql", server.url))
            .query(&[("q", query)])
            .bearer_auth(STATS_TOKEN),
    )
    .await;
    reply.rows()
}

async fn with_stats(settings: StatsSettings) -> LocalServer {
    let mut config = LocalConfig::new(admin_key());
    config.stats = settings;
    config.static_tokens.push(StaticToken {
        name: "stats".into(),
        token: STATS_TOKEN.to_owned().into(),
        scopes: vec![StaticScope::parse("DATASOURCES:READ:tinybird.pipe_stats_rt").unwrap()],
    });
    spawn_local_with(config).await
}

#[tokio::test]
async fn unauthenticated_requests_leave_no_row_and_rows_keep_bounded_text() {
    let server = with_stats(StatsSettings::default()).await;
    let client = crate::helpers::client();
    let big = "x".repeat(1024 * 1024 - 64);
    let form = |token: Option<&str>| {
        let mut request = client
            .post(format!("{}/v0/pipes/top_products.json", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("org_id=acme&note={big}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    assert_eq!(send(form(None)).await.status, 403);
    assert_eq!(send(form(Some("not-a-token"))).await.status, 403);
    let expired = {
        use tinybird_bff::tinybird::claims::{Claims, Scope};
        crate::helpers::sign_claims(Claims {
            workspace_id: crate::helpers::WORKSPACE.into(),
            name: "expired@acme".into(),
            exp: crate::helpers::now() - 10,
            iat: None,
            scopes: vec![Scope::pipe("top_products", serde_json::Map::new())],
            limits: None,
        })
    };
    assert_eq!(send(form(Some(&expired))).await.status, 403);
    let token = jwt_for("alice@acme", &["top_products"], Some("acme"));
    let served = send(form(Some(&token))).await;
    assert_eq!(served.status, 200, "{}", served.body);
    let outside = jwt_for("alice@acme", &["recent_orders"], Some("acme"));
    assert_eq!(send(form(Some(&outside))).await.status, 403);

    let rows = stats(
        &server,
        "SELECT token_name, status_code, length(url) AS u, length(parameters) AS p \
         FROM tinybird.pipe_stats_rt ORDER BY status_code",
    )
    .await;
    let names: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["token_name"].as_str().unwrap(),
                r["status_code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("alice@acme", "200"), ("alice@acme", "403")],
        "only requests whose token verified are rows"
    );
    for row in &rows {
        let (u, p) = (row["u"].as_str().unwrap(), row["p"].as_str().unwrap());
        let (u, p): (usize, usize) = (u.parse().unwrap(), p.parse().unwrap());
        assert!(
            u <= 2048 && p <= 2048,
            "a row keeps {u} bytes of url, {p} of parameters"
        );
        assert!(
            u > 100 && p > 100,
            "the parameters are still recorded, cut: {u}, {p}"
        );
    }
    // The admin token reads the same record.
    let admin = send(
        crate::helpers::client()
            .get(format!("{}/v0/sql", server.url))
            .query(&[("q", "SELECT count() AS n FROM tinybird.pipe_stats_rt")])
            .bearer_auth(admin_key_text()),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
}

#[tokio::test]
async fn the_usage_record_is_bounded_in_bytes() {
    let server = with_stats(StatsSettings {
        max_bytes: 64 * 1024,
        max_text_bytes: 1024,
        ..StatsSettings::default()
    })
    .await;
    let token = jwt_for("alice@acme", &["top_products"], Some("acme"));
    let long = "y".repeat(2000);
    for _ in 0..200 {
        let r = send(
            crate::helpers::client()
                .get(format!(
                    "{}/v0/pipes/top_products.json?limit=1&note={long}",
                    server.url
                ))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let rows = stats(
        &server,
        "SELECT count() AS n, sum(length(url) + length(parameters)) AS bytes, \
         max(length(url)) AS longest FROM tinybird.pipe_stats_rt",
    )
    .await;
    let number = |k: &str| rows[0][k].as_str().unwrap().parse::<usize>().unwrap();
    assert!(number("longest") <= 1024, "{rows:?}");
    assert!(number("bytes") <= 64 * 1024, "{rows:?}");
    assert!(number("n") >= 20, "recent rows stay: {rows:?}");
}
