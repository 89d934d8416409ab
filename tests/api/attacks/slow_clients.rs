//! Slow and idle clients against both servers: half-sent request heads, bodies trickled a
//! byte at a time and idle kept-alive sockets are cut after their timeouts (`[server]`, or
//! the `local` command's flags), and a flood of held sockets can neither exhaust the process's
//! file descriptors nor keep a health check out.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::binary::{Bin, config};
use crate::helpers::{admin_key, client, spawn_local_with};

/// Short timeouts, so the suite stays fast (edits of the demo config's `[server]`).
const SHORT: [(&str, &str); 3] = [
    ("header_timeout = \"10s\"", "header_timeout = \"1s\""),
    ("body_timeout = \"30s\"", "body_timeout = \"1s\""),
    (
        "keep_alive_timeout = \"60s\"",
        "keep_alive_timeout = \"1s\"",
    ),
];

/// `serve`'s environment: the workspace key.
fn key_env() -> String {
    crate::helpers::admin_key_text()
}

/// The `host:port` of a base URL.
fn authority(url: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .socket_addrs(|| None)
        .unwrap()[0]
        .to_string()
}

/// Whether the server has closed `socket` (a read sees EOF or a reset) within `within`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// `n` sockets to `addr`, each having sent half a request head.
async fn half_heads(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .is_ok()
        {
            sockets.push(s);
        }
    }
    sockets
}

#[tokio::test]
async fn a_flood_of_held_sockets_never_keeps_the_health_check_out() {
    // Room for 1,100 sockets here; the server gets 1,024 descriptors (a common default) and
    // its default limits.
    tinybird_contract::serve::raise_fd_limit();
    let key = key_env();
    let env = [("TINYBIRD_SIGNING_KEY", key.as_str())];
    let bff = Bin::serve_with_fd_limit(&config(&[]), &env, Some(1024)).await;
    let addr = authority(&bff.url);
    let held = half_heads(&addr, 1_100).await;
    assert!(held.len() >= 1_000, "the flood connected: {}", held.len());
    for _ in 0..3 {
        let started = Instant::now();
        let r = client()
            .get(format!("{}healthz", bff.url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/healthz answers under the flood");
        assert_eq!(r.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Logins still work too.
    let r = client()
        .post(format!("{}api/login", bff.url))
        .header("x-bff-csrf", "1")
        .json(&serde_json::json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        bff.output().contains("raised the open-file limit")
            || bff.output().contains("max_connections is above"),
        "the process says what it did with its descriptors"
    );
    drop(held);
}

#[tokio::test]
async fn slow_heads_trickled_bodies_and_idle_sockets_are_cut_after_their_timeouts() {
    let key = key_env();
    let bff = Bin::serve(&config(&SHORT), &[("TINYBIRD_SIGNING_KEY", &key)]).await;
    let addr = authority(&bff.url);

    // Half a head, then nothing: closed after header_timeout.
    let mut slow_head = half_heads(&addr, 1).await.pop().unwrap();
    assert!(
        closed_within(&mut slow_head, Duration::from_secs(4)).await,
        "half a head"
    );

    // A head sent a byte at a time, within the timeout for each byte but not in all.
    let mut dripping = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
    {
        if dripping.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cut = cut || closed_within(&mut dripping, Duration::from_secs(1)).await;
    assert!(cut, "a dripped head is cut");
    assert!(started.elapsed() < Duration::from_secs(6));

    // A login body trickled at a byte per 200 ms: cut after body_timeout.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-BFF-CSRF: 1\r\nContent-Length: 60\r\n\r\n",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answered = Vec::new();
    for byte in b"{\"username\":\"alice\",\"password\":\"alice-demo\"}              " {
        if trickle.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buf)).await
        {
            answered.extend_from_slice(&buf[..n]);
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(4), "cut after {elapsed:?}");
    let text = String::from_utf8_lossy(&answered);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 4"),
        "a refusal, never a login: {text}"
    );

    // A kept-alive connection that goes quiet after a request is closed.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, Duration::from_secs(4)).await,
        "idle keep-alive"
    );

    // ...while one that keeps asking stays open.
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..6 {
        busy.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = busy.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn the_local_endpoint_cuts_slow_clients_and_makes_room_at_its_cap() {
    let mut config = tinybird_local::LocalConfig::new(admin_key());
    config.conn_limits = tinybird_contract::serve::ConnLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        keep_alive_timeout: Duration::from_secs(1),
        max_connections: 50,
    };
    let local = spawn_local_with(config).await;
    let addr = local.addr.to_string();
    // Twice the cap in held sockets: a real request still gets an answer.
    let mut held = half_heads(&addr, 100).await;
    let r = client()
        .get(format!("{}/v0/pipes/top_products.json", local.url))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("answered at the cap");
    assert_eq!(r.status(), 403, "no token: refused, but answered");
    // The held sockets are all closed: made room for, or cut after header_timeout.
    for socket in &mut held {
        assert!(closed_within(socket, Duration::from_secs(4)).await);
    }
}
