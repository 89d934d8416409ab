//! What Tinybird's server does that a kinder stand-in would hide (docs/tinybird.md, "Server behaviour"): the
//! exact CORS headers and bare 204 to `OPTIONS`, an `X-Request-ID` ULID on every answer,
//! JSON bodies of parameters (fixed params still win), the Token API's JWT shape, and
//! `tinybird.pipe_stats_rt` recording every pipe and SQL request whose token verified.

use serde_json::{Value, json};
use tinybird_bff::tinybird::claims::{Claims, Scope, ScopeType};
use tinybird_local::LocalConfig;
use tinybird_local::auth::{StaticScope, StaticToken};

use super::{Reply, get, send};
use crate::helpers::{
    WORKSPACE, admin_key, admin_key_text, client, jwt_for, limits, now, sign_claims, spawn_local,
    spawn_local_with,
};

const TOP: &str = "/v0/pipes/top_products.json";
const STATS_TOKEN: &str = "p.usage-reader-static-token";

/// Tinybird's headers on every answer, in its words.
const CORS: &[(&str, &str)] = &[
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-headers",
        "Authorization, Content-Type, X-Requested-With, X-Tb-Warning",
    ),
    ("access-control-expose-headers", "X-Tb-Warning"),
    (
        "access-control-allow-methods",
        "GET, POST, PUT, DELETE, OPTIONS",
    ),
    ("access-control-max-age", "86400"),
];

fn assert_tinybird_headers(r: &Reply, what: &str) -> String {
    for (name, value) in CORS {
        assert_eq!(r.header(name), Some(*value), "{what}: {name}");
    }
    let id = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no X-Request-ID"));
    assert!(
        ulid::Ulid::from_string(id).is_ok(),
        "{what}: {id} is not a ULID"
    );
    id.to_owned()
}

#[tokio::test]
async fn every_answer_carries_tinybirds_cors_headers_and_a_request_id() {
    let server = spawn_local().await;
    let jwt = jwt_for("cors", &["top_products"], Some("acme"));
    let ok = get(&server.url, TOP, Some(&jwt)).await;
    let refused = get(&server.url, TOP, None).await;
    let missing = get(&server.url, "/v0/nothing/here", Some(&jwt)).await;
    let sql = get(&server.url, "/v0/sql?q=SELECT+1", Some(&admin_key_text())).await;
    let (a, b) = (
        assert_tinybird_headers(&ok, "200"),
        assert_tinybird_headers(&refused, "403"),
    );
    assert_tinybird_headers(&missing, "404");
    assert_tinybird_headers(&sql, "sql");
    assert_ne!(a, b, "one id per request");
    assert_eq!((ok.status, refused.status, missing.status), (200, 403, 404));
    // OPTIONS on any path: 204, no token needed, nothing in the body.
    for path in [TOP, "/v0/sql", "/v0/tokens/", "/anything"] {
        let r = send(
            client()
                .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
                .header("origin", "https://app.example.com")
                .header("access-control-request-method", "POST"),
        )
        .await;
        assert_eq!(r.status, 204, "{path}: {}", r.body);
        assert!(r.body.is_empty());
        assert_tinybird_headers(&r, path);
    }
}

#[tokio::test]
async fn a_json_body_carries_parameters_and_fixed_params_still_win() {
    let server = spawn_local().await;
    let jwt = jwt_for("json-body", &["top_products"], Some("acme"));
    let post = |body: Value| {
        client()
            .post(format!("{}{TOP}", server.url))
            .bearer_auth(&jwt)
            .json(&body)
    };
    let r = send(post(json!({"limit": 2, "org_id": "globex"}))).await;
    let orgs = r.org_ids();
    assert_eq!(orgs, ["acme", "acme"], "limit read from JSON, org_id fixed");
    let r = send(post(json!(["not", "an", "object"]))).await;
    r.assert_error(400, &["JSON", "object"]);
    let r = send(post(json!({"limit": {"nested": 1}}))).await;
    r.assert_error(400, &["limit", "nested"]);
    // The token is looked up in the query string and header only: a JSON `token` is ignored.
    let r = send(
        client()
            .post(format!("{}{TOP}", server.url))
            .json(&json!({"token": admin_key_text(), "limit": 1})),
    )
    .await;
    assert_eq!(r.assert_error(403, &[]), "invalid authentication token");
}

#[tokio::test]
async fn token_api_jwts_carry_no_iat_and_past_expirations_are_refused() {
    let server = spawn_local().await;
    let create = |exp: i64| {
        client()
            .post(format!("{}/v0/tokens/?expiration_time={exp}", server.url))
            .bearer_auth(admin_key_text())
            .json(&json!({"name": "sdk", "scopes": [{"type": "PIPES:READ", "resource": "top_products"}]}))
    };
    let r = send(create(now() + 600)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims;
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["exp", "name", "scopes", "workspace_id"]);
    send(create(now() - 1))
        .await
        .assert_error(400, &["expiration_time"]);
}

/// A local endpoint that also accepts a static token scoped to `pipe_stats_rt`.
async fn with_stats_reader() -> crate::helpers::LocalServer {
    let mut config = LocalConfig::new(admin_key());
    config.static_tokens.push(StaticToken {
        name: "usage reader".into(),
        token: STATS_TOKEN.to_owned().into(),
        scopes: vec![StaticScope::parse("DATASOURCES:READ:tinybird.pipe_stats_rt").unwrap()],
    });
    spawn_local_with(config).await
}

fn stats_rows(r: &Reply) -> Vec<Value> {
    r.rows()
}

#[tokio::test]
async fn pipe_stats_rt_records_every_request_as_tinybird_does() {
    let server = with_stats_reader().await;
    let mut fixed = serde_json::Map::new();
    fixed.insert("org_id".into(), json!("acme"));
    let limited = sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "alice@acme".into(),
        exp: now() + 600,
        iat: None,
        scopes: vec![Scope::pipe("top_products", fixed)],
        limits: limits(1),
    });
    let ok = get(&server.url, &format!("{TOP}?limit=2&token={limited}"), None).await;
    assert_eq!(ok.status, 200);
    let throttled = get(&server.url, TOP, Some(&limited)).await;
    assert_eq!(throttled.status, 429);
    let refused = get(&server.url, TOP, Some("not-a-token")).await;
    assert_eq!(refused.status, 403);
    let sql = get(&server.url, "/v0/sql?q=SELECT+1", Some(&admin_key_text())).await;
    assert_eq!(sql.status, 200);

    let q = "SELECT request_id, pipe_name, status_code, error, token, token_name, url, parameters, result_rows, duration FROM tinybird.pipe_stats_rt ORDER BY request_id";
    let read = |token: &str| {
        let url = format!("{}/v0/sql", server.url);
        let token = token.to_owned();
        async move { send(client().get(url).query(&[("q", q)]).bearer_auth(token)).await }
    };
    let rows = stats_rows(&read(STATS_TOKEN).await);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let by_id = |r: &Reply| {
        let id = r.header("x-request-id").unwrap().to_owned();
        rows.iter()
            .find(|row| row["request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"))
    };
    let row = by_id(&ok);
    assert_eq!(row["pipe_name"], "top_products");
    assert_eq!(
        (row["status_code"].as_str(), row["error"].as_str()),
        (Some("200"), Some("0"))
    );
    assert_eq!(row["token"], "", "JWTs are not stored");
    assert_eq!(row["token_name"], "alice@acme");
    assert_eq!(
        row["url"], "/v0/pipes/top_products.json?limit=2",
        "token removed"
    );
    assert_eq!(row["result_rows"], "2");
    assert!(!row["parameters"].as_str().unwrap().contains(&limited));
    let row = by_id(&throttled);
    assert_eq!(
        (row["status_code"].as_str(), row["token_name"].as_str()),
        (Some("429"), Some("alice@acme"))
    );
    // A token that does not verify proves no workspace: Tinybird keeps no row of it.
    let refused_id = refused.header("x-request-id").unwrap();
    assert!(
        rows.iter().all(|row| row["request_id"] != refused_id),
        "{rows:?}"
    );
    let row = by_id(&sql);
    assert_eq!(row["pipe_name"], "query_api");
    assert_eq!(row["token_name"], "admin token");

    // The admin token reads it too; a tenant's JWT never does, whatever its scopes say.
    assert_eq!(
        stats_rows(&read(&admin_key_text()).await).len(),
        4,
        "the read above is a row too"
    );
    let tenant = sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "mallory@acme".into(),
        exp: now() + 600,
        iat: None,
        scopes: vec![
            Scope {
                scope_type: ScopeType::DatasourcesRead,
                resource: "orders".into(),
                fixed_params: None,
                filter: Some("org_id = 'acme'".into()),
            },
            Scope {
                scope_type: ScopeType::DatasourcesRead,
                resource: "tinybird.pipe_stats_rt".into(),
                fixed_params: None,
                filter: None,
            },
        ],
        limits: None,
    });
    read(&tenant)
        .await
        .assert_error(403, &["tinybird.pipe_stats_rt"]);
    let joined = "SELECT count() FROM orders WHERE org_id IN (SELECT token_name FROM tinybird.pipe_stats_rt)";
    let r = send(
        client()
            .get(format!("{}/v0/sql", server.url))
            .query(&[("q", joined)])
            .bearer_auth(&tenant),
    )
    .await;
    r.assert_error(403, &["pipe_stats_rt"]);
    // The static token reads only what its scope names.
    let r = send(
        client()
            .get(format!("{}/v0/sql", server.url))
            .query(&[("q", "SELECT count() FROM orders")])
            .bearer_auth(STATS_TOKEN),
    )
    .await;
    r.assert_error(403, &["orders"]);
    let r = get(&server.url, TOP, Some(STATS_TOKEN)).await;
    r.assert_error(403, &["top_products"]);
}
