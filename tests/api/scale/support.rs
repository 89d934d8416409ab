//! Test support for scale-out: a real `redis-server` on a free port that can be stopped and
//! restarted, BFF instances sharing it, a metrics scraper and a slow fake upstream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tinybird_bff::config::{SessionStoreKind, Settings};
use tinybird_bff::redis::RedisSettings;
use tinybird_bff::run::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts a throwaway Redis (no persistence) on a free port.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need it installed, e.g. \
                     `apt-get install -y redis-server` (scripts/test installs it)"
                )
            });
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    async fn ping(&self) -> bool {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }

    /// Sends one command and returns the first line of the reply (`+OK`, `-ERR ...`).
    pub async fn command(&self, parts: &[&str]) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let mut request = format!("*{}\r\n", parts.len());
        for p in parts {
            request.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        s.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while s.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_owned()
    }

    /// Kills the server (an outage, not a clean shutdown).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// Demo settings on free ports, sessions in memory, audit off, admin listener on.
pub fn base_settings() -> Settings {
    let options = tinybird_bff::demo::DemoOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        local_listen: Some("127.0.0.1:0".parse().unwrap()),
        token_ttl: None,
    };
    let mut s = tinybird_bff::demo::settings(&options).unwrap();
    s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    s.audit = tinybird_bff::audit::AuditOutput::Off;
    s
}

/// Sessions and limits in `redis`.
pub fn with_redis(mut s: Settings, redis: &RedisServer) -> Settings {
    let mut r = RedisSettings::new(&redis.url()).unwrap();
    r.timeout = Duration::from_millis(500);
    s.redis = Some(r);
    s.session_store = SessionStoreKind::Redis;
    s
}

/// Sets `[limits]` from TOML text.
pub fn with_limits(mut s: Settings, limits_toml: &str) -> Settings {
    let raw: tinybird_bff::ratelimit::LimitsConfig = toml::from_str(limits_toml).unwrap();
    let names = ["tenant-dashboards".to_owned(), "platform-admin".to_owned()];
    s.limits = tinybird_bff::ratelimit::config::validate(&raw, &names).unwrap();
    s
}

/// One running BFF instance.
pub struct Instance {
    /// Base URL with a trailing slash.
    pub url: String,
    /// Admin listener base URL with a trailing slash.
    pub admin: String,
    running: Option<Running>,
}

impl Instance {
    pub async fn start(settings: Settings) -> Self {
        let running = tinybird_bff::run::start(settings, false).await.unwrap();
        Self {
            url: running.public_url.to_string(),
            admin: format!("http://{}/", running.bound.admin.expect("admin listener")),
            running: Some(running),
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    /// Puts an `edit`ed copy of the running settings in force, as a reload of the files would.
    pub fn reload(&self, edit: impl FnOnce(&mut Settings)) {
        let running = self.running.as_ref().expect("running");
        let mut next = running.settings();
        edit(&mut next);
        running.reload(Ok(next)).expect("the reload applies");
    }

    pub async fn post(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        client
            .post(format!("{}{path}", self.url))
            .header("x-bff-csrf", "1")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, client: &reqwest::Client, user: &str, password: &str) -> u16 {
        self.post(
            client,
            "api/login",
            json!({"username": user, "password": password}),
        )
        .await
        .status()
        .as_u16()
    }

    pub async fn token(&self, client: &reqwest::Client) -> reqwest::Response {
        self.post(client, "api/token", Value::Null).await
    }

    /// Scrapes `/metrics` into `(series, value)` pairs.
    pub async fn metrics(&self) -> Vec<(String, f64)> {
        let text = reqwest::get(format!("{}metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// One series' value, 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .await
            .into_iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| v)
    }
}

/// A fake Tinybird host whose every answer takes `delay`.
pub async fn slow_upstream(delay: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move || async move {
        tokio::time::sleep(delay).await;
        "slow ok"
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
