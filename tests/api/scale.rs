//! Scale-out and visibility: two instances sharing one real Redis (sessions, limits, login
//! throttling) here; Redis outages in `outage`; metrics, usage, the audit log, readiness and
//! graceful shutdown in `visibility`; Redis over TLS with an ACL user in `tls`; Redis Sentinel
//! (and a failover under load) in `sentinel`; Redis Cluster in `cluster`.
//!
//! Tests that need Redis start their own `redis-server` on a free port (see `support`).

mod cluster;
mod outage;
mod sentinel;
mod sentinel_support;
pub(crate) mod support;
mod tls;
mod visibility;

use serde_json::Value;
use support::{Instance, RedisServer, base_settings, with_limits, with_redis};

use crate::helpers::cookie_client;

/// A response header as a string.
fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_session_started_on_one_instance_works_and_ends_on_the_other() {
    let redis = RedisServer::start().await;
    let settings = with_redis(base_settings(), &redis);
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    // One browser, two instances behind a load balancer: the cookie goes to both.
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    let me = b.get(&browser, "api/me").await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["user"]["id"], "alice");
    let token = b.token(&browser).await;
    assert_eq!(token.status(), 200);
    let minted: Value = token.json().await.unwrap();
    assert!(minted["token"].as_str().unwrap().starts_with("eyJ"));
    let proxied = b.get(&browser, "api/pipes/top_products.json").await;
    assert_eq!(
        proxied.status(),
        200,
        "the proxy on B sees the session from A"
    );
    let rows: Value = proxied.json().await.unwrap();
    assert!(
        rows["data"].as_array().is_some_and(|d| !d.is_empty()),
        "{rows}"
    );
    // Logout on B ends the session everywhere, at once.
    assert_eq!(
        b.post(&browser, "api/logout", Value::Null).await.status(),
        204
    );
    assert_eq!(a.get(&browser, "api/me").await.status(), 401);
    assert_eq!(b.get(&browser, "api/me").await.status(), 401);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_per_user_limit_holds_across_instances() {
    let redis = RedisServer::start().await;
    let settings = with_limits(
        with_redis(base_settings(), &redis),
        r#"user.token = "1/m burst 5""#,
    );
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    let (mut allowed, mut remaining) = (0, Vec::new());
    for i in 0..16 {
        let instance = if i % 2 == 0 { &a } else { &b };
        let r = instance.token(&browser).await;
        assert_eq!(header(&r, "x-ratelimit-limit").as_deref(), Some("5"));
        match r.status().as_u16() {
            200 => {
                allowed += 1;
                remaining.push(header(&r, "x-ratelimit-remaining").unwrap());
            }
            429 => {
                let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
                let body: Value = r.json().await.unwrap();
                assert!(
                    body["error"].as_str().unwrap().contains("rate limit"),
                    "{body}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 5, "the burst, shared by both instances");
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    // Another user has their own bucket.
    let other = cookie_client();
    assert_eq!(b.login(&other, "bob", "bob-demo").await, 200);
    assert_eq!(a.token(&other).await.status(), 200);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_tenant_limit_is_shared_by_its_users_and_grants_can_override() {
    let redis = RedisServer::start().await;
    let settings = with_limits(
        with_redis(base_settings(), &redis),
        r#"
        tenant.token = "1/m burst 3"
        [grants.platform-admin]
        tenant.token = "off"
        "#,
    );
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let (alice, carol, admin) = (cookie_client(), cookie_client(), cookie_client());
    assert_eq!(a.login(&alice, "alice", "alice-demo").await, 200);
    assert_eq!(b.login(&carol, "carol", "carol-demo").await, 200);
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            if i % 2 == 0 { &a } else { &b }
                .token(&alice)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "acme's bucket holds 3");
    // Another tenant is unaffected; the platform admin (acme too) is exempt by grant.
    assert_eq!(b.token(&carol).await.status(), 200);
    for _ in 0..4 {
        assert_eq!(b.token(&admin).await.status(), 200);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn proxy_calls_are_limited_per_user_with_headers() {
    let a = Instance::start(with_limits(
        base_settings(),
        r#"user.proxy = "1/m burst 2""#,
    ))
    .await;
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = a.get(&browser, "api/pipes/top_products.json").await;
        seen.push((
            r.status().as_u16(),
            header(&r, "x-ratelimit-remaining"),
            header(&r, "retry-after").is_some(),
        ));
    }
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        seen,
        [
            (200, some("1"), false),
            (200, some("0"), false),
            (429, some("0"), true)
        ]
    );
    // Tokens are a separate scope, unlimited here.
    assert_eq!(a.token(&browser).await.status(), 200);
    a.stop().await;
}

#[tokio::test]
async fn failed_login_lockouts_are_shared_by_instances() {
    let redis = RedisServer::start().await;
    let mut settings = with_redis(base_settings(), &redis);
    settings.throttle.max_failures = 2;
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "wrong").await, 401);
    assert_eq!(b.login(&browser, "alice", "wrong").await, 401);
    // Locked on both, even with the right password.
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 429);
    assert_eq!(b.login(&browser, "alice", "alice-demo").await, 429);
    assert_eq!(b.login(&browser, "bob", "bob-demo").await, 200);
    a.stop().await;
    b.stop().await;
}
