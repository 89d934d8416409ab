//! The Tinybird-compatible local endpoint against the contract, over real sockets.
//!
//! Every test starts its own server on port 0 (generating the demo data takes a moment, never
//! a shared fixture) and talks to it as a Tinybird client would: reqwest for ordinary calls,
//! a raw TCP writer where reqwest would tidy the request (path tricks, invalid bytes).
//!
//! - `auth`: where tokens come from, every JWT refusal, scopes by name and id, the admin token.
//! - `params`: fixed params always win; templates bind, type-check and default parameters.
//! - `formats`: JSON/CSV/NDJSON bodies, status codes and the error envelope, CORS.
//! - `limits`: `limits.rps` per workspace, pipe and JWT name.
//! - `fidelity`: what Tinybird's server does that clients trip on: token lookup order, echoed
//!   tokens, JSON bodies, CORS and request ids, `tinybird.pipe_stats_rt`.
//! - `tokens`: the Token API subset (`POST /v0/tokens/`).
//! - `data`: the demo dataset, `--data` files, and pipe directories with a broken file.
//! - `bad_input`: malformed tokens, oversized requests, path tricks, invalid UTF-8.
//! - `resources`: functions linear or stopped by the deadline, connections given back in
//!   time, a bounded usage record, a linear and bounded translator (issue #25).
//! - `process`: the real `tinybird-bff local` as a child: no query aborts it, unauthenticated
//!   floods leave no memory behind, limits set on its command line.
//! - `tenancy`: the demo's pipes count "the last days" from the tenant's own rows.

mod auth;
mod bad_input;
mod data;
mod events;
mod fidelity;
mod formats;
mod limits;
mod params;
pub mod process;
mod resources;
mod tenancy;
mod tokens;

use std::net::SocketAddr;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tinybird_local::LocalEndpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::helpers::client;

/// A finished HTTP exchange: what a client sees.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data` rows of a JSON body.
    pub fn rows(&self) -> Vec<Value> {
        assert_eq!(
            self.status, 200,
            "expected a pipe result, got {}",
            self.body
        );
        self.json()["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data array: {}", self.body))
            .clone()
    }

    /// The `org_id` of every returned row.
    pub fn org_ids(&self) -> Vec<String> {
        self.rows()
            .iter()
            .map(|r| {
                r["org_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("row without org_id: {r}"))
                    .to_owned()
            })
            .collect()
    }

    /// Asserts Tinybird's error envelope `{"error": "...", "documentation": "<docs url>"}` with
    /// `status`, whose message contains every one of `words` (case-insensitive); returns the
    /// message.
    pub fn assert_error(&self, status: u16, words: &[&str]) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        let object = body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not an object: {body}"));
        assert_eq!(
            object.keys().collect::<Vec<_>>(),
            ["error", "documentation"],
            "error body: {body}"
        );
        let docs = body["documentation"].as_str().unwrap_or_default();
        assert!(
            docs.starts_with("https://docs.tinybird.co/"),
            "documentation link: {body}"
        );
        let message = body["error"]
            .as_str()
            .expect("error is a string")
            .to_owned();
        for word in words {
            assert!(
                message.to_lowercase().contains(&word.to_lowercase()),
                "{status} message {message:?} does not say {word:?}"
            );
        }
        message
    }
}

/// Sends a prepared request and collects the reply.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request
        .send()
        .await
        .expect("request reaches the local endpoint");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body is readable");
    Reply {
        status,
        headers,
        body,
    }
}

/// `GET {base}{path}` with `Authorization: Bearer <token>` when a token is given.
pub async fn get(base: &str, path: &str, token: Option<&str>) -> Reply {
    let mut request = client().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// A form `POST {base}{path}` with `body` (already form-encoded) and a bearer token.
pub async fn post_form(base: &str, path: &str, token: &str, body: &str) -> Reply {
    send(
        client()
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned()),
    )
    .await
}

/// Writes `request_head` (request line and headers, without the final blank line) as is, so
/// nothing normalises the path or re-encodes bytes, and returns status and body.
pub async fn raw_http(addr: SocketAddr, request_head: &[u8]) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut request = request_head.to_vec();
    request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    // Write while reading: a server refusing an oversized request answers and closes before
    // it has read everything, and the answer is what the test is after.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(err) if raw.is_empty() => panic!("connection failed before any answer: {err}"),
            Err(_) => break,
        }
    }
    drop(writing.await);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// `GET path` over a raw socket with the given bearer token.
pub async fn raw_get(addr: SocketAddr, path: &[u8], token: &str) -> (u16, String) {
    let mut head = b"GET ".to_vec();
    head.extend_from_slice(path);
    head.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}").as_bytes(),
    );
    raw_http(addr, &head).await
}

/// An endpoint built by the test itself (when `helpers::spawn_local_with`'s no-problems
/// assertion is in the way); stops when dropped.
pub struct Served {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn serve(endpoint: LocalEndpoint) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(endpoint.serve(listener, async move {
        let _ = rx.await;
    }));
    Served {
        url,
        stop: Some(tx),
    }
}

/// The JSON of a pipe result, with the timing-dependent `statistics` removed.
pub fn without_statistics(mut body: Value) -> Value {
    body.as_object_mut()
        .expect("object body")
        .remove("statistics");
    body
}
