//! `/v0/sql` as an endpoint: who may call it, how the query arrives, the `FORMAT` clause,
//! and the time, row and rate budgets.

use serde_json::{Value, json};
use tinybird_bff::tinybird::claims::{Claims, Limits, Scope, ScopeType};
use tinybird_local::LocalConfig;
use tinybird_local::query::QueryLimits;

use super::{acme, count, ds_token, rows, sql};
use crate::helpers::{
    WORKSPACE, admin_key, admin_key_text, client, jwt_for, now, sign_claims, spawn_app,
    spawn_local, spawn_local_with,
};

#[tokio::test]
async fn who_may_use_the_endpoint() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    // The admin reads everything, every tenant.
    let orgs = rows(&server, &admin, "SELECT org_id FROM orgs ORDER BY org_id").await;
    assert_eq!(
        orgs,
        [
            json!({"org_id": "acme"}),
            json!({"org_id": "globex"}),
            json!({"org_id": "initech"})
        ]
    );
    // A pipes-only JWT, no token, and a data source the token lacks: 403.
    let pipes_only = jwt_for("p", &["top_products"], Some("acme"));
    let (status, body) = sql(&server, &pipes_only, "SELECT 1").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DATASOURCES:READ"), "{body}");
    let r = client()
        .get(format!("{}/v0/sql?q=SELECT%201", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let only_orders = ds_token(&["orders"], "org_id = 'acme'");
    let (status, body) = sql(
        &server,
        &only_orders,
        "SELECT o.org_id FROM orders o JOIN orgs USING (org_id)",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("no DATASOURCES:READ scope for data source orgs"),
        "{body}"
    );
    // A scope for a table that does not exist grants nothing.
    let ghost = ds_token(&["ghost"], "1 = 1");
    let (status, _) = sql(&server, &ghost, "SELECT * FROM ghost").await;
    assert_eq!(status, 400);
    // Errors keep the envelope; methods other than GET and POST are 405.
    let (status, body) = sql(&server, &acme(), "SELECT nope FROM orders").await;
    assert_eq!(status, 400);
    assert!(body.contains("no such column: nope"), "{body}");
    let r = client()
        .delete(format!("{}/v0/sql", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn get_form_post_and_raw_post_carry_the_query() {
    let server = spawn_local().await;
    let token = acme();
    let q = "SELECT count(*) AS n FROM orders";
    let expected = count(&server, &token, q).await;
    let form = client()
        .post(format!("{}/v0/sql", server.url))
        .bearer_auth(&token)
        .form(&[("q", q)])
        .send()
        .await
        .unwrap();
    let form: Value = form.json().await.unwrap();
    assert_eq!(form["data"][0]["n"], expected.to_string());
    let raw = client()
        .post(format!("{}/v0/sql?token={token}", server.url))
        .header("content-type", "text/plain")
        .body(q)
        .send()
        .await
        .unwrap();
    let raw: Value = raw.json().await.unwrap();
    assert_eq!(raw["data"][0]["n"], expected.to_string());
    let (status, body) = sql(&server, &token, "  ").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_trailing_format_clause_picks_the_output() {
    let server = spawn_local().await;
    let token = acme();
    let base = "SELECT org_id, count(*) AS n FROM orders GROUP BY org_id";
    let fetch = |suffix: &'static str| {
        let (url, token) = (server.url.clone(), token.clone());
        async move {
            let r = client()
                .get(format!("{url}/v0/sql"))
                .query(&[("q", format!("{base}{suffix}"))])
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (status, ct, body) = fetch(" FORMAT JSON").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["meta"],
        json!([{"name": "org_id", "type": "String"}, {"name": "n", "type": "UInt64"}])
    );
    assert_eq!(body["rows"], 1);
    let n = body["data"][0]["n"].as_str().unwrap().to_owned();
    let (_, ct, csv) = fetch(" FORMAT CSV").await;
    assert!(ct.starts_with("text/csv"));
    assert_eq!(csv, format!("acme,{n}\n"));
    let (_, _, csv) = fetch("\nformat CSVWithNames;").await;
    assert_eq!(csv, format!("org_id,n\nacme,{n}\n"));
    let (_, ct, nd) = fetch(" FORMAT JSONEachRow").await;
    assert_eq!(ct, "application/x-ndjson");
    assert_eq!(nd, format!("{{\"org_id\":\"acme\",\"n\":\"{n}\"}}\n"));
    let (status, _, body) = fetch(" FORMAT Parquet").await;
    assert_eq!(status, 400);
    assert!(body.contains("format Parquet is not supported"), "{body}");
}

#[tokio::test]
async fn time_and_row_budgets_apply() {
    let mut config = LocalConfig::new(admin_key());
    // The recursive query below never ends, so any budget catches it; 2 s leaves the
    // overview pipe at the end room on a loaded machine (200 ms once timed it out there).
    config.query_limits = QueryLimits {
        timeout: std::time::Duration::from_secs(2),
        max_rows: 5,
        ..QueryLimits::default()
    };
    let server = spawn_local_with(config).await;
    let token = acme();
    let (status, body) = sql(&server, &token, "SELECT * FROM orders").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("more than 5 rows"), "{body}");
    let slow =
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";
    let (status, body) = sql(&server, &token, slow).await;
    assert_eq!(status, 408, "{body}");
    // The connection is usable afterwards, and pipes still see every tenant.
    assert_eq!(
        rows(&server, &token, "SELECT 1 AS one").await,
        [json!({"one": 1})]
    );
    let admin = admin_key_text();
    let r = client()
        .get(format!(
            "{}/v0/pipes/orgs_overview.json?token={admin}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 3, "{body}");
}

#[tokio::test]
async fn limits_rps_applies_per_token_name() {
    let server = spawn_local().await;
    let token = sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "sql-rps".into(),
        exp: now() + 600,
        iat: Some(now()),
        scopes: vec![Scope {
            scope_type: ScopeType::DatasourcesRead,
            resource: "orgs".into(),
            fixed_params: None,
            filter: Some("org_id = 'acme'".into()),
        }],
        limits: Some(Limits { rps: 1 }),
    });
    let (first, _) = sql(&server, &token, "SELECT 1").await;
    let second = client()
        .get(format!("{}/v0/sql?q=SELECT%201", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(first, 200);
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn the_demo_grant_gives_each_user_their_tenant_in_sql() {
    let app = spawn_app().await;
    app.login_as("bob").await;
    let (status, body) = app.token().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["datasources"], json!(["orders", "orgs", "products"]));
    assert_eq!(
        body["pipes"],
        json!(["recent_orders", "sales_by_day", "top_products"])
    );
    let token = body["token"].as_str().unwrap();
    let r = client()
        .get(format!("{}/v0/sql", app.tinybird))
        .query(&[(
            "q",
            "SELECT DISTINCT o.org_id FROM orders o JOIN orgs g USING (org_id)",
        )])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["data"], json!([{"org_id": "globex"}]), "{result}");
    app.stop().await;
}
