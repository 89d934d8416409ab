//! No credential the BFF sends to Tinybird ever comes back out of it, even though Tinybird's
//! server echoes a refused token whole in its 403 (`invalid authentication token. Invalid
//! token b'<token>': Signature has expired`, docs/tinybird.md, "Error bodies").
//!
//! Against a Tinybird stand-in that echoes whatever bearer it receives, in every shape the
//! proxy relays (a JSON 403, CSV and NDJSON bodies, a header value, a body dribbled out a few
//! bytes per chunk so the token straddles chunk boundaries), in both credential modes, on
//! pipes and `/api/sql`; then against the real local endpoint, which now answers bad tokens
//! exactly as Tinybird does; then the real binary's logs, audit lines and metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use tinybird_bff::config::TinybirdHost;
use tinybird_bff::proxy::Credentials;
use tinybird_bff::tinybird::AdminToken;
use tokio::net::TcpListener;

use crate::attacks::binary::{Bin, config};
use crate::helpers::{self, TestApp, spawn_app_with, spawn_local};

const MARKER: &str = "[redacted]";

/// A Tinybird that echoes the bearer it was sent, and remembers every one.
struct Echo {
    url: String,
    tokens: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().clone()
    }
}

/// Tinybird's 403 for a bad token, verbatim in shape.
fn tinybird_403(token: &str) -> String {
    format!(
        r#"{{"error": "invalid authentication token. Invalid token b'{token}': Signature has expired", "documentation": "https://docs.tinybird.co/api-reference/overview#authentication"}}"#
    )
}

/// `text` as a body of 5-byte chunks with a pause between them, so they cross the socket as
/// separate chunks and the token straddles their boundaries.
fn dribbled(text: String) -> Body {
    let chunks: Vec<Bytes> = text
        .into_bytes()
        .chunks(5)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::unfold(chunks.into_iter(), |mut rest| async move {
        let next = rest.next()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
        Some((Ok::<_, std::io::Error>(next), rest))
    });
    Body::from_stream(stream)
}

async fn echo() -> Echo {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&tokens);
    let router = Router::new().fallback(move |req: Request| {
        let seen = Arc::clone(&seen);
        async move {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("")
                .to_owned();
            seen.lock().unwrap().push(token.clone());
            let path = req.uri().path().to_owned();
            let (status, content_type, body) = if path.ends_with(".csv") {
                (200, "text/csv", format!("\"token\"\n\"{token}\"\n"))
            } else if path.ends_with(".ndjson") {
                (
                    200,
                    "application/x-ndjson",
                    format!("{{\"token\":\"{token}\"}}\n"),
                )
            } else if path.ends_with(".prometheus") {
                (500, "text/plain", format!("internal error for b'{token}'"))
            } else {
                (403, "application/json", tinybird_403(&token))
            };
            let mut r = Response::new(dribbled(body));
            *r.status_mut() = status.try_into().unwrap();
            r.headers_mut()
                .insert("content-type", content_type.parse().unwrap());
            r.headers_mut()
                .insert("x-ratelimit-reset", format!("1 {token}").parse().unwrap());
            r
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Echo { url, tokens }
}

/// A BFF on `tinybird` (no retries: one upstream call per request), logged in as alice.
async fn bff(tinybird: &str, credentials: Credentials, key: AdminToken) -> TestApp {
    let url = reqwest::Url::parse(tinybird).unwrap();
    let app = spawn_app_with(move |s| {
        s.tinybird.first_mut().host = TinybirdHost::Remote(url);
        s.tinybird.first_mut().signing_key = key;
        s.tinybird.first_mut().workspace_id = helpers::WORKSPACE.into();
        s.proxy.retry.max_attempts = 1;
        s.proxy.credentials = credentials;
    })
    .await;
    app.login_as("alice").await;
    app
}

/// Status, headers and body of a proxied call.
async fn call(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app.get(path).await;
    let status = r.status().as_u16();
    let headers = format!("{:?}", r.headers());
    (status, headers, r.text().await.unwrap())
}

/// Neither the token nor its signature (its last segment, unique to it) is in `text`.
fn assert_clean(text: &str, token: &str, place: &str) {
    assert!(!token.is_empty());
    assert!(!text.contains(token), "the token is in the {place}: {text}");
    let tail = token.rsplit('.').next().unwrap();
    assert!(
        !text.contains(tail),
        "the token's signature is in the {place}: {text}"
    );
}

#[tokio::test]
async fn echoed_credentials_never_reach_the_browser_in_either_mode() {
    let up = echo().await;
    let static_token = format!("p.static-read-token-{}", uuid::Uuid::new_v4().simple());
    let modes = [
        ("jwt", Credentials::Jwt),
        ("static", Credentials::Static(static_token.clone().into())),
    ];
    for (mode, credentials) in modes {
        let before = up.tokens().len();
        let app = bff(&up.url, credentials, helpers::admin_key()).await;
        for (path, status, kept) in [
            ("api/pipes/top_products.json", 403, "Signature has expired"),
            ("api/pipes/top_products.csv", 200, "\"token\""),
            ("api/pipes/top_products.ndjson", 200, "{\"token\":"),
            (
                "api/pipes/top_products.prometheus",
                500,
                "internal error for b'",
            ),
        ] {
            let (got, headers, body) = call(&app, path).await;
            let sent = up.tokens().last().cloned().unwrap();
            assert_eq!(got, status, "{mode} {path}: {body}");
            assert_clean(&body, &sent, &format!("{mode} {path} body"));
            assert_clean(&headers, &sent, &format!("{mode} {path} headers"));
            assert!(body.contains(MARKER), "{mode} {path}: {body}");
            assert!(
                body.contains(kept),
                "the rest of Tinybird's message stays: {body}"
            );
            assert!(headers.contains("x-ratelimit-reset"), "{headers}");
        }
        if mode == "static" {
            assert!(up.tokens()[before..].iter().all(|t| *t == static_token));
        }
        let (got, _, body) = call(&app, "api/sql?q=SELECT+1").await;
        if mode == "jwt" {
            let sent = up.tokens().last().cloned().unwrap();
            assert_eq!(got, 403, "{body}");
            assert_clean(&body, &sent, "/api/sql body");
            assert!(
                body.contains("Invalid token b'[redacted]': Signature has expired"),
                "{body}"
            );
        } else {
            assert_eq!(got, 501, "a static token never goes to /v0/sql: {body}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_real_local_endpoint_echoes_bad_tokens_and_the_proxy_redacts_them() {
    let local = spawn_local().await;
    // The BFF signs with another workspace's key: the local endpoint refuses the proxy's JWT
    // with Tinybird's echo.
    let stranger = AdminToken::generate(helpers::WORKSPACE);
    let app = bff(&local.url, Credentials::Jwt, stranger.clone()).await;
    for path in [
        "api/pipes/top_products.json",
        "api/sql?q=SELECT+count()+FROM+orders",
    ] {
        let (status, _, body) = call(&app, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("invalid authentication token. Invalid token b'[redacted]': Signature verification failed"),
            "{path}: {body}"
        );
        assert!(!body.contains("eyJ"), "no JWT part in {body}");
    }
    app.stop().await;
    // A static token this workspace does not know.
    let unknown = format!("p.unknown-{}", uuid::Uuid::new_v4().simple());
    let app = bff(
        &local.url,
        Credentials::Static(unknown.clone().into()),
        helpers::admin_key(),
    )
    .await;
    let (status, _, body) = call(&app, "api/pipes/top_products.json").await;
    assert_eq!(status, 403, "{body}");
    assert_clean(&body, &unknown, "static 403 body");
    assert!(body.contains("Invalid token b'[redacted]'"), "{body}");
    // The same call straight to the local endpoint shows what was redacted: the echo.
    let direct = helpers::client()
        .get(format!("{}/v0/pipes/top_products.json", local.url))
        .bearer_auth(&unknown)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        direct.contains(&format!("Invalid token b'{unknown}'")),
        "{direct}"
    );
    app.stop().await;
}

#[tokio::test]
async fn logs_audit_lines_and_metrics_never_hold_an_echoed_credential() {
    let up = echo().await;
    let static_token = format!("p.static-read-token-{}", uuid::Uuid::new_v4().simple());
    for mode in ["jwt", "static"] {
        let host = format!("host = \"{}\"", up.url);
        let mut edits = vec![("host = \"local\"", host.as_str())];
        if mode == "static" {
            edits.push(("# [proxy]\n", "[proxy]\n"));
            edits.push(("# credentials = \"jwt\"", "credentials = \"static\""));
            edits.push((
                "# static_token_env = \"TINYBIRD_READ_TOKEN\"",
                "static_token_env = \"TINYBIRD_READ_TOKEN\"",
            ));
        }
        let key = helpers::admin_key_text();
        let env = [
            ("TINYBIRD_SIGNING_KEY", key.as_str()),
            ("TINYBIRD_READ_TOKEN", static_token.as_str()),
        ];
        let mut bin = Bin::serve(&config(&edits), &env).await;
        let c = helpers::cookie_client();
        let login = c
            .post(format!("{}api/login", bin.url))
            .header("x-bff-csrf", "1")
            .json(&serde_json::json!({"username": "alice", "password": "alice-demo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        for path in [
            "api/pipes/top_products.json",
            "api/pipes/top_products.prometheus",
            "api/sql?q=SELECT+1",
        ] {
            let r = c.get(format!("{}{path}", bin.url)).send().await.unwrap();
            let body = r.text().await.unwrap();
            assert!(
                !body.contains(&static_token) && !body.contains("eyJ"),
                "{body}"
            );
        }
        let metrics = bin.metrics().await;
        bin.terminate();
        assert_eq!(bin.wait(Duration::from_secs(20)).await, Some(0));
        let output = bin.output();
        assert!(output.contains("TRACE"), "trace logs captured");
        let sent = up.tokens();
        assert!(!sent.is_empty());
        for token in sent.iter().chain([&key, &static_token]) {
            assert_clean(&output, token, &format!("{mode} process output"));
            assert_clean(&metrics, token, &format!("{mode} metrics"));
        }
    }
}
