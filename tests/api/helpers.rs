//! Test servers and clients: everything binds 127.0.0.1:0 and stops when dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tinybird_bff::tinybird::AdminToken;
use tinybird_bff::tinybird::claims::{Claims, Limits, Scope, sign};
use tinybird_local::{LocalConfig, LocalEndpoint};
use tokio::sync::oneshot;

/// The signing key every test server uses (shaped like a real admin token).
pub const WORKSPACE: &str = "7d1f3c52-0000-4000-8000-000000000001";

pub fn admin_key() -> AdminToken {
    // Fixed, so failures are reproducible; `generate` is covered by unit tests.
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"u": WORKSPACE, "id": "test", "host": "local"}).to_string());
    AdminToken::new(format!("p.{payload}.dGVzdC1zaWduYXR1cmU")).unwrap()
}

pub fn admin_key_text() -> String {
    secrecy::ExposeSecret::expose_secret(admin_key().secret()).to_owned()
}

/// A running local endpoint.
pub struct LocalServer {
    pub url: String,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the local endpoint with the embedded pipes and generated data.
pub async fn spawn_local() -> LocalServer {
    spawn_local_with(LocalConfig::new(admin_key())).await
}

/// Starts the local endpoint with a custom config.
pub async fn spawn_local_with(config: LocalConfig) -> LocalServer {
    spawn_local_at(config, "127.0.0.1:0".parse().unwrap()).await
}

/// Starts the local endpoint on `addr` (e.g. where a stopped one was: a rotated key).
pub async fn spawn_local_at(config: LocalConfig, addr: SocketAddr) -> LocalServer {
    let (endpoint, problems) = LocalEndpoint::new(config).expect("local endpoint starts");
    assert!(problems.is_empty(), "pipe problems: {problems:?}");
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(endpoint.serve(listener, async move {
        let _ = rx.await;
    }));
    LocalServer {
        url: format!("http://{addr}"),
        addr,
        stop: Some(tx),
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JWT for `pipes` with `org_id` fixed (or none), valid for 10 minutes.
pub fn jwt_for(name: &str, pipes: &[&str], org: Option<&str>) -> String {
    let scopes = pipes
        .iter()
        .map(|p| {
            let mut fixed = serde_json::Map::new();
            if let Some(org) = org {
                fixed.insert("org_id".into(), json!(org));
            }
            Scope::pipe(*p, fixed)
        })
        .collect();
    sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: name.into(),
        exp: now() + 600,
        iat: Some(now()),
        scopes,
        limits: None,
    })
}

/// Signs arbitrary claims with the test key.
pub fn sign_claims(claims: Claims) -> String {
    sign(&claims, admin_key().secret())
}

/// Signs an arbitrary JSON payload (for malformed-claims tests) with `key`.
pub fn sign_raw(payload: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        payload,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

pub fn limits(rps: i64) -> Option<Limits> {
    Some(Limits { rps })
}

/// A plain client (no cookies, no redirects).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A running BFF + local endpoint, from the demo settings, with a cookie-keeping client.
pub struct TestApp {
    /// BFF base URL, with a trailing slash.
    pub url: String,
    /// The local endpoint's base URL.
    pub tinybird: String,
    /// The BFF's bound socket (differs from `url` when the public URL is not local).
    pub addr: SocketAddr,
    /// Cookie-keeping client for the BFF.
    pub client: reqwest::Client,
    running: Option<tinybird_bff::run::Running>,
}

impl TestApp {
    /// The running servers (workspaces, reload).
    pub fn running(&self) -> &tinybird_bff::run::Running {
        self.running.as_ref().expect("running until stopped")
    }

    pub fn running_mut(&mut self) -> &mut tinybird_bff::run::Running {
        self.running.as_mut().expect("running until stopped")
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }

    /// POST to the BFF with the CSRF header and a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("x-bff-csrf", "1")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// GET on the BFF with another client `c` (e.g. one from [`Self::session_for`]).
    pub async fn get_with(&self, c: &reqwest::Client, path: &str) -> reqwest::Response {
        c.get(format!("{}{path}", self.url)).send().await.unwrap()
    }

    pub async fn login(&self, user: &str, password: &str) -> reqwest::Response {
        self.post("api/login", json!({"username": user, "password": password}))
            .await
    }

    /// Logs in as a demo user (`<id>-demo`), asserting success.
    pub async fn login_as(&self, user: &str) {
        let r = self.login(user, &format!("{user}-demo")).await;
        assert_eq!(
            r.status(),
            200,
            "login as {user}: {}",
            r.text().await.unwrap()
        );
    }

    /// A separate cookie client logged in as demo user `user` (`<id>-demo`), asserting success;
    /// this app's own client is left as it is.
    pub async fn session_for(&self, user: &str) -> reqwest::Client {
        let c = cookie_client();
        let r = c
            .post(format!("{}api/login", self.url))
            .header("x-bff-csrf", "1")
            .json(&json!({"username": user, "password": format!("{user}-demo")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login as {user}");
        c
    }

    /// `POST /api/token` with a logged-in client `c`: the JWT for direct calls.
    pub async fn token_for(&self, c: &reqwest::Client) -> String {
        let r = c
            .post(format!("{}api/token", self.url))
            .header("x-bff-csrf", "1")
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {body}"))
            .to_owned()
    }

    /// `POST /api/token` → JSON.
    pub async fn token(&self) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}api/token", self.url))
            .header("x-bff-csrf", "1")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

/// A fresh client that keeps cookies.
pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The demo config with one workspace, written as a lone `[tinybird]` (the demo has two
/// regions): the shape most deployments use, read with `$TINYBIRD_SIGNING_KEY`.
pub fn single_workspace_config() -> String {
    let config = tinybird_bff::demo::CONFIG;
    let start = config
        .find("\n[tinybird]\n")
        .expect("the demo config has [tinybird]");
    let end = config
        .find("\n[token]\n")
        .expect("the demo config has [token]");
    format!(
        "{}\n[tinybird]\nhost = \"local\"\nlocal_listen = \"127.0.0.1:7181\"\n{}",
        &config[..start],
        &config[end..]
    )
}

/// Keeps only the demo's first workspace (EU), so every demo user is in it: most tests are
/// about one workspace; tests/api/workspaces.rs runs both.
pub fn one_workspace(settings: &mut tinybird_bff::config::Settings) {
    settings.tinybird.workspaces.truncate(1);
    settings.tinybird.rule = None;
    if let Some(usage) = settings.usage.as_mut() {
        usage.sources.truncate(1);
    }
}

/// Starts the demo's BFF and local endpoint on free ports, sessions in memory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Same, after `tweak` adjusts the settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut tinybird_bff::config::Settings)) -> TestApp {
    let options = tinybird_bff::demo::DemoOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        local_listen: Some("127.0.0.1:0".parse().unwrap()),
        token_ttl: None,
    };
    let mut settings = tinybird_bff::demo::settings(&options).unwrap();
    one_workspace(&mut settings);
    // Usage polling would add `/v0/sql` calls to fake upstreams that count their calls;
    // tests of usage (tests/api/usage.rs) start instances of their own.
    settings.usage = None;
    tweak(&mut settings);
    spawn_settings(settings).await
}

/// Starts the demo as it is, with both regions (EU and US workspaces, an endpoint each).
pub async fn spawn_regions(tweak: impl FnOnce(&mut tinybird_bff::config::Settings)) -> TestApp {
    let options = tinybird_bff::demo::DemoOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        local_listen: Some("127.0.0.1:0".parse().unwrap()),
        token_ttl: None,
    };
    let mut settings = tinybird_bff::demo::settings(&options).unwrap();
    tweak(&mut settings);
    spawn_settings(settings).await
}

/// Starts a BFF with `settings`.
pub async fn spawn_settings(settings: tinybird_bff::config::Settings) -> TestApp {
    let running = tinybird_bff::run::start(settings, false).await.unwrap();
    TestApp {
        url: running.public_url.to_string(),
        tinybird: running.tinybird_url.clone(),
        addr: running.bound.app,
        client: cookie_client(),
        running: Some(running),
    }
}
