//! Visibility and lifecycle: metrics after a known sequence, the usage report, the audit
//! log, readiness, and draining in-flight requests on shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tinybird_bff::config::TinybirdHost;

use super::support::{Instance, base_settings, slow_upstream, with_limits};
use crate::helpers::cookie_client;

#[tokio::test]
async fn metrics_and_usage_count_a_known_sequence() {
    let a = Instance::start(with_limits(
        base_settings(),
        r#"user.token = "1/m burst 2""#,
    ))
    .await;
    let alice = cookie_client();
    assert_eq!(a.login(&alice, "alice", "wrong").await, 401);
    assert_eq!(a.login(&alice, "alice", "alice-demo").await, 200);
    let statuses: Vec<u16> = futures_util::future::join_all((0..3).map(|_| a.token(&alice)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        a.post(&alice, "api/logout", Value::Null).await.status(),
        204
    );
    let admin = cookie_client();
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    assert_eq!(a.token(&admin).await.status(), 200);
    for _ in 0..2 {
        let r = a.get(&admin, "api/pipes/top_products.json?limit=1").await;
        assert_eq!(r.status(), 200);
    }

    let metrics = a.metrics().await;
    let value = |series: &str| {
        metrics
            .iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| *v)
    };
    assert_eq!(value("tbff_logins_total{outcome=\"ok\"}"), 2.0);
    assert_eq!(value("tbff_logins_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(value("tbff_tokens_minted_total{tenant=\"acme\"}"), 3.0);
    assert_eq!(
        value("tbff_rate_limited_total{scope=\"token\",per=\"user\",tenant=\"acme\"}"),
        1.0
    );
    assert_eq!(value("tbff_logouts_total"), 1.0);
    assert_eq!(
        value("tbff_proxy_requests_total{tenant=\"acme\",pipe=\"top_products\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        value("tbff_upstream_latency_seconds_count{pipe=\"top_products\"}"),
        2.0
    );

    // Usage: admins only, per tenant per minute, the current minute last.
    assert_eq!(a.get(&alice, "api/admin/usage").await.status(), 401);
    assert_eq!(viewer_usage_status(&a).await, 403);
    let report: Value = a.get(&admin, "api/admin/usage").await.json().await.unwrap();
    let usage = &report["instance"];
    assert_eq!(usage["step_seconds"], 60);
    assert_eq!(usage["minutes"].as_array().unwrap().len(), 60);
    let acme = &usage["tenants"][0];
    assert_eq!(acme["tenant"], "acme");
    let sum = |key: &str| {
        acme[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(
        (sum("tokens"), sum("rate_limited"), sum("proxy_requests")),
        (3, 1, 2)
    );
    a.stop().await;
}

async fn viewer_usage_status(a: &Instance) -> u16 {
    let viewer = cookie_client();
    assert_eq!(a.login(&viewer, "bob", "bob-demo").await, 200);
    a.get(&viewer, "api/admin/usage").await.status().as_u16()
}

#[tokio::test]
async fn the_audit_log_has_one_line_per_event_with_the_hash_never_the_token() {
    let path = std::env::temp_dir().join(format!("tbff-audit-{}.jsonl", uuid::Uuid::new_v4()));
    let mut settings = base_settings();
    settings.audit = tinybird_bff::audit::AuditOutput::File(path.clone());
    let a = Instance::start(settings).await;
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "nope").await, 401);
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    let minted: Value = a.token(&browser).await.json().await.unwrap();
    let token = minted["token"].as_str().unwrap();
    assert_eq!(
        a.post(&browser, "api/logout", Value::Null).await.status(),
        204
    );
    a.stop().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!text.contains(token), "the token itself is never written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["login.failed", "login", "token.minted", "logout"]);
    let t = &lines[2];
    assert_eq!(
        t["token_sha256"],
        hex::encode(Sha256::digest(token.as_bytes()))
    );
    assert_eq!(
        (t["user"].as_str(), t["tenant"].as_str()),
        (Some("alice"), Some("acme"))
    );
    assert_eq!(t["name"], minted["name"]);
    assert_eq!(t["exp"], minted["expires_at"]);
    assert_eq!(t["pipes"], minted["pipes"]);
    assert_eq!(t["fixed_params"]["top_products"], json!({"org_id": "acme"}));
    // SQL access is recorded with the row filter of each data source.
    let datasources = t["datasources"].as_object().map(|d| d.len()).unwrap_or(0);
    assert_eq!(
        datasources,
        minted["datasources"].as_array().map_or(0, Vec::len)
    );
    if let Some(filter) = t["datasources"]["orders"].as_str() {
        assert!(filter.contains("acme"), "{filter}");
    }
    assert!(t["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[0]["user"], "alice");
    assert_eq!(lines[0]["reason"], "password");
}

#[tokio::test]
async fn readiness_checks_the_upstream_and_shutdown_drains_in_flight_requests() {
    // A remote "Tinybird" that takes a second to answer: /readyz waits on it.
    let upstream = slow_upstream(Duration::from_millis(1_200)).await;
    let mut settings = base_settings();
    settings.tinybird.first_mut().host =
        TinybirdHost::Remote(format!("http://{upstream}/").parse().unwrap());
    let a = Instance::start(settings).await;
    let url = format!("{}readyz", a.url);
    let in_flight = tokio::spawn(async move {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (admin_url, app_url) = (a.admin.clone(), a.url.clone());
    let started = Instant::now();
    a.stop().await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "stop waited for the in-flight request"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["upstream"]["ok"], true);
    assert_eq!(body["checks"]["signing_key"]["ok"], true);
    // Stopped: nothing listens any more, on either listener.
    assert!(reqwest::get(format!("{app_url}healthz")).await.is_err());
    assert!(reqwest::get(format!("{admin_url}metrics")).await.is_err());
}

#[tokio::test]
async fn readiness_reports_an_unreachable_upstream() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = base_settings();
    settings.tinybird.first_mut().host =
        TinybirdHost::Remote(format!("http://127.0.0.1:{port}/").parse().unwrap());
    let a = Instance::start(settings).await;
    let r = reqwest::get(format!("{}readyz", a.admin)).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["upstream"]["ok"], false);
    assert_eq!(body["checks"]["session_store"]["ok"], true);
    a.stop().await;
}
