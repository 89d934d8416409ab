//! Redis Sentinel: the BFF finds the master through the sentinels, shares sessions, limits and
//! logouts through it like through one Redis, and when the master dies under load it follows
//! the failover on its own. The failover test prints its numbers (docs/operations.md quotes
//! them); run it alone with
//! `cargo test --release --test api sentinel -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tinybird_bff::config::{SessionStoreKind, Settings};
use tinybird_bff::redis::RedisSettings;

use super::header;
use super::sentinel_support::{Sentinels, query};
use super::support::{Instance, base_settings, with_limits};
use crate::helpers::cookie_client;

/// The per-operation Redis timeout of these tests: requests must answer within a few of it.
const TIMEOUT: Duration = Duration::from_millis(500);

fn with_sentinel(mut s: Settings, sentinels: &Sentinels) -> Settings {
    let mut r = RedisSettings::new(&sentinels.url()).unwrap();
    r.timeout = TIMEOUT;
    s.redis = Some(r);
    s.session_store = SessionStoreKind::Redis;
    s
}

#[tokio::test]
async fn the_master_named_by_the_sentinels_shares_sessions_limits_and_logout() {
    let sentinels = Sentinels::start(0, 1).await;
    let settings = with_limits(
        with_sentinel(base_settings(), &sentinels),
        r#"user.token = "1/m burst 2""#,
    );
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    assert_eq!(b.get(&browser, "api/me").await.status(), 200, "one session");
    let statuses = [
        a.token(&browser).await.status().as_u16(),
        b.token(&browser).await.status().as_u16(),
        a.token(&browser).await.status().as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 429], "one limit for both instances");
    // The keys are on the master the sentinels named, under the usual layout.
    let master = sentinels.master_port().await.unwrap();
    let keys: Vec<String> = query(master, &["KEYS", "tbff:*"]).await.unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with("tbff:session:"))
            && keys
                .iter()
                .any(|k| k.starts_with("tbff:rl:{acme}:token:user:alice")),
        "{keys:?}"
    );
    assert_eq!(
        b.post(&browser, "api/logout", Value::Null).await.status(),
        204
    );
    assert_eq!(
        a.get(&browser, "api/me").await.status(),
        401,
        "logout everywhere"
    );
    a.stop().await;
    b.stop().await;
}

/// One request of the load: when it was sent, to which instance, what, and its answer.
#[derive(Debug, Clone)]
struct Sample {
    sent: Duration,
    instance: &'static str,
    kind: &'static str,
    /// 0: no answer within the client's timeout (a hang).
    status: u16,
    latency: Duration,
    /// `x-ratelimit-limit` was present (the limiter reached Redis).
    limited: bool,
    error: String,
}

type Samples = Arc<Mutex<Vec<Sample>>>;

async fn record(
    samples: &Samples,
    start: Instant,
    instance: &'static str,
    kind: &'static str,
    request: reqwest::RequestBuilder,
) {
    let sent = start.elapsed();
    let began = Instant::now();
    let (status, limited, error) = match request.timeout(Duration::from_secs(5)).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let limited = header(&r, "x-ratelimit-limit").is_some();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let error = body["error"].as_str().unwrap_or_default().to_owned();
            (status, limited, error)
        }
        Err(_) => (0, false, String::new()),
    };
    samples.lock().unwrap().push(Sample {
        sent,
        instance,
        kind,
        status,
        latency: began.elapsed(),
        limited,
        error,
    });
}

/// A key of acme made by alice on `instance`, for the load's `Bearer tbk_...` calls.
async fn key_on(instance: &Instance) -> String {
    let alice = cookie_client();
    assert_eq!(instance.login(&alice, "alice", "alice-demo").await, 200);
    let made = instance
        .post(
            &alice,
            "api/keys",
            json!({"name": "load", "pipes": ["top_products"]}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    made["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_master_killed_under_load_fails_over_and_the_bff_recovers_by_itself() {
    let mut sentinels = Sentinels::start(1, 3).await;
    let limits = |mode: &str| {
        format!("user.token = \"1000/s\"\nuser.proxy = \"1000/s\"\non_redis_error = \"{mode}\"")
    };
    // The same Sentinel deployment; limits fail open on A and closed on B.
    let a = Arc::new(
        Instance::start(with_limits(
            with_sentinel(base_settings(), &sentinels),
            &limits("open"),
        ))
        .await,
    );
    let b = Arc::new(
        Instance::start(with_limits(
            with_sentinel(base_settings(), &sentinels),
            &limits("closed"),
        ))
        .await,
    );
    let old_master = sentinels.master_port().await.unwrap();
    // A session made before the crash, and replicated: a write on this connection, then WAIT
    // for one replica, so everything before it (the session) is on the replica too.
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    let client = redis::Client::open(format!("redis://127.0.0.1:{old_master}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("test:marker")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica has the session");
    let (key_a, key_b) = (key_on(&a).await, key_on(&b).await);

    let samples: Samples = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    // The session user: whoami, a token and a proxy call, alternating instances.
    {
        let (samples, stop, a, b, browser) = (
            samples.clone(),
            stop.clone(),
            a.clone(),
            b.clone(),
            browser.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (name, at) = if i % 2 == 0 { ("A", &a) } else { ("B", &b) };
                let csrf = |r: reqwest::RequestBuilder| r.header("x-bff-csrf", "1");
                record(
                    &samples,
                    start,
                    name,
                    "me",
                    browser.get(format!("{}api/me", at.url)),
                )
                .await;
                record(
                    &samples,
                    start,
                    name,
                    "token",
                    csrf(browser.post(format!("{}api/token", at.url))),
                )
                .await;
                record(
                    &samples,
                    start,
                    name,
                    "proxy",
                    browser.get(format!("{}api/pipes/top_products.json", at.url)),
                )
                .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Fresh logins, alternating instances.
    {
        let (samples, stop, a, b) = (samples.clone(), stop.clone(), a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (name, at) = if i % 2 == 0 { ("A", &a) } else { ("B", &b) };
                let fresh = cookie_client();
                let login = fresh
                    .post(format!("{}api/login", at.url))
                    .header("x-bff-csrf", "1")
                    .json(&json!({"username": "bob", "password": "bob-demo"}));
                record(&samples, start, name, "login", login).await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // API keys (no session, so only the limiter needs Redis): a token and a proxy call.
    for (name, at, key) in [("A", a.clone(), key_a), ("B", b.clone(), key_b)] {
        let (samples, stop) = (samples.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let token = c.post(format!("{}api/token", at.url)).bearer_auth(&key);
                record(&samples, start, name, "key-token", token).await;
                let pipe = c
                    .get(format!("{}api/pipes/top_products.json", at.url))
                    .bearer_auth(&key);
                record(&samples, start, name, "key-proxy", pipe).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = start.elapsed();
    sentinels.kill(old_master).await;
    // Run until every kind of request has succeeded for 1.5 s in a row (at most 20 s).
    let last_error = |s: &[Sample]| {
        s.iter()
            .filter(|x| x.sent + x.latency > killed && x.status != 200 && x.status != 204)
            .map(|x| x.sent)
            .max()
    };
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = start.elapsed();
        let last = last_error(&samples.lock().unwrap());
        if last.is_some_and(|l| now > l + Duration::from_millis(1500)) {
            break;
        }
        assert!(
            now < killed + Duration::from_secs(20),
            "no recovery within 20 s of the kill"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let samples = samples.lock().unwrap().clone();
    let recovered = last_error(&samples).unwrap();

    // The numbers.
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &samples {
        *by_status.entry(s.status).or_default() += 1;
    }
    let max_latency = samples.iter().map(|s| s.latency).max().unwrap();
    let per_instance = |name: &str| {
        samples
            .iter()
            .filter(|s| s.instance == name && s.sent + s.latency > killed && s.status != 200)
            .map(|s| s.sent)
            .max()
            .map_or(0.0, |l| (l - killed).as_secs_f64())
    };
    println!(
        "failover: {} requests over {:.1} s, all answered; by status {by_status:?}; \
         errors (non-2xx) {}; max latency {} ms (redis.timeout {} ms); \
         recovered {:.2} s after the kill (A {:.2} s, B {:.2} s)",
        samples.len(),
        start.elapsed().as_secs_f64(),
        samples.iter().filter(|s| s.status >= 300).count(),
        max_latency.as_millis(),
        TIMEOUT.as_millis(),
        (recovered - killed).as_secs_f64(),
        per_instance("A"),
        per_instance("B"),
    );

    // Every request got an answer, fast: never a hang past a few timeouts.
    assert!(
        samples.iter().all(|s| s.status != 0),
        "a request got no answer"
    );
    assert!(max_latency < TIMEOUT * 5, "{max_latency:?}");
    // Only the outage's answers: 200s, and 503s while Redis was away (no 500, no 401). A
    // request is in the outage when it was answered after the kill and sent before recovery.
    let outage = |s: &&Sample| s.sent + s.latency > killed && s.sent <= recovered;
    for s in &samples {
        assert!(
            matches!(s.status, 200 | 204) || (s.status == 503 && outage(&s)),
            "{s:?}"
        );
    }
    assert!(
        samples.iter().filter(outage).any(|s| s.status == 503),
        "the outage was seen"
    );
    // Limits followed on_redis_error: A's keys went through unlimited, B's were refused.
    let keys_on = |name: &str| {
        samples
            .iter()
            .filter(outage)
            .filter(|s| s.instance == name && s.kind.starts_with("key-"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        keys_on("A").iter().all(|s| s.status == 200) && keys_on("A").iter().any(|s| !s.limited),
        "open: {:?}",
        keys_on("A")
    );
    assert!(
        keys_on("B")
            .iter()
            .any(|s| s.status == 503 && s.error.contains("rate limiting")),
        "closed: {:?}",
        keys_on("B")
    );
    // Sessions failed closed, with the session store named. Limits and login throttling
    // followed on_redis_error: on B (closed) a request whose session was read just before the
    // crash, or a login, may be refused by them; on A (open) never.
    let other: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.status == 503 && !s.kind.starts_with("key-"))
        .filter(|s| {
            let limiter = s.error.contains("rate limiting") || s.error.contains("login throttling");
            !(s.error.contains("session store") || (s.instance == "B" && limiter))
        })
        .collect();
    assert!(other.is_empty(), "{other:?}");

    // The replica is the master now, and the replicated session lives on both instances.
    let new_master = sentinels.master_port().await.unwrap();
    assert_ne!(new_master, old_master);
    for at in [&a, &b] {
        let me = at.get(&browser, "api/me").await;
        assert_eq!(me.status(), 200);
        assert_eq!(me.json::<Value>().await.unwrap()["user"]["id"], "alice");
        assert_eq!(at.metric("tbff_redis_up").await, 1.0);
    }
    assert_eq!(
        b.post(&browser, "api/logout", Value::Null).await.status(),
        204
    );
    assert_eq!(
        a.get(&browser, "api/me").await.status(),
        401,
        "logout everywhere, on the new master"
    );
    let a = Arc::into_inner(a).unwrap();
    let b = Arc::into_inner(b).unwrap();
    a.stop().await;
    b.stop().await;
}
