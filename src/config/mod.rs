//! Settings: the TOML file, its secrets from the environment, and validation.
//!
//! One naming rule: `<Section>Config` is a table as written (serde, unknown keys refused),
//! `<Section>Settings` the same table validated. Each section has one validator returning
//! `Result<<Section>Settings, Vec<Problem>>`, next to the code that uses it (`[proxy]` in
//! `crate::proxy::config`, `[redis]` in `crate::redis`, ...) or in this folder ([`server`],
//! [`tinybird`], [`token`], [`session`], [`access`], [`ops`]). [`Settings::from_toml`] runs
//! every validator, so loading never stops at the first problem: `tinybird-bff check` prints
//! them all and `serve` refuses to start on the same list. Secrets never come from the TOML.

pub mod access;
pub mod cors;
pub mod ops;
pub mod problem;
pub mod server;
pub mod session;
pub mod shape;
pub mod tinybird;
pub mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub use crate::auth::store::SessionStoreKind;
use crate::auth::users::UserDirectory;
use crate::grants::{GrantConfig, Grants};
use crate::ratelimit::throttle::ThrottleConfig;
use crate::tinybird::mint::NameTemplate;
use access::{AccessInput, UsersConfig};
use problem::problem;
pub use problem::{EnvLookup, Problem};
use session::{LoginConfig, SessionConfig};
use tinybird::TinybirdConfig;
pub use tinybird::{KeySource, TinybirdHost, TinybirdSettings, WorkspaceSettings};
use token::TokenConfig;

/// The config file as written. Every table denies unknown keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the BFF listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL users reach the BFF at (decides the cookie's `Secure` flag and the CSRF origin).
    pub public_url: String,
    /// Load balancers / reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Client timeouts and the connection cap of every listener.
    #[serde(default)]
    pub server: server::ServerConfig,
    /// Apps on other origins that may call the BFF with their users' cookie.
    #[serde(default)]
    pub cors: cors::CorsConfig,
    /// Where Tinybird is and how to sign for it.
    pub tinybird: TinybirdConfig,
    /// Minted token settings.
    #[serde(default)]
    pub token: TokenConfig,
    /// Session settings.
    #[serde(default)]
    pub session: SessionConfig,
    /// Failed-login throttling.
    #[serde(default)]
    pub login: LoginConfig,
    /// Local users; optional when `[oidc.<name>]` providers log users in.
    #[serde(default)]
    pub users: Option<UsersConfig>,
    /// Identity providers (OIDC login and bearer tokens), by name.
    #[serde(default)]
    pub oidc: BTreeMap<String, crate::auth::oidc::config::OidcProviderConfig>,
    /// Grants: which users read which pipes with which fixed params.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// Proxy mode (`/api/pipes/...`): upstream credentials, retries, timeouts, cache.
    #[serde(default)]
    pub proxy: crate::proxy::ProxyConfig,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`), e.g. `"127.0.0.1:9300"`; off when unset.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Shared Redis for sessions (`session.store = "redis"`), rate limits and login throttling.
    #[serde(default)]
    pub redis: Option<crate::redis::RedisConfig>,
    /// The BFF's own rate limits.
    #[serde(default)]
    pub limits: crate::ratelimit::LimitsConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// The application log.
    #[serde(default)]
    pub log: crate::audit::LogConfig,
    /// Reloading the config, users file and keys without a restart.
    #[serde(default)]
    pub reload: ops::ReloadConfig,
    /// Tinybird's usage record (`pipe_stats_rt`) and budgets; off when absent.
    #[serde(default)]
    pub usage: Option<crate::usage::UsageConfig>,
    /// Tenant API keys (docs/api-keys.md); off when absent.
    #[serde(default)]
    pub keys: Option<crate::keys::KeysConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:3000".into()
}

/// Validated settings: everything the BFF needs, secrets included.
#[derive(Debug, Clone)]
pub struct Settings {
    /// BFF listen address.
    pub listen: SocketAddr,
    /// Public URL of the BFF.
    pub public_url: Url,
    /// Proxies whose `X-Forwarded-For` names the client (see `crate::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Client timeouts and the connection cap of every listener (`[server]`).
    pub conn_limits: tinybird_contract::serve::ConnLimits,
    /// Apps on other origins (`[cors]`).
    pub cors: cors::CorsSettings,
    /// The workspaces tokens are minted for, and which one is each user's.
    pub tinybird: TinybirdSettings,
    /// JWT lifetime.
    pub token_ttl: Duration,
    /// JWT `name` template.
    pub token_name: NameTemplate,
    /// `limits.rps`.
    pub token_rps: Option<i64>,
    /// Session store.
    pub session_store: SessionStoreKind,
    /// Session inactivity timeout.
    pub session_ttl: Duration,
    /// How long a session lasts after its login, however active (`session.absolute_ttl`).
    pub session_absolute_ttl: Duration,
    /// Session cookie name.
    pub cookie_name: String,
    /// Failed-login throttling per account.
    pub throttle: ThrottleConfig,
    /// Failed-login throttling per client address.
    pub client_throttle: ThrottleConfig,
    /// How long a login's username and password may be.
    pub login_caps: session::LoginCaps,
    /// Local users.
    pub users: UserDirectory,
    /// Identity providers (OIDC login, bearer tokens), in name order.
    pub oidc: Vec<crate::auth::oidc::OidcProviderSettings>,
    /// Compiled grants.
    pub grants: Arc<Grants>,
    /// Proxy mode settings.
    pub proxy: crate::proxy::ProxySettings,
    /// Admin listener address, when enabled.
    pub admin_listen: Option<SocketAddr>,
    /// Shared Redis, when configured.
    pub redis: Option<crate::redis::RedisSettings>,
    /// Rate limits.
    pub limits: crate::ratelimit::LimitSettings,
    /// Where audit lines go.
    pub audit: crate::audit::AuditOutput,
    /// Application log format.
    pub log_format: crate::audit::LogFormat,
    /// How often the config, users and key files are checked for changes (`None`: only on
    /// `SIGHUP`).
    pub reload_watch: Option<Duration>,
    /// The files these settings were read from (config, users, key files): what a reload
    /// watches.
    pub sources: Vec<std::path::PathBuf>,
    /// Usage polling and budgets, when `[usage]` is configured.
    pub usage: Option<crate::usage::UsageSettings>,
    /// Tenant API keys, when `[keys]` is configured.
    pub keys: Option<crate::keys::KeysSettings>,
}

/// Keeps a validator's settings, or its problems.
fn keep<T>(result: Result<T, Vec<Problem>>, problems: &mut Vec<Problem>) -> Option<T> {
    result.map_err(|p| problems.extend(p)).ok()
}

impl Settings {
    /// Loads and validates a config file, with secrets from the process environment.
    pub fn load(path: &Path) -> Result<Settings, Vec<Problem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![problem(
                path.display().to_string(),
                format!("cannot read the config file: {e}"),
            )]
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut settings = Self::from_toml(
            &text,
            &path.display().to_string(),
            base,
            &|k| std::env::var(k).ok(),
            None,
        )?;
        settings.sources.insert(0, path.to_owned());
        Ok(settings)
    }

    /// Validates config text. Relative paths resolve against `base`; `users` replaces the
    /// users file when given (the demo embeds its users).
    pub fn from_toml(
        text: &str,
        origin: &str,
        base: &Path,
        env: EnvLookup<'_>,
        users: Option<UserDirectory>,
    ) -> Result<Settings, Vec<Problem>> {
        // Every unknown, mistyped or missing key is a problem, and the values are still
        // validated: one run of `check` lists them all (`shape`).
        let shape = shape::read::<FileConfig>(text, origin, &|table| match table {
            // `[tinybird]` flattens one workspace's keys into itself (tinybird.rs).
            "tinybird" => [
                shape::keys_of::<tinybird::WorkspaceConfig>(),
                vec!["workspaces".into(), "workspace".into()],
            ]
            .concat(),
            _ => Vec::new(),
        })?;
        let result = Self::validate(&shape.config, base, env, users);
        match result {
            Ok(settings) if shape.is_clean() => Ok(settings),
            Ok(_) => Err(shape.merge(Vec::new())),
            Err(problems) => Err(shape.merge(problems)),
        }
    }

    /// Runs every section's validator on the file as read.
    fn validate(
        raw: &FileConfig,
        base: &Path,
        env: EnvLookup<'_>,
        users: Option<UserDirectory>,
    ) -> Result<Settings, Vec<Problem>> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let server = keep(
            server::validate(&raw.listen, &raw.public_url, &raw.trusted_proxies),
            p,
        );
        let conn_limits = keep(server::validate_limits(&raw.server), p);
        let public_url = server.as_ref().map(|s| &s.public_url);
        let cors = keep(cors::validate(&raw.cors, public_url), p);
        let tinybird = keep(tinybird::validate(&raw.tinybird, base, env), p);
        let token = keep(token::validate(&raw.token), p);
        let session = keep(
            session::validate(&raw.session, &raw.login, raw.redis.is_some(), base),
            p,
        );
        // Grants are checked against the pipes the workspace has, when they are known.
        let known_pipes = tinybird::known_pipes(&raw.tinybird);
        let users_from_file = users.is_none();
        let input = AccessInput {
            users: raw.users.as_ref(),
            embedded_users: users,
            oidc: &raw.oidc,
            grants: &raw.grants,
            known_pipes: &known_pipes,
        };
        let access = keep(access::validate(input, base, env), p);
        let proxy = keep(crate::proxy::validate(&raw.proxy, base, env), p);
        let ops = keep(ops::validate(raw, base, env), p);
        // Every workspace's usage record is read, each with its own token (see docs/usage.md).
        let workspaces: Vec<(&str, &secrecy::SecretString)> = tinybird
            .as_ref()
            .map(|t| {
                t.workspaces
                    .iter()
                    .map(|w| (w.name.as_str(), w.signing_key.secret()))
                    .collect()
            })
            .unwrap_or_default();
        let usage = match &raw.usage {
            Some(u) => keep(crate::usage::config::validate(u, base, env, &workspaces), p).map(Some),
            None => Some(None),
        };
        let keys = match &raw.keys {
            Some(k) => keep(crate::keys::config::validate(k, base, env), p).map(Some),
            None => Some(None),
        };
        let (
            Some(server),
            Some(conn_limits),
            Some(cors),
            Some(tinybird),
            Some(token),
            Some(session),
            Some(access),
            Some(proxy),
            Some(ops),
            Some(usage),
            Some(keys),
        ) = (
            server,
            conn_limits,
            cors,
            tinybird,
            token,
            session,
            access,
            proxy,
            ops,
            usage,
            keys,
        )
        else {
            return Err(problems);
        };
        problems.extend(tinybird.check_users(&access.users, &access.grants));
        if tinybird.workspaces.len() > 1
            && matches!(proxy.credentials, crate::proxy::Credentials::Static(_))
        {
            problems.push(problem("proxy.credentials", "\"static\" reads one workspace with one token; with several workspaces use \"jwt\" (each user's calls then go to their workspace with its key)"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut sources: Vec<std::path::PathBuf> = Vec::new();
        if users_from_file && let Some(u) = &raw.users {
            sources.push(base.join(&u.file));
        }
        sources.extend(
            tinybird
                .workspaces
                .iter()
                .filter_map(|w| match &w.key_source {
                    KeySource::File(path) => Some(path.clone()),
                    KeySource::Env(_) => None,
                }),
        );
        Ok(Settings {
            listen: server.listen,
            public_url: server.public_url,
            trusted_proxies: server.trusted_proxies,
            conn_limits,
            cors,
            tinybird,
            token_ttl: token.ttl,
            token_name: token.name,
            token_rps: token.rps,
            session_store: session.store,
            session_ttl: session.ttl,
            session_absolute_ttl: session.absolute_ttl,
            cookie_name: session.cookie_name,
            throttle: session.throttle,
            client_throttle: session.client_throttle,
            login_caps: session.login_caps,
            users: access.users,
            oidc: access.oidc,
            grants: access.grants,
            proxy,
            admin_listen: ops.admin_listen,
            redis: ops.redis,
            limits: ops.limits,
            audit: ops.audit,
            log_format: ops.log_format,
            reload_watch: ops.reload_watch,
            sources,
            usage,
            keys,
        })
    }
}
