//! Usage from every workspace (`crate::usage`, docs/usage.md, "Several workspaces"): the demo's
//! two regions, each on a local endpoint of its own read with its own usage token, behind two
//! instances sharing one Redis. Each workspace has its own lease and cursor; the admin report
//! lists every tenant with its workspace; a US tenant's budget holds on the direct path.

use secrecy::SecretString;
use serde_json::Value;
use tinybird_bff::config::{Settings, TinybirdHost};
use tinybird_local::LocalConfig;
use tinybird_local::auth::{StaticScope, StaticToken};

use crate::helpers::{LocalServer, cookie_client, spawn_local_with};
use crate::scale::support::{Instance, RedisServer, base_settings, with_redis};
use crate::usage::{direct, eventually, find};

/// The demo's two workspaces (eu, us), each on a local endpoint started here (so both
/// instances read the same records), each with its own usage token; polled every 200 ms.
async fn two_workspaces() -> (Settings, Vec<LocalServer>) {
    let mut s = base_settings();
    let mut locals = Vec::new();
    let usage = s.usage.as_mut().expect("the demo reads usage");
    usage.poll_interval = std::time::Duration::from_millis(200);
    for (ws, source) in s.tinybird.workspaces.iter_mut().zip(&mut usage.sources) {
        assert_eq!(ws.name, source.workspace);
        let token = format!("p.usage-{}", ws.name);
        let mut config = LocalConfig::new(ws.signing_key.clone());
        config.workspace_id = Some(ws.workspace_id.clone());
        config.static_tokens.push(StaticToken {
            name: format!("usage-{}", ws.name),
            token: SecretString::from(token.clone()),
            scopes: vec![StaticScope::DatasourcesRead(
                "tinybird.pipe_stats_rt".into(),
            )],
        });
        let local = spawn_local_with(config).await;
        ws.host = TinybirdHost::Remote(local.url.parse().unwrap());
        source.token = SecretString::from(token);
        locals.push(local);
    }
    (s, locals)
}

#[tokio::test]
async fn every_workspace_is_read_each_tenant_shows_its_workspace_and_budgets_hold_in_both() {
    let redis = RedisServer::start().await;
    let (mut settings, _locals) = two_workspaces().await;
    let globex: tinybird_bff::usage::budget::Limits = toml::from_str("daily_requests = 4").unwrap();
    settings
        .usage
        .as_mut()
        .unwrap()
        .tenants
        .insert("globex".into(), globex);
    let settings = with_redis(settings, &redis);
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let (alice, bob, admin) = (cookie_client(), cookie_client(), cookie_client());
    assert_eq!(a.login(&alice, "alice", "alice-demo").await, 200);
    assert_eq!(b.login(&bob, "bob", "bob-demo").await, 200);
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    let (alice_token, bob_token): (Value, Value) = (
        a.token(&alice).await.json().await.unwrap(),
        b.token(&bob).await.json().await.unwrap(),
    );
    assert_ne!(alice_token["host"], bob_token["host"], "two workspaces");
    for _ in 0..2 {
        assert_eq!(direct(&alice_token).await, 200);
    }
    // bob's tenant lives in the US workspace; its calls never touch the BFF.
    for _ in 0..5 {
        assert_eq!(direct(&bob_token).await, 200);
    }
    let report = eventually("both tenants in the report", || async {
        let r: Value = a
            .get(&admin, "api/admin/usage?window=15m")
            .await
            .json()
            .await
            .unwrap();
        let acme = find(&r["tenants"], "tenant", "acme")?;
        let globex = find(&r["tenants"], "tenant", "globex")?;
        (acme["direct"] == 2 && globex["direct"] == 5).then(|| r.clone())
    })
    .await;
    let acme = find(&report["tenants"], "tenant", "acme").unwrap();
    let globex = find(&report["tenants"], "tenant", "globex").unwrap();
    assert_eq!(acme["workspaces"], serde_json::json!(["eu"]));
    assert_eq!(globex["workspaces"], serde_json::json!(["us"]));
    assert_eq!(find(&globex["users"], "user", "bob").unwrap()["direct"], 5);
    for ws in ["eu", "us"] {
        assert_eq!(report["workspaces"][ws]["ok"], true, "{report}");
    }
    assert_eq!(report["source"]["ok"], true);
    // One lease per workspace: the first keeps the one-workspace key, the other its own.
    assert_eq!(redis.command(&["EXISTS", "tbff:usage:leader"]).await, ":1");
    assert_eq!(
        redis.command(&["EXISTS", "tbff:usage:leader:us"]).await,
        ":1"
    );
    // Over its budget through direct calls alone: refused on both instances.
    let refused = eventually("globex's budget to hold", || async {
        let r = b.token(&bob).await;
        (r.status() == 429).then_some(r)
    })
    .await;
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("globex"), "{body}");
    assert_eq!(a.token(&bob).await.status(), 429);
    assert_eq!(a.token(&alice).await.status(), 200, "acme has no budget");
    a.stop().await;
    b.stop().await;
}
