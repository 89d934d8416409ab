//! Settings: the TOML file, its secrets from the environment, and validation.
//!
//! Loading never stops at the first problem: [`Settings::load`] returns every problem, each
//! naming the key and the fix, so `tinybird-bff check` can print them all and `serve` can
//! refuse to start on the same list. Secrets (the signing key) never come from the TOML.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::auth::throttle::ThrottleConfig;
use crate::auth::users::UserDirectory;
use crate::grants::{GrantConfig, Grants};
use crate::tinybird::AdminToken;
use crate::tinybird::mint::NameTemplate;

mod ops;

/// The config file as written. Every table denies unknown keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the BFF listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL users reach the BFF at (decides the cookie's `Secure` flag and the CSRF origin).
    pub public_url: String,
    /// Load balancers / reverse proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Where Tinybird is and how to sign for it.
    pub tinybird: RawTinybird,
    /// Minted token settings.
    #[serde(default)]
    pub token: RawToken,
    /// Session settings.
    #[serde(default)]
    pub session: RawSession,
    /// Failed-login throttling.
    #[serde(default)]
    pub login: RawLogin,
    /// Local users; optional when `[oidc.<name>]` providers log users in.
    #[serde(default)]
    pub users: Option<RawUsers>,
    /// Identity providers (OIDC login and bearer tokens), by name.
    #[serde(default)]
    pub oidc: std::collections::BTreeMap<String, crate::auth::oidc::config::RawOidcProvider>,
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
}

/// `[tinybird]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTinybird {
    /// A region's API host (`https://api.tinybird.co`, ...) or `"local"` for the embedded endpoint.
    pub host: String,
    /// Workspace UUID; read from the admin token when omitted.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Environment variable holding the admin token (or `<VAR>_FILE` naming a file with it).
    #[serde(default = "default_key_env")]
    pub signing_key_env: String,
    /// With `host = "local"`: where the embedded endpoint listens.
    #[serde(default = "default_local_listen")]
    pub local_listen: String,
    /// Pipes that exist in the workspace, so `check` can flag grants naming others.
    #[serde(default)]
    pub pipes: Option<Vec<String>>,
}

/// `[token]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    /// Lifetime of a minted JWT, e.g. `"10m"`.
    #[serde(default = "default_ttl")]
    pub ttl: String,
    /// Template for the JWT `name` (Tinybird's rate-limit bucket and usage attribution).
    #[serde(default = "default_name")]
    pub name: String,
    /// `limits.rps` on every token; per `name`, so per user with the default name.
    #[serde(default)]
    pub rps: Option<i64>,
}

impl Default for RawToken {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            name: default_name(),
            rps: None,
        }
    }
}

/// `[session]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// `"file"` (default, survives restarts) or `"memory"`.
    #[serde(default = "default_store")]
    pub store: String,
    /// Directory of the file store.
    #[serde(default = "default_session_dir")]
    pub dir: PathBuf,
    /// Inactivity timeout, e.g. `"12h"`.
    #[serde(default = "default_session_ttl")]
    pub ttl: String,
    /// Cookie name.
    #[serde(default = "default_cookie")]
    pub cookie_name: String,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            store: default_store(),
            dir: default_session_dir(),
            ttl: default_session_ttl(),
            cookie_name: default_cookie(),
        }
    }
}

/// `[login]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// Failures per account before a lockout.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Failures per client address (across accounts) before a lockout.
    #[serde(default = "default_max_client_failures")]
    pub max_client_failures: u32,
    /// Window the failures are counted in.
    #[serde(default = "default_fifteen_minutes")]
    pub window: String,
    /// How long a lockout lasts.
    #[serde(default = "default_fifteen_minutes")]
    pub lockout: String,
}

impl Default for RawLogin {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            max_client_failures: default_max_client_failures(),
            window: default_fifteen_minutes(),
            lockout: default_fifteen_minutes(),
        }
    }
}

/// `[users]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsers {
    /// The users file (relative to the config file).
    pub file: PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:3000".into()
}
fn default_key_env() -> String {
    "TINYBIRD_SIGNING_KEY".into()
}
fn default_local_listen() -> String {
    "127.0.0.1:7181".into()
}
fn default_ttl() -> String {
    "10m".into()
}
fn default_name() -> String {
    crate::tinybird::mint::DEFAULT_NAME_TEMPLATE.into()
}
fn default_store() -> String {
    "file".into()
}
fn default_session_dir() -> PathBuf {
    PathBuf::from("data/sessions")
}
fn default_session_ttl() -> String {
    "12h".into()
}
fn default_cookie() -> String {
    "tbff_session".into()
}
fn default_max_failures() -> u32 {
    5
}
fn default_max_client_failures() -> u32 {
    20
}
fn default_fifteen_minutes() -> String {
    "15m".into()
}

/// Where Tinybird is.
#[derive(Debug, Clone)]
pub enum TinybirdHost {
    /// A real Tinybird API host.
    Remote(Url),
    /// The embedded local endpoint, started in-process on this address.
    Local(SocketAddr),
}

/// Which session store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// The embedded persistent store, in this directory.
    File(PathBuf),
    /// In memory: sessions end with the process.
    Memory,
    /// In the shared Redis (`[redis]`): every instance sees every session.
    Redis,
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
    /// Tinybird host.
    pub host: TinybirdHost,
    /// Workspace id put in every JWT.
    pub workspace_id: String,
    /// Admin token = signing key.
    pub signing_key: AdminToken,
    /// Pipes known to exist (for checks), when known.
    pub known_pipes: Option<Vec<String>>,
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
    /// Session cookie name.
    pub cookie_name: String,
    /// Failed-login throttling per account.
    pub throttle: ThrottleConfig,
    /// Failed-login throttling per client address.
    pub client_throttle: ThrottleConfig,
    /// Local users.
    pub users: UserDirectory,
    /// Identity providers (OIDC login, bearer tokens), in name order.
    pub oidc: Vec<crate::auth::oidc::OidcProviderSettings>,
    /// Compiled grants.
    pub grants: std::sync::Arc<Grants>,
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
}

/// One thing wrong with the config: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key (`tinybird.host`, `grants[1].pipes`, ...) or file.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// Reads environment variables; a function so tests and the demo can supply their own.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

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
        Self::from_toml(
            &text,
            &path.display().to_string(),
            base,
            &|k| std::env::var(k).ok(),
            None,
        )
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
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| vec![problem(origin, format!("{e}").trim_end().to_owned())])?;
        let mut problems = Vec::new();
        let listen = parse_addr(&raw.listen, "listen", &mut problems);
        let trusted_proxies = crate::client_ip::parse_trusted(&raw.trusted_proxies)
            .map_err(|bad| {
                problems.push(problem(
                    "trusted_proxies",
                    format!("{bad:?} is not an IP address or CIDR range, e.g. \"10.0.0.0/8\" or \"127.0.0.1\""),
                ))
            })
            .unwrap_or_default();
        let public_url = match Url::parse(&raw.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                problems.push(problem("public_url", "must be an absolute http(s) URL users reach the BFF at, e.g. \"https://app.example.com\""));
                None
            }
        };
        let host = if raw.tinybird.host == "local" {
            parse_addr(
                &raw.tinybird.local_listen,
                "tinybird.local_listen",
                &mut problems,
            )
            .map(TinybirdHost::Local)
        } else {
            match Url::parse(&raw.tinybird.host) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && u.query().is_none() =>
                {
                    Some(TinybirdHost::Remote(u))
                }
                _ => {
                    problems.push(problem("tinybird.host", "must be your workspace's API host, e.g. \"https://api.tinybird.co\" or \"https://api.us-east.aws.tinybird.co\" (no path), or \"local\" for the embedded endpoint"));
                    None
                }
            }
        };
        let signing_key = read_signing_key(&raw.tinybird.signing_key_env, base, env, &mut problems);
        let workspace_id = match (
            &raw.tinybird.workspace_id,
            signing_key.as_ref().and_then(AdminToken::workspace_id),
        ) {
            (Some(id), _) if !id.trim().is_empty() => Some(id.clone()),
            (_, Some(id)) => Some(id),
            _ => {
                if signing_key.is_some() {
                    problems.push(problem("tinybird.workspace_id", "is required: the signing key does not carry a workspace id; copy the workspace UUID from Tinybird's UI"));
                }
                None
            }
        };
        let token_ttl = parse_duration(&raw.token.ttl, "token.ttl", &mut problems);
        if let Some(ttl) = token_ttl {
            if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(24 * 3600) {
                problems.push(problem("token.ttl", "must be between 10s and 24h; short TTLs are the only revocation Tinybird JWTs have (10m is a good default)"));
            }
        }
        let token_name = NameTemplate::compile(&raw.token.name)
            .map_err(|e| problems.push(problem("token.name", e.to_string())))
            .ok();
        let session_store = match raw.session.store.as_str() {
            "file" => Some(SessionStoreKind::File(base.join(&raw.session.dir))),
            "memory" => Some(SessionStoreKind::Memory),
            "redis" if raw.redis.is_some() => Some(SessionStoreKind::Redis),
            "redis" => {
                problems.push(problem(
                    "session.store",
                    "is \"redis\" but there is no [redis] table: add one with url = \"redis://host:6379/0\"",
                ));
                None
            }
            _ => {
                problems.push(problem(
                    "session.store",
                    "must be \"file\" (persistent, default), \"memory\" or \"redis\" (shared by instances)",
                ));
                None
            }
        };
        let session_ttl = parse_duration(&raw.session.ttl, "session.ttl", &mut problems);
        if raw.session.cookie_name.is_empty()
            || !raw
                .session
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(problem(
                "session.cookie_name",
                "must be letters, digits, `_` or `-`",
            ));
        }
        let window = parse_duration(&raw.login.window, "login.window", &mut problems);
        let lockout = parse_duration(&raw.login.lockout, "login.lockout", &mut problems);
        if raw.login.max_failures == 0 {
            problems.push(problem("login.max_failures", "must be at least 1"));
        }
        if raw.login.max_client_failures < raw.login.max_failures {
            problems.push(problem(
                "login.max_client_failures",
                "must be at least login.max_failures (one client may mistype several accounts)",
            ));
        }
        let users = match users {
            Some(u) => Some(u),
            None => match &raw.users {
                Some(u) => UserDirectory::load(&base.join(&u.file))
                    .map_err(|e| problems.push(problem("users.file", e.to_string())))
                    .ok(),
                None if raw.oidc.is_empty() => {
                    problems.push(problem("users", "nobody can log in: add [users] file = \"users.toml\" for local users, or an [oidc.<name>] identity provider"));
                    None
                }
                None => Some(UserDirectory::default()),
            },
        };
        let known_pipes = raw.tinybird.pipes.clone().or_else(|| match host {
            Some(TinybirdHost::Local(_)) => Some(crate::local::embedded_pipe_names()),
            _ => None,
        });
        let grants = match Grants::compile(&raw.grants) {
            Ok(g) => Some(g),
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| problem("grants", e.to_string())));
                None
            }
        };
        if raw.grants.is_empty() {
            problems.push(problem(
                "grants",
                "no [[grants]]: nobody could read any pipe; add at least one grant",
            ));
        }
        let oidc = crate::auth::oidc::config::validate(&raw.oidc, base, env)
            .map_err(|p| problems.extend(p))
            .ok();
        if let Some(g) = &grants {
            let oidc_settings = oidc.as_deref().unwrap_or_default();
            check_grant_references(
                g,
                known_pipes.as_deref(),
                users.as_ref(),
                oidc_settings,
                &mut problems,
            );
        }
        let proxy = crate::proxy::validate(&raw.proxy, env)
            .map_err(|p| problems.extend(p))
            .ok();
        let ops_settings = ops::validate(&raw, base, env)
            .map_err(|p| problems.extend(p))
            .ok();
        if !problems.is_empty() {
            return Err(problems);
        }
        let proxy = proxy.expect("no problems, so validated");
        let oidc = oidc.expect("no problems, so validated");
        let ops_settings = ops_settings.expect("no problems, so validated");
        let (
            Some(listen),
            Some(public_url),
            Some(host),
            Some(signing_key),
            Some(workspace_id),
            Some(token_ttl),
            Some(token_name),
            Some(session_store),
            Some(session_ttl),
            Some(window),
            Some(lockout),
            Some(users),
            Some(grants),
        ) = (
            listen,
            public_url,
            host,
            signing_key,
            workspace_id,
            token_ttl,
            token_name,
            session_store,
            session_ttl,
            window,
            lockout,
            users,
            grants,
        )
        else {
            unreachable!("every missing value pushed a problem");
        };
        Ok(Settings {
            listen,
            public_url,
            trusted_proxies,
            host,
            workspace_id,
            signing_key,
            known_pipes,
            token_ttl,
            token_name,
            token_rps: raw.token.rps,
            session_store,
            session_ttl,
            cookie_name: raw.session.cookie_name,
            throttle: ThrottleConfig {
                max_failures: raw.login.max_failures,
                window,
                lockout,
            },
            client_throttle: ThrottleConfig {
                max_failures: raw.login.max_client_failures,
                window,
                lockout,
            },
            users,
            oidc,
            grants: std::sync::Arc::new(grants),
            proxy,
            admin_listen: ops_settings.admin_listen,
            redis: ops_settings.redis,
            limits: ops_settings.limits,
            audit: ops_settings.audit,
            log_format: ops_settings.log_format,
        })
    }
}

/// Flags grants naming pipes that do not exist, or attributes no user has.
fn check_grant_references(
    grants: &Grants,
    pipes: Option<&[String]>,
    users: Option<&UserDirectory>,
    oidc: &[crate::auth::oidc::OidcProviderSettings],
    problems: &mut Vec<Problem>,
) {
    if let Some(pipes) = pipes {
        for (grant, pipe) in grants.referenced_pipes() {
            if !pipes.contains(&pipe) {
                problems.push(problem(
                    format!("grants ({grant}).pipes"),
                    format!(
                        "pipe {pipe:?} does not exist; known pipes: {}",
                        pipes.join(", ")
                    ),
                ));
            }
        }
    }
    let Some(users) = users else { return };
    let mut known: BTreeSet<String> = ["id", "tenant", "roles"].map(String::from).into();
    for id in users.ids() {
        if let Some(record) = users.get(id) {
            known.extend(
                record
                    .user
                    .attributes
                    .keys()
                    .map(|k| format!("attributes.{k}")),
            );
        }
    }
    // Identity providers set the attributes their claims mapping names.
    for provider in oidc {
        known.extend(
            provider
                .claims
                .attribute_names()
                .map(|k| format!("attributes.{k}")),
        );
    }
    for (grant, attribute) in grants.referenced_attributes() {
        if !known.contains(&attribute) {
            problems.push(problem(
                format!("grants ({grant}).fixed_params"),
                format!("user.{attribute} is not an attribute of any user; add it to the users file (or an [oidc.<name>.claims.attributes] mapping) or fix the template"),
            ));
        }
    }
}

fn parse_addr(value: &str, key: &str, problems: &mut Vec<Problem>) -> Option<SocketAddr> {
    value
        .parse()
        .map_err(|_| problems.push(problem(key, format!("{value:?} is not an IP:port address, e.g. \"127.0.0.1:3000\" or \"0.0.0.0:3000\""))))
        .ok()
}

fn parse_duration(value: &str, key: &str, problems: &mut Vec<Problem>) -> Option<Duration> {
    humantime::parse_duration(value)
        .map_err(|e| {
            problems.push(problem(
                key,
                format!(
                    "{value:?} is not a duration ({e}); write e.g. \"10m\", \"90s\" or \"12h\""
                ),
            ))
        })
        .ok()
}

/// Reads the signing key from `$VAR`, or from the file named by `$VAR_FILE`.
fn read_signing_key(
    var: &str,
    base: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Option<AdminToken> {
    let file_var = format!("{var}_FILE");
    let key = match (env(var), env(&file_var)) {
        (Some(_), Some(_)) => {
            problems.push(problem(
                "tinybird.signing_key_env",
                format!("both {var} and {file_var} are set: keep one"),
            ));
            return None;
        }
        (Some(key), None) => key,
        (None, Some(file)) => match std::fs::read_to_string(base.join(&file)) {
            // A trailing newline in a secrets file is normal; anything else is kept verbatim.
            Ok(text) => text
                .strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&text)
                .to_owned(),
            Err(e) => {
                problems.push(problem(
                    "tinybird.signing_key_env",
                    format!("{file_var} names {file:?}, which cannot be read: {e}"),
                ));
                return None;
            }
        },
        (None, None) => {
            problems.push(problem("tinybird.signing_key_env", format!("set {var} (or {file_var}) to the workspace admin token; it is never read from the TOML")));
            return None;
        }
    };
    AdminToken::new(key)
        .map_err(|e| problems.push(problem(var, e.to_string())))
        .ok()
}
