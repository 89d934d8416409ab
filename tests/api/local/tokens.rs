//! The Token API subset the official SDKs call for `createJWT`:
//! `POST /v0/tokens/?expiration_time=<unix>` with the admin token and `{name, scopes, limits?}`.

use serde_json::{Value, json};

use super::{Reply, get, send};
use crate::helpers::{admin_key_text, client, jwt_for, now, spawn_local};

fn body() -> Value {
    json!({
        "name": "tenant-initech",
        "scopes": [{"type": "PIPES:READ", "resource": "recent_orders", "fixed_params": {"org_id": "initech"}}],
        "limits": {"rps": 20},
    })
}

async fn create(base: &str, query: &str, token: Option<&str>, body: &str) -> Reply {
    let mut request = client()
        .post(format!("{base}/v0/tokens/{query}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_admin_token_creates_a_jwt_that_reads_the_pipe_with_its_fixed_params() {
    let server = spawn_local().await;
    let exp = now() + 300;
    let r = create(
        &server.url,
        &format!("?expiration_time={exp}"),
        Some(&admin_key_text()),
        &body().to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(
        answer.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["token"]
    );
    let jwt = answer["token"].as_str().unwrap();
    let claims = claims_of(jwt);
    assert_eq!(
        claims["exp"], exp,
        "the expiration asked for, as an integer"
    );
    assert_eq!(claims["name"], "tenant-initech");
    assert_eq!(claims["limits"], json!({"rps": 20}));
    let rows = get(
        &server.url,
        "/v0/pipes/recent_orders.json?org_id=acme",
        Some(jwt),
    )
    .await;
    let orgs = rows.org_ids();
    assert!(
        !orgs.is_empty() && orgs.iter().all(|o| o == "initech"),
        "{orgs:?}"
    );
    assert_eq!(rows.header("x-ratelimit-limit"), Some("20"));
    get(&server.url, "/v0/pipes/top_products.json", Some(jwt))
        .await
        .assert_error(403, &["top_products"]);
}

#[tokio::test]
async fn the_admin_token_may_come_as_a_param_and_limits_are_optional() {
    let server = spawn_local().await;
    let minimal =
        json!({"name": "n", "scopes": [{"type": "PIPES:READ", "resource": "orgs_overview"}]});
    let q = format!("?expiration_time={}&token={}", now() + 60, admin_key_text());
    // Without the trailing slash, too (some clients drop it).
    for url in [
        format!("{}/v0/tokens/{q}", server.url),
        format!("{}/v0/tokens{q}", server.url),
    ] {
        let r = send(
            client()
                .post(url)
                .header("content-type", "application/json")
                .body(minimal.to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let jwt = r.json()["token"].as_str().unwrap().to_owned();
        assert!(claims_of(&jwt).get("limits").is_none());
        assert_eq!(
            get(&server.url, "/v0/pipes/orgs_overview.json", Some(&jwt))
                .await
                .rows()
                .len(),
            3
        );
    }
}

#[tokio::test]
async fn a_jwt_or_no_token_cannot_create_tokens() {
    let server = spawn_local().await;
    let q = format!("?expiration_time={}", now() + 300);
    let jwt = jwt_for("acme-user", &["top_products"], Some("acme"));
    create(&server.url, &q, Some(&jwt), &body().to_string())
        .await
        .assert_error(403, &["token needs scope admin"]);
    create(&server.url, &q, None, &body().to_string())
        .await
        .assert_error(403, &["invalid authentication token"]);
    create(
        &server.url,
        &q,
        Some("p.not-the-admin-token"),
        &body().to_string(),
    )
    .await
    .assert_error(403, &[]);
}

#[tokio::test]
async fn missing_past_or_malformed_expiration_is_a_400() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    let b = body().to_string();
    create(&server.url, "", Some(&admin), &b)
        .await
        .assert_error(400, &["missing", "expiration_time"]);
    create(
        &server.url,
        &format!("?expiration_time={}", now() - 10),
        Some(&admin),
        &b,
    )
    .await
    .assert_error(400, &["expiration_time", "past"]);
    create(
        &server.url,
        &format!("?expiration_time={}", now()),
        Some(&admin),
        &b,
    )
    .await
    .assert_error(400, &["past"]);
    for bad in ["soon", "1.5e9", "2026-01-01"] {
        create(
            &server.url,
            &format!("?expiration_time={bad}"),
            Some(&admin),
            &b,
        )
        .await
        .assert_error(400, &["expiration_time", "integer"]);
    }
}

#[tokio::test]
async fn a_malformed_body_is_a_400() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    let q = format!("?expiration_time={}", now() + 300);
    let cases = [
        ("not JSON", "name=x".to_owned()),
        ("empty", String::new()),
        ("no scopes", json!({"name": "x"}).to_string()),
        ("no name", json!({"scopes": []}).to_string()),
        (
            "blank name",
            json!({"name": "  ", "scopes": []}).to_string(),
        ),
        (
            "scopes not a list",
            json!({"name": "x", "scopes": "PIPES:READ"}).to_string(),
        ),
        (
            "unknown field",
            json!({"name": "x", "scopes": [], "admin": true}).to_string(),
        ),
        (
            "append scope",
            json!({"name": "x", "scopes": [{"type": "DATASOURCES:APPEND", "resource": "orders"}]})
                .to_string(),
        ),
        (
            "admin scope",
            json!({"name": "x", "scopes": [{"type": "ADMIN", "resource": "x"}]}).to_string(),
        ),
        (
            "rps not a number",
            json!({"name": "x", "scopes": [], "limits": {"rps": "many"}}).to_string(),
        ),
    ];
    for (case, b) in cases {
        let r = create(&server.url, &q, Some(&admin), &b).await;
        assert_eq!(r.status, 400, "{case}: {}", r.body);
        r.assert_error(400, &[]);
    }
}
