//! Faults around the BFF: an upstream that flaps (per request, and down-then-up), one that
//! answers 200 with garbage, a full disk under the embedded session store, and SIGTERM with
//! proxy calls in flight. The BFF answers every request (a 200, or a bounded JSON error), never
//! panics, and recovers by itself.
//!
//! Covered elsewhere: a slow, down, 429/5xx-ing or body-breaking upstream and retry limits in
//! tests/api/proxy.rs; Redis down and back in tests/api/scale/outage.rs; draining in-process
//! on stop in tests/api/scale/visibility.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tinybird_bff::config::{SessionStoreKind, TinybirdHost};
use tinybird_bff::tinybird::upstream::RetryPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::binary::{Bin, config};
use super::reply;
use crate::helpers::{TestApp, admin_key, admin_key_text, spawn_app_with};

const ROWS: &str = r#"{"meta":[],"data":[{"org_id":"acme"}],"rows":1}"#;

/// A raw HTTP upstream: `answer(n)` gives the n-th connection's full response bytes, or
/// `None` to drop the connection without answering (a flap at the TCP level).
async fn raw_upstream<F>(answer: F) -> (String, Arc<AtomicU32>)
where
    F: Fn(u32) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU32::new(0));
    let (counter, answer) = (Arc::clone(&hits), Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                if let Some(bytes) = answer(n) {
                    let _ = socket.write_all(&bytes).await;
                }
            });
        }
    });
    (url, hits)
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The demo BFF calling `url` as Tinybird, quick retries, logged in as alice.
async fn app_on(url: &str) -> (TestApp, reqwest::Client) {
    let url = reqwest::Url::parse(url).unwrap();
    let app = spawn_app_with(move |s| {
        s.tinybird.first_mut().host = TinybirdHost::Remote(url);
        s.tinybird.first_mut().signing_key = admin_key();
        s.tinybird.first_mut().workspace_id = crate::helpers::WORKSPACE.into();
        s.proxy.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            deadline: Duration::from_secs(3),
        };
    })
    .await;
    let alice = app.session_for("alice").await;
    (app, alice)
}

#[tokio::test]
async fn a_flapping_upstream_is_absorbed_by_retries_and_an_outage_ends_cleanly() {
    // Every other connection is dropped before an answer, alternately a 503: retries hide it.
    let (url, hits) = raw_upstream(|n| match n % 4 {
        1 => None,
        2 => Some(http(
            "503 Service Unavailable",
            "application/json",
            br#"{"error":"busy"}"#,
        )),
        _ => Some(http("200 OK", "application/json", ROWS.as_bytes())),
    })
    .await;
    let (app, alice) = app_on(&url).await;
    for i in 0..12 {
        let r = reply(
            alice
                .get(format!("{}api/pipes/top_products.json?i={i}", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, ROWS), "call {i}");
    }
    assert!(
        hits.load(Ordering::SeqCst) > 12,
        "some calls needed retries"
    );
    app.stop().await;

    // Up, then down (every connection dropped), then up again.
    let down = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&down);
    let (url, _) = raw_upstream(move |_| {
        (!flag.load(Ordering::SeqCst)).then(|| http("200 OK", "application/json", ROWS.as_bytes()))
    })
    .await;
    let (app, alice) = app_on(&url).await;
    let call = || async {
        reply(
            alice
                .get(format!("{}api/pipes/top_products.json", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(call().await.status, 200);
    down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let r = call().await;
        assert_eq!(r.status, 502, "{}", r.body);
        r.assert_json_error("upstream down");
    }
    down.store(false, Ordering::SeqCst);
    assert_eq!(call().await.status, 200, "recovers by itself");
    app.stop().await;
}

#[tokio::test]
async fn garbage_with_a_200_passes_through_unparsed_and_can_run_nothing() {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"not json at all".to_vec()),
        ("application/json", br#"{"data":[{"org_id":"acm"#.to_vec()),
        ("application/json", vec![0, 159, 146, 150, 255, 254, 0]),
        ("application/json", Vec::new()),
        (
            "text/html; charset=utf-8",
            b"<html><script>alert(document.cookie)</script>".to_vec(),
        ),
        (
            "image/svg+xml",
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec(),
        ),
    ];
    let answers = Arc::new(bodies.clone());
    let (url, _) = raw_upstream(move |n| {
        let (content_type, body) = &answers[(n as usize - 1) % answers.len()];
        Some(http("200 OK", content_type, body))
    })
    .await;
    let (app, alice) = app_on(&url).await;
    let mut failures = Vec::new();
    for (i, (content_type, body)) in bodies.iter().enumerate() {
        let r = alice
            .get(format!("{}api/pipes/top_products.json?i={i}", app.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let got_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default()
        };
        let (nosniff, csp) = (
            header("x-content-type-options"),
            header("content-security-policy"),
        );
        let got = r.bytes().await.unwrap();
        if status != 200 || got.as_ref() != body.as_slice() {
            failures.push(format!("{content_type}: {status}, body changed: {got:?}"));
        }
        // Whatever Tinybird sends is served from the BFF's own origin, where the session
        // lives: even HTML or SVG must not be sniffed into something else, nor run a script.
        // And a type a browser would render as a page is never passed on as such.
        let renderable = got_type.starts_with("text/html") || got_type.starts_with("image/svg");
        if renderable
            || nosniff != "nosniff"
            || !csp.contains("default-src 'none'")
            || !csp.contains("sandbox")
        {
            failures.push(format!(
                "upstream {content_type:?} served as {got_type:?} with nosniff {nosniff:?}, CSP {csp:?}"
            ));
        }
    }
    // The BFF itself is fine afterwards.
    assert_eq!(
        alice
            .get(format!("{}api/me", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tiny tmpfs at `dir`, unmounted when dropped; `None` when mounting is not allowed.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_under_the_session_store_is_a_503_json_and_recovers() {
    let dir = std::env::temp_dir().join(format!("tbff-full-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let tmpfs = Tmpfs::mount(&dir);
    let sessions = dir.join("sessions");
    let store = SessionStoreKind::File(sessions.clone());
    let app = spawn_app_with(move |s| s.session_store = store).await;
    let early = app.session_for("bob").await;
    // Fill the disk (tmpfs), or, where mounting is not allowed, make the directory a file:
    // either way the next session write fails.
    let filler = dir.join("filler");
    if tmpfs.is_some() {
        let mut f = std::fs::File::create(&filler).unwrap();
        while std::io::Write::write_all(&mut f, &[0u8; 4096]).is_ok() {}
    } else {
        std::fs::rename(&sessions, dir.join("moved")).unwrap();
        std::fs::write(&sessions, b"not a directory").unwrap();
    }
    for _ in 0..3 {
        let r = reply(app.login("alice", "alice-demo").await).await;
        assert_eq!(r.status, 503, "login on a full disk: {}", r.body);
        r.assert_json_error("full disk");
    }
    // Sessions already in memory keep reading (reads never touch the disk).
    assert_eq!(
        early
            .get(format!("{}api/me", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    if tmpfs.is_some() {
        std::fs::remove_file(&filler).unwrap();
    } else {
        std::fs::remove_file(&sessions).unwrap();
        std::fs::rename(dir.join("moved"), &sessions).unwrap();
    }
    app.login_as("alice").await;
    assert_eq!(app.get("api/me").await.status(), 200, "recovered");
    app.stop().await;
    drop(tmpfs);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigterm_lets_every_in_flight_proxy_call_finish_then_exits_0() {
    const IN_FLIGHT: u32 = 8;
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    let slow = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            ([("content-type", "application/json")], ROWS)
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });
    let host = format!("host = \"{upstream}\"");
    let mut bin = Bin::serve(
        &config(&[("host = \"local\"", &host)]),
        &[("TINYBIRD_SIGNING_KEY", &admin_key_text())],
    )
    .await;
    let alice = crate::helpers::cookie_client();
    let r = alice
        .post(format!("{}api/login", bin.url))
        .header("x-bff-csrf", "1")
        .json(&serde_json::json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let request = alice.get(format!("{}api/pipes/top_products.json?i={i}", bin.url));
            tokio::spawn(async move { reply(request.send().await.unwrap()).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while seen.load(Ordering::SeqCst) < IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every call reached the upstream");
    bin.terminate();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, ROWS),
            "an in-flight call was cut"
        );
    }
    assert_eq!(
        bin.wait(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        bin.output()
    );
    assert!(bin.output().contains("shutting down"), "{}", bin.output());
}
