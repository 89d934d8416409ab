//! The offline demo: `cargo run --release` with no arguments.
//!
//! One process, three origins (like an app and two regions' Tinybird hosts): the BFF and an
//! embedded local endpoint per workspace (EU and US), each with a freshly generated signing
//! key, the embedded demo config and users.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::auth::users::UserDirectory;
use crate::config::{SessionStoreKind, Settings, TinybirdHost};
use crate::tinybird::AdminToken;

/// The demo config (also the documented example config).
pub const CONFIG: &str = include_str!("../demo/config.toml");
/// What the demo adds to [`CONFIG`]: usage read every 5 s, and a tiny budget for initech
/// (carol), so the admin page fills as users click and the 429 path is one click-fest away.
pub const USAGE: &str = r#"
[usage]
poll_interval = "5s"
[usage.tenants.initech]
daily_requests = 40
"#;

/// The demo users, with argon2id hashes of the passwords below.
pub const USERS: &str = include_str!("../demo/users.toml");
/// `(login, password, what they see)`, printed at start.
pub const LOGINS: &[(&str, &str, &str)] = &[
    ("alice", "alice-demo", "tenant acme, manages its API keys"),
    ("bob", "bob-demo", "tenant globex"),
    ("carol", "carol-demo", "tenant initech"),
    (
        "admin",
        "admin-demo",
        "tenant acme + the cross-tenant overview",
    ),
];

/// How long a demo login (or client) stays locked after too many wrong passwords.
pub const DEMO_LOCKOUT: Duration = Duration::from_secs(60);

/// Command-line overrides of the demo.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// BFF address (default 127.0.0.1:3000; a free port if taken).
    pub listen: Option<SocketAddr>,
    /// Local endpoint address (default 127.0.0.1:7181; a free port if taken).
    pub local_listen: Option<SocketAddr>,
    /// Token lifetime (default 10 minutes).
    pub token_ttl: Option<Duration>,
}

/// The demo's settings, with a generated key per workspace and sessions kept in memory.
pub fn settings(options: &DemoOptions) -> anyhow::Result<Settings> {
    let key = |_| {
        let key = AdminToken::generate(&uuid::Uuid::new_v4().to_string());
        secrecy::ExposeSecret::expose_secret(key.secret()).to_owned()
    };
    let (eu, us) = (key(()), key(()));
    // The usage token is a static token of the embedded endpoint, scoped to pipe_stats_rt.
    let usage_token = format!("p.usage-{}", uuid::Uuid::new_v4().simple());
    let env = move |name: &str| match name {
        "TINYBIRD_SIGNING_KEY_EU" => Some(eu.clone()),
        "TINYBIRD_SIGNING_KEY_US" => Some(us.clone()),
        "TINYBIRD_USAGE_TOKEN" => Some(usage_token.clone()),
        _ => None,
    };
    let users =
        UserDirectory::from_toml(USERS, "demo/users.toml").context("embedded demo users")?;
    let mut settings = Settings::from_toml(
        &format!("{CONFIG}{USAGE}"),
        "demo/config.toml",
        Path::new("."),
        &env,
        Some(users),
    )
    .map_err(|problems| {
        anyhow::anyhow!(
            "embedded demo config: {}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    // The demo's key changes every run, so its sessions would not outlive it anyway.
    settings.session_store = SessionStoreKind::Memory;
    // Its API keys live as long as the demo too: no file left behind.
    if let Some(keys) = &mut settings.keys {
        keys.store = crate::keys::StoreSettings::Sqlite(":memory:".into());
    }
    // Its logins are shared by everyone trying it: five typos lock one for a minute, not the
    // 15 minutes the example config (and a real deployment) uses.
    settings.throttle.lockout = DEMO_LOCKOUT;
    settings.client_throttle.lockout = DEMO_LOCKOUT;
    if let Some(addr) = options.listen {
        settings.listen = addr;
        let _ = settings.public_url.set_ip_host(addr.ip());
        let _ = settings.public_url.set_port(Some(addr.port()));
    }
    if let Some(addr) = options.local_listen {
        // The first region there, the second on the next port (or a free one with port 0).
        let next = SocketAddr::new(
            addr.ip(),
            addr.port()
                .checked_add(1)
                .filter(|_| addr.port() != 0)
                .unwrap_or(0),
        );
        for (ws, addr) in settings.tinybird.workspaces.iter_mut().zip([addr, next]) {
            ws.host = TinybirdHost::Local(addr);
        }
    }
    if let Some(ttl) = options.token_ttl {
        settings.token_ttl = ttl;
    }
    Ok(settings)
}

/// Runs the demo until Ctrl-C.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let fallback = options.listen.is_none();
    let settings = settings(&options)?;
    crate::run::run(settings, fallback, None, |running| {
        println!("tinybird-bff demo (offline; Ctrl-C stops it)");
        println!("app: {}", running.public_url);
        println!("tinybird: {}", running.tinybird_url);
        for (name, url) in &running.workspaces {
            println!("tinybird {name}: {url}");
        }
        println!("demo logins:");
        for (user, password, what) in LOGINS {
            println!("  {user:<6} / {password:<11} {what}");
        }
    })
    .await
}
