//! CSRF over every route that changes state or returns a token: each forged variant is a 403
//! JSON that changes nothing, each genuine request is still accepted; a bearer header never
//! falls back to the cookie; an `http://` page never passes for the `https://` site. Session
//! fixation, cookie flags and logged-out cookies are in `session`.
//!
//! tests/api/bff.rs already proves the basic CSRF refusals on `/api/token`, the id cycling
//! at login and the `Secure` flag on https; this module covers every route and every variant.

use reqwest::Method;
use serde_json::json;

use super::{Reply, app, reply, session_cookie_for, set_session_cookie, whoami};
use crate::helpers::{TestApp, client};

/// A state-changing or token-returning route, with a body that would succeed if genuine.
struct Route {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// The genuine request's status.
    ok: u16,
}

const ROUTES: &[Route] = &[
    Route {
        path: "api/login",
        content_type: "application/json",
        // Login CSRF: the attacker logs the victim's browser into the attacker's account.
        body: r#"{"username":"bob","password":"bob-demo"}"#,
        ok: 200,
    },
    Route {
        path: "api/token",
        content_type: "application/json",
        body: "",
        ok: 200,
    },
    Route {
        path: "api/pipes/top_products.json",
        content_type: "application/x-www-form-urlencoded",
        body: "days=7",
        ok: 200,
    },
    Route {
        path: "api/sql",
        content_type: "text/plain",
        body: "SELECT count(*) AS n FROM orders",
        ok: 200,
    },
    Route {
        path: "api/logout",
        content_type: "application/json",
        body: "",
        ok: 204,
    },
];

/// Forged variants: `(what, headers)`; `{app}` is the BFF's own origin, `{port}` its port.
const FORGERIES: &[(&str, &[(&str, &str)])] = &[
    (
        "cross-site form post",
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
    ),
    (
        "cross-site no-cors text/plain fetch",
        &[
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
        ],
    ),
    ("no custom header, same origin", &[("origin", "{app}")]),
    ("no custom header, no origin", &[]),
    (
        "empty custom header",
        &[("x-bff-csrf", ""), ("origin", "{app}")],
    ),
    (
        "foreign origin",
        &[("x-bff-csrf", "1"), ("origin", "https://evil.example")],
    ),
    ("null origin", &[("x-bff-csrf", "1"), ("origin", "null")]),
    (
        "same host, other port",
        &[("x-bff-csrf", "1"), ("origin", "http://127.0.0.1:1")],
    ),
    (
        "userinfo trick",
        &[
            ("x-bff-csrf", "1"),
            ("origin", "http://127.0.0.1:{port}@evil.example"),
        ],
    ),
    (
        "suffix trick",
        &[
            ("x-bff-csrf", "1"),
            ("origin", "http://127.0.0.1.evil.example:{port}"),
        ],
    ),
    (
        "https downgrade",
        &[("x-bff-csrf", "1"), ("origin", "https://127.0.0.1:{port}")],
    ),
    (
        "sec-fetch-site cross-site",
        &[("x-bff-csrf", "1"), ("sec-fetch-site", "cross-site")],
    ),
    (
        "sec-fetch-site same-site",
        &[("x-bff-csrf", "1"), ("sec-fetch-site", "same-site")],
    ),
    (
        "method override",
        &[
            ("x-http-method-override", "GET"),
            ("origin", "https://evil.example"),
        ],
    ),
];

fn origin(app: &TestApp) -> String {
    app.url.trim_end_matches('/').to_owned()
}

async fn send(app: &TestApp, cookie: &str, route: &Route, headers: &[(&str, &str)]) -> Reply {
    let port = app.addr.port().to_string();
    let mut r = client()
        .post(format!("{}{}", app.url, route.path))
        .header("cookie", cookie)
        .header("content-type", route.content_type)
        .body(route.body);
    for (name, value) in headers {
        let value = value
            .replace("{app}", &origin(app))
            .replace("{port}", &port);
        r = r.header(*name, value);
    }
    reply(r.send().await.unwrap()).await
}

#[tokio::test]
async fn every_forged_cross_site_request_is_refused_and_changes_nothing() {
    let app = app().await;
    let mut failures = Vec::new();
    for route in ROUTES {
        let cookie = session_cookie_for(&app, "alice").await;
        for (what, headers) in FORGERIES {
            let r = send(&app, &cookie, route, headers).await;
            if r.status != 403 || !r.json()["error"].is_string() {
                failures.push(format!("{} {what}: {} {}", route.path, r.status, r.body));
            }
            if r.body.contains("\"token\"") || set_session_cookie(&r.headers).is_some() {
                failures.push(format!(
                    "{} {what}: leaked a token or a session",
                    route.path
                ));
            }
        }
        // The forgeries changed nothing: still alice, still logged in.
        let me = whoami(&app, &cookie).await;
        assert_eq!(
            me,
            (200, "alice".into()),
            "after forging {}: {failures:#?}",
            route.path
        );
        // A genuine request from the page passes, so the refusals above were the CSRF check.
        let genuine = [
            ("x-bff-csrf", "1"),
            ("origin", "{app}"),
            ("sec-fetch-site", "same-origin"),
        ];
        let r = send(&app, &cookie, route, &genuine).await;
        if route.path == "api/sql" && r.status == 404 {
            continue; // /api/sql is not built into this version
        }
        assert_eq!(r.status, route.ok, "genuine {}: {}", route.path, r.body);
        match route.path {
            "api/login" => {
                let bobs = set_session_cookie(&r.headers).expect("login sets a cookie");
                assert_ne!(bobs, cookie, "login renews the id");
                assert_eq!(whoami(&app, &bobs).await, (200, "bob".into()));
            }
            "api/logout" => assert_eq!(whoami(&app, &cookie).await.0, 401),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

#[tokio::test]
async fn a_bearer_header_never_falls_back_to_the_cookie_and_gets_no_method_loophole() {
    let app = app().await;
    let cookie = session_cookie_for(&app, "alice").await;
    for auth in [
        "Bearer not-a-jwt",
        "bearer x.y.z",
        "Basic YWxpY2U6YWxpY2UtZGVtbw==",
        "Bearer ",
    ] {
        for path in [
            "api/token",
            "api/pipes/top_products.json",
            "api/sql?q=SELECT+1",
        ] {
            let r = reply(
                client()
                    .post(format!("{}{path}", app.url))
                    .header("cookie", &cookie)
                    .header("authorization", auth)
                    .header("origin", "https://evil.example")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                [401, 404].contains(&r.status) && !r.body.contains("\"token\""),
                "{auth} on {path}: {} {}",
                r.status,
                r.body
            );
        }
    }
    // Token-returning routes do not answer other methods with a token.
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let r = reply(
            client()
                .request(method.clone(), format!("{}api/token", app.url))
                .header("cookie", &cookie)
                .header("x-bff-csrf", "1")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            r.status == 405 && !r.body.contains("\"token\""),
            "{method}: {}",
            r.status
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn behind_https_an_http_page_of_the_same_host_is_cross_origin() {
    // A network attacker can serve `http://app.example.com` when the site lacks HSTS; its
    // Origin must not pass for `https://app.example.com` even though the host is the same.
    let app = crate::helpers::spawn_app_with(|s| {
        s.token_rps = None;
        s.public_url = "https://app.example.com".parse().unwrap();
    })
    .await;
    let login = client()
        .post(format!("http://{}/api/login", app.addr))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    let cookie = set_session_cookie(login.headers()).unwrap();
    for (origin, host, want) in [
        ("http://app.example.com", "app.example.com", 403),
        ("http://app.example.com:443", "app.example.com", 403),
        ("https://app.example.com:8443", "app.example.com", 403),
        ("https://app.example.com", "app.example.com", 200),
        ("https://app.example.com", "elsewhere.example", 200),
    ] {
        let r = client()
            .post(format!("http://{}/api/token", app.addr))
            .header("cookie", &cookie)
            .header("host", host)
            .header("x-bff-csrf", "1")
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "Origin {origin} at Host {host}");
    }
    app.stop().await;
}
