//! Redis outages: sessions fail closed with a 503 JSON, limits fail open or closed as
//! configured, and everything recovers by itself when Redis returns.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::header;
use super::support::{Instance, RedisServer, base_settings, with_limits, with_redis};
use crate::helpers::cookie_client;

#[tokio::test]
async fn a_redis_outage_fails_closed_for_sessions_and_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let settings = with_redis(base_settings(), &redis);
    let a = Instance::start(settings).await;
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    assert_eq!(
        reqwest::get(format!("{}readyz", a.url))
            .await
            .unwrap()
            .status(),
        200
    );

    redis.stop().await;
    let started = Instant::now();
    let me = a.get(&browser, "api/me").await;
    assert_eq!(
        me.status(),
        503,
        "fail closed, never logged out or in by accident"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    let body: Value = me.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("session store"),
        "{body}"
    );
    assert_eq!(a.token(&browser).await.status(), 503);
    // A new visitor's login fails when the session is saved (inside the session layer):
    // still a 503 JSON, not a bare 500.
    let fresh = cookie_client();
    let login = a
        .post(
            &fresh,
            "api/login",
            json!({"username": "bob", "password": "bob-demo"}),
        )
        .await;
    assert_eq!(login.status(), 503);
    assert!(login.json::<Value>().await.unwrap()["error"].is_string());
    let ready = reqwest::get(format!("{}readyz", a.url)).await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["ok"], false);
    assert_eq!(
        reqwest::get(format!("{}healthz", a.url))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(a.metric("tbff_redis_errors_total{op=\"session\"}").await >= 3.0);
    assert_eq!(a.metric("tbff_redis_up").await, 0.0);

    redis.restart().await;
    // The connection comes back on its own; this Redis kept nothing, so the user logs in again.
    let mut status = 0;
    for _ in 0..50 {
        status = a.get(&browser, "api/me").await.status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    assert_eq!(a.token(&browser).await.status(), 200);
    assert_eq!(
        reqwest::get(format!("{}readyz", a.url))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(a.metric("tbff_redis_up").await, 1.0);
    a.stop().await;
}

#[tokio::test]
async fn a_session_that_cannot_be_saved_is_a_503_json_not_a_bare_500() {
    let redis = RedisServer::start().await;
    let a = Instance::start(with_redis(base_settings(), &redis)).await;
    // Redis out of memory: reads and deletes work, writes fail. The login handler succeeds and
    // the session layer's save after it fails.
    assert_eq!(
        redis.command(&["CONFIG", "SET", "maxmemory", "1"]).await,
        "+OK"
    );
    let browser = cookie_client();
    let login = a
        .post(
            &browser,
            "api/login",
            json!({"username": "bob", "password": "bob-demo"}),
        )
        .await;
    assert_eq!(login.status(), 503);
    assert!(
        header(&login, "set-cookie").is_none(),
        "no cookie for a session that was not saved"
    );
    let body: Value = login.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("session store"),
        "{body}"
    );
    assert_eq!(a.metric("tbff_session_store_errors_total").await, 1.0);
    assert_eq!(
        redis.command(&["CONFIG", "SET", "maxmemory", "0"]).await,
        "+OK"
    );
    assert_eq!(a.login(&browser, "bob", "bob-demo").await, 200);
    assert_eq!(a.get(&browser, "api/me").await.status(), 200);
    a.stop().await;
}

#[tokio::test]
async fn limits_fail_open_or_closed_while_redis_is_down_as_configured() {
    let mut redis = RedisServer::start().await;
    let limits = |mode: &str| format!("user.token = \"100/s\"\non_redis_error = \"{mode}\"");
    // Sessions in memory, limits in Redis: only the limiter sees the outage.
    let shared = |mode: &str| {
        let mut s = with_limits(with_redis(base_settings(), &redis), &limits(mode));
        s.session_store = tinybird_bff::config::SessionStoreKind::Memory;
        s
    };
    let (open, closed) = (
        Instance::start(shared("open")).await,
        Instance::start(shared("closed")).await,
    );
    let (x, y) = (cookie_client(), cookie_client());
    assert_eq!(open.login(&x, "alice", "alice-demo").await, 200);
    assert_eq!(closed.login(&y, "alice", "alice-demo").await, 200);
    redis.stop().await;
    let r = open.token(&x).await;
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "x-ratelimit-limit").is_none(),
        "unlimited while open"
    );
    let r = closed.token(&y).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("rate limiting"),
        "{body}"
    );
    assert!(
        open.metric("tbff_redis_errors_total{op=\"ratelimit\"}")
            .await
            >= 1.0
    );
    redis.restart().await;
    let mut status = 0;
    for _ in 0..50 {
        status = closed.token(&y).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "recovers when Redis returns");
    open.stop().await;
    closed.stop().await;
}
