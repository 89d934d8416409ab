//! Using a key, as a customer's server does: `Authorization: Bearer tbk_...` on `POST
//! /api/token` (then Tinybird directly with the JWT) and on the proxy (`/api/pipes/...`,
//! `/api/sql`), with no cookie and no CSRF header; and everywhere else refused.

use serde_json::{Value, json};

use super::routes::{app_with_audit, get, post};
use crate::helpers::{TestApp, client};

/// A key of acme made by alice (its tenant admin) from her session: `(id, secret)`.
pub async fn alice_key(app: &TestApp, body: Value) -> (String, String) {
    let alice = app.session_for("alice").await;
    let (status, made) = post(app, &alice, "api/keys", body).await;
    assert_eq!(status, 201, "{made}");
    (
        made["key"]["id"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

async fn with_key(app: &TestApp, method: &str, path: &str, key: &str) -> reqwest::Response {
    client()
        .request(method.parse().unwrap(), format!("{}{path}", app.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// A JWT's claims, unverified (the local endpoint verifies it below).
fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn orgs(body: &Value) -> Vec<String> {
    let mut orgs: Vec<String> = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|row| row["org_id"].as_str().unwrap().to_owned())
        .collect();
    orgs.dedup();
    orgs
}

#[tokio::test]
async fn a_key_reads_only_its_scopes_and_its_tenants_rows_on_both_paths() {
    let (app, _audit) = app_with_audit(|_| {}).await;
    let (id, key) = alice_key(
        &app,
        json!({"name": "export", "pipes": ["top_products"], "datasources": ["orders"], "rps": 50}),
    )
    .await;

    // The token route: no cookie, no CSRF header.
    let r = with_key(&app, "POST", "api/token", &key).await;
    assert_eq!(r.status(), 200);
    let minted: Value = r.json().await.unwrap();
    assert_eq!(
        minted["name"],
        format!("key:{id}@acme"),
        "Tinybird counts per key"
    );
    assert_eq!(minted["pipes"], json!(["top_products"]));
    assert_eq!(minted["datasources"], json!(["orders"]));
    assert!(
        minted["expires_in"].as_i64().unwrap() <= 300,
        "keys.token_ttl: {minted}"
    );
    let jwt = minted["token"].as_str().unwrap();
    let claims = payload(jwt);
    assert_eq!(claims["limits"]["rps"], 50, "the key's own rps: {claims}");
    assert_eq!(claims["scopes"][0]["fixed_params"]["org_id"], "acme");

    // The direct path: Tinybird itself (the local endpoint) with the key's JWT.
    let tinybird = minted["host"].as_str().unwrap();
    let direct = |pipe: &str| {
        client()
            .get(format!("{tinybird}/v0/pipes/{pipe}.json?org_id=globex"))
            .bearer_auth(jwt)
            .send()
    };
    let r = direct("top_products").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(orgs(&r.json().await.unwrap()), ["acme"], "fixed params win");
    assert_eq!(
        direct("sales_by_day").await.unwrap().status(),
        403,
        "not in its scopes"
    );

    // The proxy path.
    let r = with_key(
        &app,
        "GET",
        "api/pipes/top_products.json?org_id=globex",
        &key,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(orgs(&r.json().await.unwrap()), ["acme"]);
    let r = with_key(&app, "GET", "api/pipes/sales_by_day.json", &key).await;
    assert_eq!(r.status(), 403, "alice reads it, her key does not");
    let sql = "api/sql?q=SELECT+org_id+FROM+orders+GROUP+BY+org_id";
    let r = with_key(&app, "GET", sql, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        orgs(&r.json().await.unwrap()),
        ["acme"],
        "the row filter holds"
    );
    let r = with_key(&app, "GET", "api/sql?q=SELECT+1+FROM+products", &key).await;
    assert_eq!(r.status(), 403, "products is not in its scopes");

    // Its usage, on the page's list: 4 proxy requests, 2 refused (the token is not counted as
    // an error).
    let alice = app.session_for("alice").await;
    let (_, listed) = get(&app, &alice, "api/keys").await;
    let usage = &listed["keys"][0]["usage"];
    assert_eq!(
        (
            usage["today_requests"].as_u64(),
            usage["today_errors"].as_u64()
        ),
        (Some(5), Some(2)),
        "{listed}"
    );
    assert!(
        listed["keys"][0]["last_used_at"].as_i64().is_some(),
        "{listed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_never_opens_a_cookie_route() {
    let (app, _audit) = app_with_audit(|_| {}).await;
    let (_, key) = alice_key(&app, json!({"name": "k", "pipes": ["top_products"]})).await;
    for (method, path) in [
        ("GET", "api/me"),
        ("GET", "api/admin/usage"),
        ("GET", "api/usage/budget"),
        ("GET", "api/keys"),
    ] {
        let r = with_key(&app, method, path, &key).await;
        assert_eq!(r.status(), 401, "{method} {path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("API keys"), "refused as a key: {body}");
        assert!(!body.contains(&key[22..]), "{body}");
    }
    // Not even next to a valid session cookie: the key is the request's identity.
    let alice = app.session_for("alice").await;
    let r = alice
        .get(format!("{}api/me", app.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.get_with(&alice, "api/me").await.status(), 200);
    // Cookie POSTs: without the CSRF header a key gets nowhere (and with it, 401 above).
    for path in ["api/logout", "api/login", "api/keys"] {
        let r = with_key(&app, "POST", path, &key).await;
        assert_eq!(r.status(), 403, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_revoked_and_rolled_keys_are_401s_that_say_which_and_never_whose() {
    let (app, audit) = app_with_audit(|_| {}).await;
    let (id, key) = alice_key(&app, json!({"name": "k", "pipes": ["top_products"]})).await;
    let alice = app.session_for("alice").await;
    let forged = format!("{}{}", &key[..22], "A".repeat(43));
    let r = with_key(&app, "GET", "api/pipes/top_products.json", &forged).await;
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("unknown") && !body.contains("acme"), "{body}");

    let (_, rolled) = post(
        &app,
        &alice,
        &format!("api/keys/{id}/roll"),
        json!({"grace": "0s"}),
    )
    .await;
    let new_key = rolled["secret"].as_str().unwrap().to_owned();
    let r = with_key(&app, "POST", "api/token", &key).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("replaced by a roll"));
    assert_eq!(
        with_key(&app, "POST", "api/token", &new_key).await.status(),
        200
    );

    post(&app, &alice, &format!("api/keys/{id}/revoke"), json!({})).await;
    for path in ["api/token", "api/pipes/top_products.json"] {
        let method = if path == "api/token" { "POST" } else { "GET" };
        let r = with_key(&app, method, path, &new_key).await;
        assert_eq!(r.status(), 401, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("revoked") && !body.contains("acme"), "{body}");
    }
    let lines = std::fs::read_to_string(&audit).unwrap();
    let refused: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("key.refused"))
        .collect();
    assert_eq!(refused.len(), 4, "{lines}");
    for reason in ["unknown", "rolled", "revoked"] {
        assert!(
            refused
                .iter()
                .any(|l| l.contains(&format!("\"reason\":\"{reason}\"")) && l.contains(&id)),
            "{reason}: {refused:?}"
        );
    }
    for secret in [&key, &new_key, &forged] {
        assert!(!lines.contains(&secret[22..]), "{lines}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_key_over_its_quota_gets_429_with_retry_after() {
    let (app, _audit) = app_with_audit(|_| {}).await;
    let (_, key) = alice_key(
        &app,
        json!({"name": "k", "pipes": ["top_products"], "quota": {"requests": 3, "period": "day"}}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            with_key(&app, "GET", "api/pipes/top_products.json", &key)
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        with_key(&app, "POST", "api/token", &key).await.status(),
        200,
        "tokens count too"
    );
    let r = with_key(&app, "GET", "api/pipes/top_products.json", &key).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    let body = r.text().await.unwrap();
    assert!(body.contains("3 requests per day"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_bff_without_keys_refuses_a_key_as_such() {
    let app = crate::helpers::spawn_app_with(|s| s.keys = None).await;
    let r = with_key(
        &app,
        "POST",
        "api/token",
        "tbk_live_3f9a1c2b4d5e_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("no API keys"));
    app.stop().await;
}
