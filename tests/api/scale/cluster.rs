//! Redis Cluster: three masters started by the test (`redis-server --cluster-enabled yes`,
//! joined with `redis-cli --cluster create`), two BFF instances sharing sessions, logout
//! everywhere and limits through it. Every key one command or script uses together carries one
//! hash tag, so the Cluster never answers `CROSSSLOT`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tinybird_bff::config::SessionStoreKind;
use tinybird_bff::redis::RedisSettings;
use tokio::process::{Child, Command};

use super::sentinel_support::query;
use super::support::{Instance, base_settings, with_limits};
use crate::helpers::cookie_client;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three cluster-enabled masters, no replicas, killed on drop.
struct Cluster {
    dir: PathBuf,
    ports: Vec<u16>,
    _children: Vec<Child>,
}

impl Cluster {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-cluster-{}", uuid::Uuid::new_v4()));
        let (mut ports, mut children) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            // The cluster bus listens on port + 10000: keep both free-ish by picking low ports.
            let port = loop {
                let p = free_port();
                if p < 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
                    break p;
                }
            };
            let data = dir.join(port.to_string());
            std::fs::create_dir_all(&data).unwrap();
            let port_s = port.to_string();
            children.push(
                Command::new("redis-server")
                    .args(["--port", &port_s, "--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes", "--dir", data.to_str().unwrap()])
                    .args(["--save", "", "--appendonly", "no"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("redis-server (scripts/test installs it)"),
            );
            ports.push(port);
        }
        for &port in &ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while query::<String>(port, &["PING"]).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server on {port} did not start"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli (scripts/test installs redis-server, which brings it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for &port in &ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !query::<String>(port, &["CLUSTER", "INFO"])
                .await
                .is_ok_and(|i| i.contains("cluster_state:ok"))
            {
                assert!(Instant::now() < deadline, "the cluster did not form");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Self {
            dir,
            ports,
            _children: children,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn two_instances_share_sessions_logout_and_limits_through_a_cluster() {
    let cluster = Cluster::start().await;
    // One seed node is enough: the client discovers the others.
    let mut redis =
        RedisSettings::new(&format!("redis+cluster://127.0.0.1:{}", cluster.ports[0])).unwrap();
    redis.timeout = Duration::from_millis(500);
    let mut settings = with_limits(
        base_settings(),
        "user.token = \"1/m burst 2\"\ntenant.proxy = \"1/m burst 3\"",
    );
    settings.redis = Some(redis);
    settings.session_store = SessionStoreKind::Redis;
    settings.throttle.max_failures = 2;
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    assert_eq!(b.get(&browser, "api/me").await.status(), 200, "one session");
    // The user's and the tenant's buckets go through one script: one slot, counted once.
    let tokens = [
        a.token(&browser).await.status().as_u16(),
        b.token(&browser).await.status().as_u16(),
        a.token(&browser).await.status().as_u16(),
    ];
    assert_eq!(tokens, [200, 200, 429], "one user limit for both instances");
    let mut proxied = Vec::new();
    for i in 0..4 {
        let at = if i % 2 == 0 { &a } else { &b };
        proxied.push(
            at.get(&browser, "api/pipes/top_products.json")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(proxied, [200, 200, 200, 429], "one tenant limit");
    // Failed logins lock the account on both instances (the counter and the lock: one slot).
    let mallory = cookie_client();
    assert_eq!(a.login(&mallory, "bob", "wrong").await, 401);
    assert_eq!(b.login(&mallory, "bob", "wrong").await, 401);
    assert_eq!(
        b.login(&mallory, "bob", "bob-demo").await,
        429,
        "locked everywhere"
    );
    // The keys are spread over the masters, each call's keys in one slot.
    let mut per_node = Vec::new();
    for &port in &cluster.ports {
        let keys: Vec<String> = query(port, &["KEYS", "tbff:*"]).await.unwrap();
        per_node.push(keys);
    }
    let all: Vec<&String> = per_node.iter().flatten().collect();
    assert!(
        all.iter().any(|k| k.starts_with("tbff:session:"))
            && all
                .iter()
                .any(|k| k.starts_with("tbff:rl:{acme}:token:user:alice"))
            && all
                .iter()
                .any(|k| k.starts_with("tbff:rl:{acme}:proxy:tenant:acme"))
            && all.iter().any(|k| k.starts_with("tbff:login:{")),
        "{per_node:?}"
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
    assert_eq!(
        a.metric("tbff_redis_errors_total{op=\"ratelimit\"}").await,
        0.0
    );
    a.stop().await;
    b.stop().await;
}
