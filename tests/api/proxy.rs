//! Proxy mode over real sockets: `/api/pipes/{pipe}.{format}` against the local endpoint
//! (same rows as the direct path, row filters that cannot be overridden, access rules), and
//! against fault-injecting upstreams written here (retries, deadlines, broken and endless
//! bodies, the response cache, and what credentials reach Tinybird).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tinybird_bff::config::{Settings, TinybirdHost};
use tinybird_bff::proxy::Credentials;
use tinybird_bff::tinybird::claims::verify;
use tinybird_bff::tinybird::upstream::RetryPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{self, TestApp, client, spawn_app, spawn_app_with};

// ---- helpers -------------------------------------------------------------------------------

/// What a fault upstream received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// A scripted upstream: `behave(n)` answers its n-th request (from 1).
pub(crate) struct Fault {
    pub(crate) url: String,
    hits: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fault {
    pub(crate) fn hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
    pub(crate) fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream was called")
    }
}

pub(crate) async fn fault<F, Fut>(behave: F) -> Fault
where
    F: Fn(u32) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let hits = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (Arc::clone(&hits), Arc::clone(&seen));
    let router = Router::new().fallback(move |req: Request| {
        let (h, s, behave) = (Arc::clone(&h), Arc::clone(&s), behave.clone());
        async move {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            s.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            behave(n).await
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Fault { url, hits, seen }
}

pub(crate) fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status.try_into().unwrap();
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        r.headers_mut().insert(name, v.parse().unwrap());
    }
    r
}

const ROWS: &str = r#"{"meta":[],"data":[{"n":1}],"rows":1}"#;

fn ok_json() -> Response {
    reply(200, &[("content-type", "application/json")], ROWS)
}

/// An upstream that answers [`ok_json`] after `delay`.
async fn slow_upstream(delay: Duration) -> Fault {
    fault(move |_| async move {
        tokio::time::sleep(delay).await;
        ok_json()
    })
    .await
}

/// Quick retries so fault tests stay fast: 3 attempts, 10-50 ms backoff, 3 s deadline.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        deadline: Duration::from_secs(3),
    }
}

/// A BFF whose Tinybird is `url`, signing with the tests' key, logged in as alice.
async fn app_on(url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = reqwest::Url::parse(url).unwrap();
    let app = spawn_app_with(move |s| {
        s.tinybird.first_mut().host = TinybirdHost::Remote(url);
        s.tinybird.first_mut().signing_key = helpers::admin_key();
        s.tinybird.first_mut().workspace_id = helpers::WORKSPACE.into();
        s.proxy.retry = quick();
        tweak(s);
    })
    .await;
    app.login_as("alice").await;
    app
}

async fn json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(app: &TestApp, c: &reqwest::Client, path: &str) -> reqwest::Response {
    c.get(format!("{}{path}", app.url)).send().await.unwrap()
}

fn bearer(seen: &Seen) -> String {
    let value = seen
        .headers
        .get("authorization")
        .expect("upstream got a credential");
    value
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

// ---- against the local endpoint ------------------------------------------------------------

#[tokio::test]
async fn proxy_and_direct_calls_return_the_same_rows_for_every_pipe() {
    let app = spawn_app().await;
    for (user, pipes) in [
        (
            "alice",
            &["top_products", "sales_by_day", "recent_orders"][..],
        ),
        ("admin", &["orgs_overview"][..]),
    ] {
        let session = app.session_for(user).await;
        let token = app.token_for(&session).await;
        for pipe in pipes {
            let direct = client()
                .get(format!(
                    "{}/v0/pipes/{pipe}.json?days=30&limit=5",
                    app.tinybird
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let (ds, direct) = json(direct).await;
            let path = format!("api/pipes/{pipe}.json?days=30&limit=5");
            let (ps, proxied) = json(get(&app, &session, &path).await).await;
            assert_eq!((ds, ps), (200, 200), "{user} {pipe}: {direct} / {proxied}");
            assert!(!direct["data"].as_array().unwrap().is_empty(), "{pipe}");
            assert_eq!(direct["data"], proxied["data"], "{user} {pipe}");
            assert_eq!(direct["meta"], proxied["meta"], "{user} {pipe}");
        }
    }
    // CSV passes through byte for byte, with Tinybird's content type.
    let alice = app.session_for("alice").await;
    let token = app.token_for(&alice).await;
    let direct = client()
        .get(format!("{}/v0/pipes/top_products.csv", app.tinybird))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let proxied = get(&app, &alice, "api/pipes/top_products.csv").await;
    assert_eq!(
        proxied.headers()["content-type"],
        direct.headers()["content-type"]
    );
    assert_eq!(proxied.text().await.unwrap(), direct.text().await.unwrap());
    app.stop().await;
}

#[tokio::test]
async fn overriding_the_row_filter_in_any_way_still_returns_only_the_callers_rows() {
    let app = spawn_app().await;
    app.login_as("alice").await;
    let only_acme = |body: &Value| {
        let data = body["data"].as_array().unwrap();
        !data.is_empty() && data.iter().all(|r| r["org_id"] == "acme")
    };
    for query in [
        "org_id=globex",
        "org_id=globex&org_id=initech",
        "org_id=globex&token=p.someone-elses-token",
        "org_id=%27%20OR%20%271%27%3D%271",
    ] {
        let (status, body) = json(
            app.get(&format!("api/pipes/recent_orders.json?{query}"))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert!(only_acme(&body), "{query} leaked: {body}");
    }
    let form = app
        .client
        .post(format!(
            "{}api/pipes/recent_orders.json?org_id=initech",
            app.url
        ))
        .header("x-bff-csrf", "1")
        .form(&[("org_id", "globex"), ("limit", "3"), ("token", "p.stolen")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(form).await;
    assert_eq!(status, 200, "{body}");
    assert!(only_acme(&body), "form override leaked: {body}");
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        3,
        "other form params still apply"
    );
    app.stop().await;
}

#[tokio::test]
async fn access_rules_are_checked_before_any_upstream_call() {
    let app = spawn_app().await;
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(status, 401, "not logged in: {body}");
    assert!(body["error"].is_string());
    app.login_as("alice").await;
    let cases = [
        ("api/pipes/orgs_overview.json", 403, "no grant"),
        ("api/pipes/no_such_pipe.json", 404, "unknown pipe"),
        ("api/pipes/top_products.xml", 400, "bad format"),
        ("api/pipes/..%2Fv0%2Ftokens.json", 404, "encoded slashes"),
        (
            "api/pipes/top_products.json?q=select+*+from+_",
            403,
            "q refused",
        ),
    ];
    for (path, want, why) in cases {
        let (status, body) = json(app.get(path).await).await;
        assert_eq!(status, want, "{why}: {body}");
        assert!(body["error"].is_string(), "{why}: {body}");
    }
    let huge = format!(
        "api/pipes/top_products.json?days=7&pad={}",
        "x".repeat(30_000)
    );
    let status = app.get(&huge).await.status();
    assert!(status.is_client_error(), "huge query string: {status}");
    let no_csrf = app
        .client
        .post(format!("{}api/pipes/top_products.json", app.url))
        .form(&[("days", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403, "POST without the CSRF header");
    app.stop().await;
}

// ---- credentials and headers ---------------------------------------------------------------

#[tokio::test]
async fn upstream_gets_the_users_jwt_and_none_of_the_clients_credentials() {
    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |_| {}).await;
    let r = app
        .client
        .get(format!(
            "{}api/pipes/top_products.json?org_id=globex&token=p.x&days=7",
            app.url
        ))
        .header("x-custom", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    // A client `Authorization` header authenticates on its own (an IdP token); a bogus one is
    // a 401 before any upstream call, never forwarded and never a fall-back to the cookie.
    let calls = up.hits();
    let bogus = app
        .client
        .get(format!("{}api/pipes/top_products.json", app.url))
        .header("authorization", "Bearer client-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);
    assert_eq!(up.hits(), calls, "no upstream call for a refused bearer");
    assert_eq!(seen.method, "GET");
    assert!(
        seen.headers.get("cookie").is_none(),
        "cookie forwarded: {:?}",
        seen.headers
    );
    assert!(seen.headers.get("x-custom").is_none());
    assert_eq!(seen.uri, "/v0/pipes/top_products.json?days=7&org_id=acme");
    let jwt = bearer(&seen);
    assert_ne!(jwt, "client-secret");
    let claims = verify(&jwt, helpers::admin_key().bytes(), helpers::now())
        .expect("a JWT signed with the workspace key");
    assert_eq!(claims.name, "alice@acme");
    assert_eq!(claims.workspace_id, helpers::WORKSPACE);
    let scope = claims
        .scopes
        .iter()
        .find(|s| s.resource == "top_products")
        .unwrap();
    assert_eq!(scope.fixed_params.as_ref().unwrap()["org_id"], "acme");
    // A form POST goes upstream as a form POST, the JWT reused from the cache.
    let r = app
        .client
        .post(format!("{}api/pipes/top_products.json", app.url))
        .header("x-bff-csrf", "1")
        .form(&[("org_id", "globex"), ("days", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.last();
    assert_eq!(
        (seen.method.as_str(), seen.body.as_str()),
        ("POST", "days=7&org_id=acme")
    );
    assert_eq!(bearer(&seen), jwt, "the user's JWT is cached");
    app.stop().await;
}

#[tokio::test]
async fn names_tinybird_reads_itself_never_reach_it_in_either_credentials_mode() {
    let up = fault(|_| async { ok_json() }).await;
    for mode in ["jwt", "static"] {
        let app = app_on(&up.url, |s| {
            if mode == "static" {
                s.proxy.credentials = Credentials::Static("p.static-read-token".to_owned().into());
            }
        })
        .await;
        let calls = up.hits();
        for name in [
            "template_parameters",
            "debug",
            "explain",
            "pipeline",
            "query_id",
            "tag",
            "__tb__anything",
            "output_format_json_quote_64bit_integers",
        ] {
            let (status, body) = json(
                app.get(&format!("api/pipes/top_products.json?days=7&{name}=1"))
                    .await,
            )
            .await;
            assert_eq!(status, 400, "{mode} {name}: {body}");
            assert!(body["error"].as_str().unwrap().contains(name), "{body}");
            // The same name in a form POST.
            let r = app
                .client
                .post(format!("{}api/pipes/top_products.json", app.url))
                .header("x-bff-csrf", "1")
                .form(&[("days", "7"), (name, "1")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{mode} form {name}");
        }
        assert_eq!(up.hits(), calls, "{mode}: nothing reached Tinybird");
        // The pipe's own parameters, and names clients add (`from`), still pass.
        let r = app
            .get("api/pipes/top_products.json?days=7&from=ts-sdk")
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            up.last().uri,
            "/v0/pipes/top_products.json?days=7&from=ts-sdk&org_id=acme"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn static_credentials_send_the_static_token() {
    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |s| {
        s.proxy.credentials = Credentials::Static("p.static-read-token".to_owned().into());
    })
    .await;
    assert_eq!(
        app.get("api/pipes/top_products.json?org_id=globex")
            .await
            .status(),
        200
    );
    let seen = up.last();
    assert_eq!(bearer(&seen), "p.static-read-token");
    assert!(
        seen.uri.ends_with("org_id=acme"),
        "the BFF still applies the row filter: {}",
        seen.uri
    );
    app.stop().await;
}

// ---- retries, deadlines and broken upstreams -----------------------------------------------

#[tokio::test]
async fn a_429_is_retried_then_passed_through_with_retry_after() {
    let up = fault(|_| async {
        reply(
            429,
            &[("retry-after", "1"), ("x-ratelimit-limit", "5")],
            r#"{"error":"slow down"}"#,
        )
    })
    .await;
    let app = app_on(&up.url, |_| {}).await;
    let started = Instant::now();
    let r = app.get("api/pipes/top_products.json").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["x-ratelimit-limit"], "5");
    assert_eq!(up.hits(), 3, "max_attempts");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited Retry-After between attempts"
    );
    app.stop().await;

    let bare = fault(|_| async { reply(429, &[], r#"{"error":"slow down"}"#) }).await;
    let app = app_on(&bare.url, |_| {}).await;
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("slow down")));
    assert_eq!(bare.hits(), 3);
    app.stop().await;
}

#[tokio::test]
async fn a_500_then_200_succeeds_on_the_second_attempt() {
    let up = fault(|n| async move {
        if n == 1 {
            reply(500, &[], "oops")
        } else {
            ok_json()
        }
    })
    .await;
    let app = app_on(&up.url, |_| {}).await;
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!((status, &body["rows"]), (200, &Value::from(1)));
    assert_eq!(up.hits(), 2);
    app.stop().await;
}

#[tokio::test]
async fn final_statuses_are_passed_through_without_retrying() {
    for code in [400u16, 403, 404, 408] {
        let up = fault(move |_| async move {
            reply(
                code,
                &[("content-type", "application/json")],
                r#"{"error":"no"}"#,
            )
        })
        .await;
        let app = app_on(&up.url, |_| {}).await;
        let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
        assert_eq!((status, body["error"].as_str()), (code, Some("no")));
        assert_eq!(up.hits(), 1, "{code} retried");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_503_forever_and_a_slow_upstream_are_bounded() {
    let up = fault(|_| async { reply(503, &[], "down") }).await;
    let app = app_on(&up.url, |s| s.proxy.retry.max_attempts = 4).await;
    let started = Instant::now();
    assert_eq!(app.get("api/pipes/top_products.json").await.status(), 503);
    assert_eq!(up.hits(), 4);
    assert!(started.elapsed() < Duration::from_secs(2));
    app.stop().await;

    let slow = slow_upstream(Duration::from_secs(30)).await;
    let app = app_on(&slow.url, |s| {
        s.proxy.retry.deadline = Duration::from_millis(500)
    })
    .await;
    let started = Instant::now();
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("deadline"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

#[tokio::test]
async fn the_read_timeout_bounds_a_silent_upstream_before_and_during_the_body() {
    // No response headers within the read timeout: a 504 at once, not retried.
    let silent = slow_upstream(Duration::from_secs(30)).await;
    let app = app_on(&silent.url, |s| {
        s.proxy.read_timeout = Duration::from_millis(300)
    })
    .await;
    let started = Instant::now();
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("read timeout"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(silent.hits(), 1, "a timeout is not retried");
    app.stop().await;

    // Headers and a first chunk, then silence: the body is cut after the read timeout.
    let url = breaking_upstream(Duration::from_secs(30)).await;
    let app = app_on(&url, |s| s.proxy.read_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let r = app.get("api/pipes/top_products.json").await;
    assert_eq!(r.status(), 200, "the headers were good");
    assert!(
        r.bytes().await.is_err(),
        "a stalled body must break the client's response, not hang or look complete"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

#[tokio::test]
async fn calls_beyond_max_connections_queue_instead_of_opening_more() {
    let (now, peak) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let up = {
        let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
        fault(move |_| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            async move {
                peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                ok_json()
            }
        })
        .await
    };
    let app = app_on(&up.url, |s| s.proxy.max_connections = 2).await;
    let calls = (0..6).map(|_| app.get("api/pipes/top_products.json"));
    let statuses: Vec<u16> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses, [200; 6], "queued calls still succeed");
    assert_eq!(up.hits(), 6);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "at most max_connections calls reach Tinybird at once"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bounded_502() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app_on(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    let started = Instant::now();
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("3 attempt"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    app.stop().await;
}

/// Answers the first request with headers and the start of a body, holds that connection
/// open for `hold`, then closes it; later requests get a whole answer.
async fn breaking_upstream(hold: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU32::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0; 16 * 1024];
                let _ = socket.read(&mut buf).await;
                let head =
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n";
                let out = if n == 0 {
                    format!("{head}content-length: 100000\r\n\r\n{{\"data\":[")
                } else {
                    format!("{head}content-length: {}\r\n\r\n{ROWS}", ROWS.len())
                };
                let _ = socket.write_all(out.as_bytes()).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_connection_reset_mid_body_fails_that_response_only() {
    let url = breaking_upstream(Duration::from_millis(50)).await;
    let app = app_on(&url, |_| {}).await;
    let r = app.get("api/pipes/top_products.json").await;
    assert_eq!(r.status(), 200, "headers were already good");
    assert!(
        r.bytes().await.is_err(),
        "the client must see the body break, not a short success"
    );
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(
        (status, &body["rows"]),
        (200, &Value::from(1)),
        "the BFF is still healthy"
    );
    app.stop().await;
}

#[tokio::test]
async fn bodies_are_passed_through_unparsed_and_cut_at_max_response_bytes() {
    let up = fault(|n| async move {
        match n {
            1 => reply(200, &[("content-type", "application/json")], "{not json"),
            2 => {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let endless =
                    futures_util::stream::repeat(Ok::<_, std::convert::Infallible>(chunk));
                reply(
                    200,
                    &[("content-type", "text/csv")],
                    Body::from_stream(endless),
                )
            }
            _ => ok_json(),
        }
    })
    .await;
    let app = app_on(&up.url, |s| s.proxy.max_response_bytes = 1024 * 1024).await;
    let r = app.get("api/pipes/top_products.json").await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["content-type"].to_str().unwrap()
        ),
        (200, "application/json")
    );
    assert_eq!(r.text().await.unwrap(), "{not json");

    let r = app.get("api/pipes/top_products.csv").await;
    let mut body = r.bytes_stream();
    let (mut received, mut broke) = (0usize, false);
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => received += c.len(),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "an endless body must end in an error");
    assert!(received <= 1024 * 1024, "received {received} bytes");
    assert_eq!(
        app.get("api/pipes/top_products.json").await.status(),
        200,
        "still healthy"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_announced_oversized_body_is_a_502_before_streaming() {
    let up = fault(|_| async {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let endless = futures_util::stream::repeat(Ok::<_, std::convert::Infallible>(chunk));
        reply(
            200,
            &[("content-length", "10737418240")],
            Body::from_stream(endless),
        )
    })
    .await;
    let app = app_on(&up.url, |s| s.proxy.max_response_bytes = 1024 * 1024).await;
    let (status, body) = json(app.get("api/pipes/top_products.json").await).await;
    assert_eq!(status, 502);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_response_bytes"),
        "{body}"
    );
    app.stop().await;
}

// ---- the response cache --------------------------------------------------------------------

#[tokio::test]
async fn the_cache_makes_one_upstream_call_per_burst_and_never_shares_across_tenants() {
    let up = slow_upstream(Duration::from_millis(300)).await;
    let app = app_on(&up.url, |s| {
        s.proxy
            .cache
            .pipes
            .insert("top_products".into(), Duration::from_secs(5));
    })
    .await;
    let burst = (0..10).map(|_| app.get("api/pipes/top_products.json?days=7"));
    let responses = futures_util::future::join_all(burst).await;
    let mut caches = Vec::new();
    for r in responses {
        assert_eq!(r.status(), 200);
        caches.push(r.headers()["x-bff-cache"].to_str().unwrap().to_owned());
        assert_eq!(r.text().await.unwrap(), ROWS);
    }
    assert_eq!(
        up.hits(),
        1,
        "10 concurrent identical requests, one upstream call"
    );
    assert_eq!(
        caches.iter().filter(|c| *c == "miss").count(),
        1,
        "{caches:?}"
    );
    let again = app.get("api/pipes/top_products.json?days=7").await;
    assert_eq!(again.headers()["x-bff-cache"], "hit");
    assert_eq!(up.hits(), 1);

    let bob = app.session_for("bob").await;
    let r = get(&app, &bob, "api/pipes/top_products.json?days=7").await;
    assert_eq!(
        r.headers()["x-bff-cache"],
        "miss",
        "another tenant never gets alice's entry"
    );
    assert_eq!(up.hits(), 2);
    assert!(up.last().uri.contains("org_id=globex"));
    app.stop().await;
}
