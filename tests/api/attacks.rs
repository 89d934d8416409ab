//! The adversarial suite: tries to break the BFF the way the public internet would, and
//! asserts it stays boring: no foreign rows, no forged state changes, no secret in any log,
//! bounded answers under floods, and clean recovery from faults.
//!
//! - `isolation`: every demo user x every pipe x every override trick, on the direct path (a
//!   JWT from `/api/token` against the local endpoint) and the proxy path; zero foreign rows.
//! - `tricks`: pipe ids, other users' tokens, Tinybird JWTs as BFF bearers, raw path tricks,
//!   SQL through `/api/sql`.
//! - `web`: CSRF over every state-changing or token-returning route, scheme downgrades.
//! - `session`: session fixation, cookie flags, logout then replay.
//! - `logins`: password guessing against the throttles (counts, races, oversized fields).
//! - `slow_clients`: half-sent heads, trickled bodies, idle sockets and a flood of held
//!   sockets against both servers.
//! - `content`: reflected input in error bodies, error content types, security headers on
//!   every page and asset and on API answers.
//! - `redirects`: `return_to` as an open redirect, with and without a provider.
//! - `secrets`: the real binary at `RUST_LOG=trace` with JSON logs, audit on stdout and
//!   `/metrics` scraped; no key, token, session id, password or IdP token anywhere.
//! - `overload`: floods of logins, token requests, proxy calls and random paths against the
//!   real binary with `[limits]`; 429s not 5xx, bounded memory, legitimate users served,
//!   recovery.
//! - `faults`: flapping and garbage-but-200 upstreams, a full disk under the session store,
//!   SIGTERM with requests in flight.
//! - `binary`: running the real `tinybird-bff serve` with a temp config, capturing its output.
//!
//! What other suites already prove is referenced in SECURITY.md rather than repeated here.

pub(crate) mod binary;
mod content;
mod faults;
mod isolation;
mod logins;
mod overload;
mod redirects;
mod secrets;
mod session;
mod slow_clients;
mod tricks;
mod web;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, client, spawn_app_with};

/// Demo users and their tenants.
pub const USERS: [(&str, &str); 4] = [
    ("alice", "acme"),
    ("bob", "globex"),
    ("carol", "initech"),
    ("admin", "acme"),
];

/// Every tenant in the demo data.
pub const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

/// A status, headers and body, read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The `Content-Type`, or `""`.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts the BFF's error envelope: JSON `{"error": "<message>"}`, never HTML.
    pub fn assert_json_error(&self, context: &str) {
        assert!(
            self.content_type().starts_with("application/json"),
            "{context}: error {} is {:?}, not JSON: {}",
            self.status,
            self.content_type(),
            self.body
        );
        assert!(
            self.json()["error"].is_string(),
            "{context}: no {{\"error\"}} in {}",
            self.body
        );
    }
}

/// Reads a response in full.
pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// The demo BFF without Tinybird's per-name rps limit, so table-driven tests never see 429s.
pub async fn app() -> TestApp {
    spawn_app_with(|s| s.token_rps = None).await
}

/// A pipe's id as Tinybird and the local endpoint spell it: `t_` + 32 hex of sha256(name).
pub fn pipe_id(name: &str) -> String {
    format!("t_{}", &hex::encode(Sha256::digest(name.as_bytes()))[..32])
}

/// The `name=value` of the session cookie a response sets, if any.
pub fn set_session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tbff_session="))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// Logs in as a demo user without a cookie jar; returns the `tbff_session=<id>` pair.
pub async fn session_cookie_for(app: &TestApp, user: &str) -> String {
    let r = client()
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": user, "password": format!("{user}-demo")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login as {user}");
    set_session_cookie(r.headers()).expect("login sets the session cookie")
}

/// `GET /api/me` with a raw cookie: the status and the user id (empty when none).
pub async fn whoami(app: &TestApp, cookie: &str) -> (u16, String) {
    let r = reply(
        client()
            .get(format!("{}api/me", app.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        r.status,
        r.json()["user"]["id"].as_str().unwrap_or("").to_owned(),
    )
}
