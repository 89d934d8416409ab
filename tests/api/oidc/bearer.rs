//! IdP access tokens as `Authorization: Bearer`: exchanged for Tinybird tokens without cookie
//! or CSRF header, forgeries refused, keys rotated, and the JWKS never hammered.

use std::time::Duration;

use serde_json::{Value, json};
use tinybird_bff::auth::jwks::JwksStatus;

use super::harness::{RESOURCE, spawn_oidc_app};
use super::{dashboards, payload, scopes};

#[tokio::test]
async fn a_provider_access_token_exchanges_for_a_tinybird_token_without_cookie_or_csrf() {
    let app = spawn_oidc_app().await;
    let access = app.idp.spa_access_token("bob").await;
    assert_eq!(payload(&access)["aud"], RESOURCE);
    let (status, body) = app.bearer_token(&access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        scopes(body["token"].as_str().unwrap()),
        dashboards("globex")
    );
    // The minted token works at Tinybird and reads only bob's tenant.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v0/pipes/top_products.json?org_id=acme",
            app.tinybird.url
        ))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let rows: Value = r.json().await.unwrap();
    assert!(
        rows["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["org_id"] == "globex"),
        "{rows}"
    );
    // The same bearer reads through the proxy too, filtered to bob's tenant, GET and POST.
    let proxied: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/pipes/top_products.json?org_id=acme",
            app.url
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = proxied["data"].as_array().unwrap();
    assert!(
        !data.is_empty() && data.iter().all(|r| r["org_id"] == "globex"),
        "{proxied}"
    );
    let posted = reqwest::Client::new()
        .post(format!("{}/api/pipes/top_products.json", app.url))
        .bearer_auth(&access)
        .form(&[("org_id", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200, "a bearer POST needs no CSRF header");
    let forged = reqwest::Client::new()
        .get(format!("{}/api/pipes/top_products.json", app.url))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // Without the bearer, the cookie path still demands the CSRF header.
    let r = reqwest::Client::new()
        .post(format!("{}/api/token", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A non-Bearer Authorization header never falls back to the cookie.
    let r = reqwest::Client::new()
        .post(format!("{}/api/token", app.url))
        .header("authorization", "Basic Ym9iOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn forged_and_mismatched_bearer_tokens_are_refused() {
    let app = spawn_oidc_app().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut c = json!({
            "iss": app.idp.issuer, "aud": RESOURCE, "sub": "alice", "exp": now + 300, "iat": now,
            "https://tinybird-bff.test/tenant": "acme", "roles": ["viewer"],
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = app
            .idp
            .sign(claims(json!({})), alg, "current", json!({}))
            .await;
        let (status, body) = app.bearer_token(&token).await;
        assert_eq!(status, 200, "{alg} signed by the provider: {body}");
    }
    let good = app
        .idp
        .sign(claims(json!({})), "RS256", "current", json!({}))
        .await;
    let tampered = {
        use base64::Engine;
        let parts: Vec<&str> = good.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims(json!({"https://tinybird-bff.test/tenant": "globex"})).to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let rsa_kid = payload_header(&good)["kid"].as_str().unwrap().to_owned();
    let cases = vec![
        (
            app.idp
                .sign(
                    claims(json!({"aud": "https://other.api"})),
                    "RS256",
                    "current",
                    json!({}),
                )
                .await,
            "audience",
        ),
        (
            app.idp
                .sign(
                    claims(json!({"iss": "https://evil.example"})),
                    "RS256",
                    "current",
                    json!({}),
                )
                .await,
            "issuer",
        ),
        (
            app.idp
                .sign(
                    claims(json!({"exp": now - 60})),
                    "RS256",
                    "current",
                    json!({}),
                )
                .await,
            "expired",
        ),
        (
            app.idp
                .sign(
                    claims(json!({"nbf": now + 120})),
                    "RS256",
                    "current",
                    json!({}),
                )
                .await,
            "not valid yet",
        ),
        (
            app.idp
                .sign(claims(json!({})), "RS256", "none", json!({}))
                .await,
            "`none`",
        ),
        (
            app.idp
                .sign(claims(json!({})), "RS256", "hs256-public", json!({}))
                .await,
            "`HS256`",
        ),
        (
            app.idp
                .sign(
                    claims(json!({})),
                    "RS256",
                    "unknown",
                    json!({"kid": rsa_kid}),
                )
                .await,
            "signature",
        ),
        (
            app.idp
                .sign(claims(json!({})), "ES256", "unknown", json!({}))
                .await,
            "no signing key",
        ),
        (tampered, "signature"),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ];
    for (token, want) in cases {
        let (status, body) = app.bearer_token(&token).await;
        assert_eq!(status, 401, "{want}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
    }
}

fn payload_header(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn keys_rotate_without_restart_and_a_kid_flood_cannot_hammer_the_provider() {
    let app = spawn_oidc_app().await;
    let before = app.idp.spa_access_token("alice").await;
    assert_eq!(app.bearer_token(&before).await.0, 200);
    let fetched = app.idp.jwks_fetches().await;
    assert_eq!(fetched, 1, "keys are cached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = chrono::Utc::now().timestamp();
    let bogus = app
        .idp
        .sign(
            json!({"iss": app.idp.issuer, "aud": RESOURCE, "sub": "x", "exp": now + 60}),
            "ES256",
            "unknown",
            json!({}),
        )
        .await;
    let flood = (0..40).map(|_| app.bearer_token(&bogus));
    for (status, _) in futures_util::future::join_all(flood).await {
        assert_eq!(status, 401);
    }
    let after_flood = app.idp.jwks_fetches().await;
    assert!(
        after_flood <= fetched + 1,
        "{after_flood} fetches after the flood: at most one per cool-down"
    );

    app.idp.rotate_keys().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = app.idp.spa_access_token("alice").await;
    assert_ne!(
        payload_header(&rotated)["kid"],
        payload_header(&before)["kid"]
    );
    let (status, body) = app.bearer_token(&rotated).await;
    assert_eq!(status, 200, "the new kid is fetched on first sight: {body}");
    assert_eq!(app.state.oidc.health()[0].jwks.status, JwksStatus::Ok);

    // The provider's JWKS goes down: known keys keep working, health shows it.
    app.idp.jwks_failing(true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = app
        .bearer_token(
            &app.idp
                .sign(
                    json!({"iss": app.idp.issuer, "aud": RESOURCE, "sub": "x", "exp": now + 60}),
                    "EdDSA",
                    "unknown",
                    json!({}),
                )
                .await,
        )
        .await;
    assert_eq!(status, 401);
    let health = &app.state.oidc.health()[0];
    assert_eq!(health.jwks.status, JwksStatus::Stale, "{health:?}");
    assert_eq!(
        app.bearer_token(&rotated).await.0,
        200,
        "last good keys still verify"
    );
}
