//! Usage across both paths and budgets (`crate::usage`), against the real local endpoint:
//! direct calls with a user's JWT (never touching the BFF) show up under their tenant and user
//! next to proxied ones, a tenant spending its budget through direct calls alone is refused
//! tokens and proxy calls on every instance sharing one Redis, and an unreadable usage record
//! is reported without blocking minting.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::Value;
use tinybird_bff::config::{Settings, TinybirdHost};
use tinybird_local::LocalConfig;
use tinybird_local::auth::{StaticScope, StaticToken};

use crate::helpers::{LocalServer, cookie_client, spawn_local_with};
use crate::scale::support::{Instance, RedisServer, base_settings, with_redis};

const USAGE_TOKEN: &str = "p.usage-test-token";

/// Demo settings polling every 200 ms, reading a local endpoint of their own (started here,
/// so several instances read one record), with `USAGE_TOKEN` scoped to `pipe_stats_rt`.
pub(crate) async fn usage_settings() -> (Settings, LocalServer) {
    let mut s = base_settings();
    crate::helpers::one_workspace(&mut s);
    let mut config = LocalConfig::new(s.tinybird.first_mut().signing_key.clone());
    config.workspace_id = Some(s.tinybird.first_mut().workspace_id.clone());
    config.static_tokens.push(StaticToken {
        name: "TINYBIRD_USAGE_TOKEN".into(),
        token: SecretString::from(USAGE_TOKEN),
        scopes: vec![StaticScope::DatasourcesRead(
            "tinybird.pipe_stats_rt".into(),
        )],
    });
    let local = spawn_local_with(config).await;
    s.tinybird.first_mut().host = TinybirdHost::Remote(local.url.parse().unwrap());
    let usage = s.usage.as_mut().expect("the demo reads usage");
    usage.sources[0].token = SecretString::from(USAGE_TOKEN);
    usage.poll_interval = Duration::from_millis(200);
    (s, local)
}

/// Polls `probe` until it returns `Some`, for at most 15 s (the poll interval is 200 ms).
pub(crate) async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A direct call to Tinybird with a user's JWT: the BFF is not involved.
pub(crate) async fn direct(minted: &Value) -> u16 {
    reqwest::Client::new()
        .get(format!(
            "{}/v0/pipes/top_products.json",
            minted["host"].as_str().unwrap()
        ))
        .bearer_auth(minted["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub(crate) fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|t| t[key] == value)
}

#[tokio::test]
async fn direct_calls_appear_under_tenant_and_user_next_to_proxy_calls() {
    let (settings, _local) = usage_settings().await;
    let a = Instance::start(settings).await;
    let alice = cookie_client();
    assert_eq!(a.login(&alice, "alice", "alice-demo").await, 200);
    let minted: Value = a.token(&alice).await.json().await.unwrap();
    for _ in 0..3 {
        assert_eq!(direct(&minted).await, 200);
    }
    for _ in 0..2 {
        let r = a.get(&alice, "api/pipes/top_products.json").await;
        assert_eq!(r.status(), 200);
    }
    let admin = cookie_client();
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    assert_eq!(
        a.get(&admin, "api/admin/usage?window=2h").await.status(),
        400
    );
    let report = eventually("alice's calls in the usage report", || async {
        let r: Value = a
            .get(&admin, "api/admin/usage?window=15m")
            .await
            .json()
            .await
            .unwrap();
        let acme = find(&r["tenants"], "tenant", "acme")?;
        let user = find(&acme["users"], "user", "alice")?;
        (user["direct"] == 3 && user["proxy"] == 2).then(|| r.clone())
    })
    .await;
    assert_eq!(report["window"], "15m");
    assert!(report["generated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(report["source"]["ok"], true);
    let acme = find(&report["tenants"], "tenant", "acme").unwrap();
    for key in [
        "requests",
        "direct",
        "proxy",
        "errors",
        "rate_limited",
        "read_bytes",
        "read_rows",
        "p50_ms",
        "p95_ms",
        "pipes",
        "users",
        "budget",
    ] {
        assert!(acme.get(key).is_some(), "tenant key {key} missing: {acme}");
    }
    assert_eq!(
        (acme["requests"].as_u64(), acme["errors"].as_u64()),
        (Some(5), Some(0))
    );
    assert!(acme["read_bytes"].as_u64().unwrap() > 0);
    assert!(acme["p95_ms"].as_f64().unwrap() >= acme["p50_ms"].as_f64().unwrap());
    let pipe = find(&acme["pipes"], "pipe", "top_products").unwrap();
    assert_eq!(pipe["requests"], 5);
    // The poller's own SQL reads are Tinybird rows too, under a name the BFF never minted.
    let unknown = find(&report["tenants"], "tenant", "(unknown)").unwrap();
    assert!(
        find(&unknown["users"], "user", "TINYBIRD_USAGE_TOKEN").is_some(),
        "{unknown}"
    );
    // Prometheus: per-tenant series, by path.
    let series = "tbff_tinybird_requests_total{tenant=\"acme\",path=\"direct\"}";
    assert_eq!(a.metric(series).await, 3.0);
    a.stop().await;
}

#[tokio::test]
async fn a_tenant_spending_its_budget_directly_is_refused_on_every_instance() {
    let redis = RedisServer::start().await;
    let (mut settings, _local) = usage_settings().await;
    settings = with_redis(settings, &redis);
    let usage = settings.usage.as_mut().unwrap();
    usage.tenants.get_mut("initech").unwrap().daily_requests = Some(4);
    usage.near = 0.5;
    usage.near_ttl = Duration::from_secs(30);
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let (carol, alice) = (cookie_client(), cookie_client());
    assert_eq!(a.login(&carol, "carol", "carol-demo").await, 200);
    assert_eq!(b.login(&alice, "alice", "alice-demo").await, 200);
    let minted: Value = a.token(&carol).await.json().await.unwrap();
    assert_eq!(
        minted["expires_in"], 600,
        "well within budget: the usual lifetime"
    );
    for _ in 0..2 {
        assert_eq!(direct(&minted).await, 200);
    }
    // Half the budget spent: whichever instance mints, the token is shorter.
    let near: Value = eventually("a shorter token near the budget", || async {
        let t: Value = b.token(&carol).await.json().await.ok()?;
        (t["expires_in"].as_i64()? <= 30).then_some(t)
    })
    .await;
    assert_eq!(near["expires_in"], 30);
    for _ in 0..2 {
        assert_eq!(direct(&minted).await, 200);
    }
    let refused = eventually("a 429 over budget", || async {
        let r = a.token(&carol).await;
        (r.status() == 429).then_some(r)
    })
    .await;
    let retry: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono::Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(
        (retry - (midnight - now).num_seconds()).abs() <= 5,
        "resets at UTC midnight: {retry}"
    );
    let body: Value = refused.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("initech") && message.contains("daily_requests"),
        "{message}"
    );
    // The other instance and the proxy refuse too; other tenants are unaffected.
    assert_eq!(b.token(&carol).await.status(), 429);
    let proxied = b.get(&carol, "api/pipes/top_products.json").await;
    assert_eq!(proxied.status(), 429);
    assert!(proxied.headers().contains_key("retry-after"));
    assert_eq!(a.token(&alice).await.status(), 200);
    assert_eq!(
        b.get(&alice, "api/pipes/top_products.json").await.status(),
        200
    );
    // Carol's page can show why.
    let mine: Value = a
        .get(&carol, "api/usage/budget")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["budget"]["standing"]["state"], "over");
    // One warning at each threshold (50%, 100%), counted once across the instances.
    let series = "tbff_budget_warnings_total{tenant=\"initech\",budget=\"daily_requests\"}";
    assert_eq!(a.metric(series).await + b.metric(series).await, 2.0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_refused_usage_token_shows_on_readyz_and_never_blocks_minting() {
    let (mut settings, _local) = usage_settings().await;
    settings.usage.as_mut().unwrap().sources[0].token = SecretString::from("p.not-a-usage-token");
    let a = Instance::start(settings).await;
    let readyz: Value = eventually("the usage check failing", || async {
        let r = reqwest::get(format!("{}readyz", a.admin)).await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        (body["checks"]["usage"]["ok"] == false
            && body["checks"]["usage"]["detail"].as_str()?.contains("403"))
        .then(|| {
            assert_eq!(status, 200, "ready: usage is reported, not required");
            body
        })
    })
    .await;
    assert!(!readyz.to_string().contains("not-a-usage-token"));
    let carol = cookie_client();
    assert_eq!(a.login(&carol, "carol", "carol-demo").await, 200);
    assert_eq!(
        a.token(&carol).await.status(),
        200,
        "budgets fail open by default"
    );
    let admin = cookie_client();
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    let report: Value = a.get(&admin, "api/admin/usage").await.json().await.unwrap();
    assert_eq!(report["source"]["ok"], false);
    assert!(
        report["source"]["error"]
            .as_str()
            .unwrap()
            .contains("pipe_stats_rt")
    );
    a.stop().await;
}
