//! Floods beyond every limit against the real binary: 12,000 requests, 32 at a time, mixing
//! logins with random usernames, token mints and proxy calls by one user over her `[limits]`,
//! and random paths with random session cookies. The service keeps answering (only 2xx,
//! 401, 404 and 429 with `Retry-After`; no 5xx, no timeouts), its memory stays bounded, a
//! second user under his limits is served throughout, and everything recovers once the flood
//! stops. Logins from the flooding address are locked out by design (`[login]`); the lockout
//! is shortened here so recovery is observable.
//!
//! The per-user and per-tenant limit semantics (headers, shared across instances, grant
//! overrides) are proven in tests/api/scale.rs; here the point is behaviour under load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use super::binary::{Bin, config};
use super::reply;
use crate::helpers::admin_key_text;

const FLOOD: usize = 12_000;
const CONCURRENCY: usize = 32;
/// Resident memory the flood may add (the bound; typical growth is a few MB).
const MAX_GROWTH_KIB: u64 = 50 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Login,
    Token,
    Proxy,
    Random,
}

/// A flood request's status and whether it carried `Retry-After`, or the transport error.
type Outcome = Result<(u16, bool), String>;

fn limited_config() -> String {
    config(&[
        (
            "on_redis_error = \"open\"",
            "user.token = \"5/s burst 5\"\nuser.proxy = \"10/s burst 10\"\non_redis_error = \"open\"",
        ),
        ("window = \"15m\"", "window = \"2s\""),
        ("lockout = \"15m\"", "lockout = \"2s\""),
        // The audit log would write a line per refused login: keep the output small.
        ("output = \"stdout\"", "output = \"off\""),
    ])
}

async fn login_cookie(http: &reqwest::Client, bin: &Bin, user: &str) -> String {
    let r = http
        .post(format!("{}api/login", bin.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": user, "password": format!("{user}-demo")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login as {user}");
    super::set_session_cookie(r.headers()).unwrap()
}

fn request(http: &reqwest::Client, bin: &Bin, kind: Kind, cookie: &str) -> reqwest::RequestBuilder {
    let n: u64 = rand::random();
    match kind {
        Kind::Login => http
            .post(format!("{}api/login", bin.url))
            .header("x-bff-csrf", "1")
            .json(&json!({"username": format!("user-{n:x}"), "password": format!("{n}")})),
        Kind::Token => http
            .post(format!("{}api/token", bin.url))
            .header("x-bff-csrf", "1")
            .header("cookie", cookie),
        Kind::Proxy => http
            .get(format!(
                "{}api/pipes/top_products.json?days={}",
                bin.url,
                n % 60 + 1
            ))
            .header("cookie", cookie),
        Kind::Random => {
            let path = if n.is_multiple_of(2) {
                format!("api/{n:x}/x")
            } else {
                format!("{n:x}.js")
            };
            http.get(format!("{}{path}", bin.url))
                .header("cookie", format!("tbff_session={n:x}{n:x}"))
        }
    }
}

#[tokio::test]
async fn a_flood_gets_429s_not_errors_memory_stays_bounded_and_others_are_served() {
    let bin = Bin::serve(
        &limited_config(),
        &[("TINYBIRD_SIGNING_KEY", &admin_key_text())],
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let alice = login_cookie(&http, &bin, "alice").await;
    let bob = login_cookie(&http, &bin, "bob").await;
    // Warm up every path once so pools and caches exist before measuring.
    for kind in [Kind::Token, Kind::Proxy, Kind::Random] {
        let _ = request(&http, &bin, kind, &alice).send().await.unwrap();
    }
    let before = bin.rss_kib();

    // Bob, under his limits, keeps working while the flood runs.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let legit = {
        let (http, url, bob, done) = (http.clone(), bin.url.clone(), bob.clone(), done.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["api/token", "api/pipes/sales_by_day.json"] {
                    let req = if path == "api/token" {
                        http.post(format!("{url}{path}")).header("x-bff-csrf", "1")
                    } else {
                        http.get(format!("{url}{path}"))
                    };
                    let r = req.header("cookie", &bob).send().await;
                    statuses.push(r.map(|r| r.status().as_u16()).map_err(|e| e.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            statuses
        })
    };

    let started = Instant::now();
    let kinds = [Kind::Login, Kind::Token, Kind::Proxy, Kind::Random];
    let results: Vec<(Kind, Outcome)> =
        futures_util::stream::iter((0..FLOOD).map(|i| kinds[i % kinds.len()]))
            .map(|kind| {
                let req = request(&http, &bin, kind, &alice);
                async move {
                    let r = req.send().await.map_err(|e| e.to_string());
                    let r = match r {
                        Ok(r) => {
                            let retry_after = r.headers().contains_key("retry-after");
                            let status = r.status().as_u16();
                            // Read the body: a flood that never reads would not load the server.
                            r.bytes()
                                .await
                                .map(|_| (status, retry_after))
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e),
                    };
                    (kind, r)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let flood_time = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let legit = legit.await.unwrap();
    let after = bin.rss_kib();

    let mut tally: BTreeMap<(Kind, String), usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (kind, r) in &results {
        let key = match r {
            Ok((status, _)) => status.to_string(),
            Err(e) => format!("error {e}"),
        };
        *tally.entry((*kind, key)).or_default() += 1;
        match r {
            Ok((429, false)) => problems.push(format!("{kind:?}: 429 without Retry-After")),
            Ok((200 | 204 | 401 | 404 | 429, _)) => {}
            Ok((status, _)) => problems.push(format!("{kind:?}: {status}")),
            Err(e) => problems.push(format!("{kind:?}: {e}")),
        }
    }
    problems.dedup();
    let summary = format!("{FLOOD} requests in {flood_time:?}: {tally:?}");
    eprintln!("{summary}; RSS {before} -> {after} KiB");
    assert!(problems.is_empty(), "{summary}\n{}", problems.join("\n"));
    for kind in [Kind::Login, Kind::Token, Kind::Proxy] {
        assert!(
            tally.contains_key(&(kind, "429".into())),
            "{kind:?} was never limited: {summary}"
        );
    }
    assert!(
        legit.len() >= 2 && legit.iter().all(|s| s == &Ok(200)),
        "bob under his limits: {legit:?} ({summary})"
    );
    let growth = after.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "memory grew {growth} KiB ({before} -> {after} KiB) over {summary}"
    );

    // Recovery: once the buckets refill and the lockout ends, alice and logins work again.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let token = reply(
        request(&http, &bin, Kind::Token, &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.body);
    let proxied = reply(
        request(&http, &bin, Kind::Proxy, &alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(proxied.status, 200, "{}", proxied.body);
    login_cookie(&http, &bin, "carol").await;
    let health = http
        .get(format!("{}healthz", bin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
