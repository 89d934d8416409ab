//! Apps on other origins (`[cors]`, docs/cross-origin.md), on real sockets: preflights for the
//! allowed origins and none for the others, the session cookie's `SameSite` by where the app
//! is, and the CSRF defence with an allowed origin (the custom header is still required). The
//! browser side (Chromium on a second origin) is `tests/e2e/cross-origin.test.mjs`.

use reqwest::Method;
use serde_json::json;
use tinybird_bff::config::cors::{CorsConfig, validate};

use crate::helpers::{client, cookie_client, spawn_app_with};

const APP: &str = "http://localhost:5173";

/// `[cors] allowed_origins = [APP]` against the app's own public URL.
fn allow_app(s: &mut tinybird_bff::config::Settings) {
    let raw = CorsConfig {
        allowed_origins: vec![APP.into()],
        max_age: Some("5m".into()),
    };
    s.cors = validate(&raw, Some(&s.public_url)).unwrap();
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn preflights_answer_the_allowed_origins_with_credentials_and_nobody_else() {
    let app = spawn_app_with(allow_app).await;
    let preflight = |origin: &'static str| {
        client()
            .request(Method::OPTIONS, format!("{}api/login", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-bff-csrf")
            .send()
    };
    let ok = preflight(APP).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        header(&ok, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        header(&ok, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let headers = header(&ok, "access-control-allow-headers").unwrap();
    assert!(
        headers.contains("x-bff-csrf") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(
        header(&ok, "access-control-max-age").as_deref(),
        Some("300")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    // Real answers carry the headers too, and expose the rate-limit ones.
    let me = client()
        .get(format!("{}api/me", app.url))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    assert_eq!(
        header(&me, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = header(&me, "access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("retry-after") && exposed.contains("x-ratelimit-remaining"),
        "{exposed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_cors_no_origin_gets_a_preflight_and_the_cookie_stays_lax() {
    let app = spawn_app_with(|_| {}).await;
    let r = client()
        .request(Method::OPTIONS, format!("{}api/login", app.url))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    let login = app.login("alice", "alice-demo").await;
    let cookie = header(&login, "set-cookie").unwrap();
    assert!(
        cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_allowed_app_on_another_host_logs_in_with_a_samesite_none_secure_cookie() {
    let app = spawn_app_with(allow_app).await;
    let browser = cookie_client();
    // What Chromium sends for the app's fetch with credentials: 'include'.
    let login = browser
        .post(format!("{}api/login", app.url))
        .header("origin", APP)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "cors")
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = header(&login, "set-cookie").unwrap();
    assert!(
        cookie.contains("SameSite=None") && cookie.contains("Secure"),
        "{cookie}"
    );
    let token = |origin: &'static str, csrf: bool| {
        let mut r = browser
            .post(format!("{}api/token", app.url))
            .header("origin", origin)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "cors");
        if csrf {
            r = r.header("x-bff-csrf", "1");
        }
        r.send()
    };
    assert_eq!(token(APP, true).await.unwrap().status(), 200);
    assert_eq!(
        token(APP, false).await.unwrap().status(),
        403,
        "the custom header is still required"
    );
    let evil = token("https://evil.example", true).await.unwrap();
    assert_eq!(evil.status(), 403);
    let body = evil.text().await.unwrap();
    assert!(body.contains("allowed_origins"), "{body}");
    // Another site's <img> riding on the SameSite=None cookie does not spend alice's limits.
    let img = |origin: Option<&'static str>, mode: &'static str| {
        let mut r = browser
            .get(format!("{}api/pipes/top_products.json", app.url))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", mode);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(img(None, "no-cors").await.unwrap().status(), 403);
    assert_eq!(img(Some(APP), "cors").await.unwrap().status(), 200);
    assert_eq!(img(None, "navigate").await.unwrap().status(), 200);
    app.stop().await;
}
