//! `[keys]`: tenant API keys. Off when the section is absent.
//!
//! The PostgreSQL URL (it holds the password) comes from the environment variable `url_env`
//! names, or the file its `_FILE` twin names, never the TOML.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::problem::{EnvLookup, Problem, parse_duration, read_secret};

/// `[keys]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// `"sqlite"` (an embedded file, one instance) or `"postgres"` (shared by instances).
    #[serde(default = "default_store")]
    pub store: String,
    /// The SQLite file (relative to the config file).
    #[serde(default = "default_path")]
    pub path: String,
    /// Environment variable holding the PostgreSQL URL (or `<VAR>_FILE`).
    #[serde(default = "default_url_env")]
    pub url_env: String,
    /// PostgreSQL connections per instance.
    #[serde(default = "default_pool")]
    pub pool: u32,
    /// How long one store call may take (connecting included).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The role of tenant admins (they manage their own tenant's keys).
    #[serde(default = "default_admin_role")]
    pub admin_role: String,
    /// The roles a key acts with when grants are evaluated (required).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Lifetime of the JWTs minted for a key.
    #[serde(default = "default_token_ttl")]
    pub token_ttl: String,
    /// The longest a revoked key keeps working on any instance.
    #[serde(default = "default_revocation_delay")]
    pub revocation_delay: String,
    /// How often each instance writes its keys' usage and last use down.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: String,
    /// Active (unrevoked) keys a tenant may hold.
    #[serde(default = "default_max_keys")]
    pub max_keys_per_tenant: u32,
    /// The longest grace period a roll may give the old secret.
    #[serde(default = "default_max_grace")]
    pub max_grace: String,
}

fn default_store() -> String {
    "sqlite".into()
}
fn default_path() -> String {
    "data/keys.db".into()
}
fn default_url_env() -> String {
    "KEYS_DATABASE_URL".into()
}
fn default_pool() -> u32 {
    4
}
fn default_timeout() -> String {
    "2s".into()
}
fn default_admin_role() -> String {
    "tenant-admin".into()
}
fn default_token_ttl() -> String {
    "5m".into()
}
fn default_revocation_delay() -> String {
    "1s".into()
}
fn default_flush_interval() -> String {
    "1s".into()
}
fn default_max_keys() -> u32 {
    50
}
fn default_max_grace() -> String {
    "7d".into()
}

/// Where keys live.
#[derive(Clone)]
pub enum StoreSettings {
    /// This SQLite file (`:memory:`: this process only, for the demo and tests).
    Sqlite(PathBuf),
    /// The PostgreSQL server at this URL (with its password), `pool` connections.
    Postgres {
        /// The URL.
        url: SecretString,
        /// Connections per instance.
        pool: usize,
    },
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSettings::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreSettings::Postgres { pool, .. } => {
                f.debug_struct("Postgres").field("pool", pool).finish()
            }
        }
    }
}

/// Validated `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysSettings {
    /// The store.
    pub store: StoreSettings,
    /// Per store call.
    pub timeout: Duration,
    /// The tenant admins' role.
    pub admin_role: String,
    /// The roles keys act with.
    pub roles: Vec<String>,
    /// Key tokens' lifetime.
    pub token_ttl: Duration,
    /// The longest a revoked key keeps working anywhere (cached keys are re-read within it).
    pub revocation_delay: Duration,
    /// How often usage is written down.
    pub flush_interval: Duration,
    /// Active keys per tenant.
    pub max_keys_per_tenant: usize,
    /// The longest roll grace.
    pub max_grace: Duration,
}

impl KeysSettings {
    /// Settings for an in-memory SQLite store with the defaults: tests and the demo.
    pub fn in_memory(roles: &[&str]) -> Self {
        let raw = toml::from_str("roles = [\"viewer\"]").expect("every other key has a default");
        let mut s = validate(&raw, Path::new("."), &|_| None).expect("the defaults are valid");
        s.store = StoreSettings::Sqlite(":memory:".into());
        s.roles = roles.iter().map(|r| r.to_string()).collect();
        s
    }

    /// `sqlite` or `postgres`.
    pub fn store_kind(&self) -> &'static str {
        match self.store {
            StoreSettings::Sqlite(_) => "sqlite",
            StoreSettings::Postgres { .. } => "postgres",
        }
    }

    /// The secrets to keep out of logs (the PostgreSQL URL).
    pub fn secrets(&self) -> Vec<&str> {
        match &self.store {
            StoreSettings::Postgres { url, .. } => vec![url.expose_secret()],
            StoreSettings::Sqlite(_) => Vec::new(),
        }
    }
}

fn bounded(
    value: &str,
    key: &str,
    (min, max): (Duration, Duration),
    problems: &mut Vec<Problem>,
) -> Duration {
    let d = parse_duration(value, &format!("keys.{key}"), problems).unwrap_or(min);
    if d < min || d > max {
        problems.push(Problem {
            key: format!("keys.{key}"),
            message: format!(
                "{value:?} is out of range: write between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        });
    }
    d
}

/// Validates `[keys]`; relative paths resolve against `base`.
pub fn validate(
    raw: &KeysConfig,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<KeysSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let secs = Duration::from_secs;
    let ms = Duration::from_millis;
    let timeout = bounded(&raw.timeout, "timeout", (ms(100), secs(30)), p);
    let token_ttl = bounded(&raw.token_ttl, "token_ttl", (secs(10), secs(3600)), p);
    let revocation_delay = bounded(
        &raw.revocation_delay,
        "revocation_delay",
        (ms(100), secs(60)),
        p,
    );
    let flush_interval = bounded(
        &raw.flush_interval,
        "flush_interval",
        (ms(100), secs(300)),
        p,
    );
    let max_grace = bounded(&raw.max_grace, "max_grace", (secs(0), secs(30 * 86_400)), p);
    let mut push = |key: &str, message: String| {
        p.push(Problem {
            key: format!("keys.{key}"),
            message,
        })
    };
    if raw.admin_role.trim().is_empty() {
        push(
            "admin_role",
            "is empty: name the role of tenant admins, e.g. \"tenant-admin\"".into(),
        );
    }
    let roles = raw.roles.clone().unwrap_or_default();
    if roles.is_empty() || roles.iter().any(|r| r.trim().is_empty()) {
        push("roles", "name the roles a key acts with when grants are evaluated, e.g. [\"viewer\"]: a key reads what a user of its tenant with these roles would, narrowed to its scopes".into());
    }
    if !(1..=10_000).contains(&raw.max_keys_per_tenant) {
        push(
            "max_keys_per_tenant",
            "write a number from 1 to 10000".into(),
        );
    }
    if !(1..=64).contains(&raw.pool) {
        push("pool", "write a number of connections from 1 to 64".into());
    }
    let store = match raw.store.as_str() {
        "sqlite" if raw.path.trim().is_empty() => {
            push(
                "path",
                "is empty: write the SQLite file, e.g. \"data/keys.db\"".into(),
            );
            None
        }
        "sqlite" => Some(StoreSettings::Sqlite(base.join(&raw.path))),
        "postgres" => match read_secret(&raw.url_env, base, env) {
            Ok(Some(url)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(StoreSettings::Postgres {
                    url: url.into(),
                    pool: raw.pool as usize,
                })
            }
            Ok(Some(_)) => {
                push(
                    "url_env",
                    format!(
                        "{} is not a PostgreSQL URL: write postgres://user:password@host:5432/dbname",
                        raw.url_env
                    ),
                );
                None
            }
            Ok(None) => {
                push(
                    "url_env",
                    format!(
                        "set {} (or {}_FILE) to the PostgreSQL URL, e.g. postgres://bff:password@db:5432/bff",
                        raw.url_env, raw.url_env
                    ),
                );
                None
            }
            Err(e) => {
                push("url_env", e);
                None
            }
        },
        other => {
            push(
                "store",
                format!(
                    "{other:?}: write \"sqlite\" (one instance) or \"postgres\" (several instances)"
                ),
            );
            None
        }
    };
    match store {
        Some(store) if problems.is_empty() => Ok(KeysSettings {
            store,
            timeout,
            admin_role: raw.admin_role.trim().to_owned(),
            roles,
            token_ttl,
            revocation_delay,
            flush_interval,
            max_keys_per_tenant: raw.max_keys_per_tenant as usize,
            max_grace,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, env: EnvLookup<'_>) -> Result<KeysSettings, Vec<Problem>> {
        let raw: KeysConfig = toml::from_str(text).unwrap();
        validate(&raw, Path::new("/etc/bff"), env)
    }

    #[test]
    fn defaults_are_an_embedded_file_and_need_only_the_roles() {
        let s = check("roles = [\"viewer\"]", &|_| None).unwrap();
        assert!(
            matches!(&s.store, StoreSettings::Sqlite(p) if p == Path::new("/etc/bff/data/keys.db"))
        );
        assert_eq!(s.admin_role, "tenant-admin");
        assert_eq!(s.token_ttl, Duration::from_secs(300));
        assert_eq!(s.revocation_delay, Duration::from_secs(1));
        assert_eq!(s.max_keys_per_tenant, 50);
        let err = check("", &|_| None).unwrap_err();
        assert_eq!(err[0].key, "keys.roles");
        let mem = KeysSettings::in_memory(&["viewer"]);
        assert!(matches!(&mem.store, StoreSettings::Sqlite(p) if p == Path::new(":memory:")));
    }

    #[test]
    fn postgres_reads_its_url_from_the_environment_only() {
        let env =
            |k: &str| (k == "KEYS_DATABASE_URL").then(|| "postgres://bff:pw@db/bff".to_owned());
        let s = check("store = \"postgres\"\nroles = [\"viewer\"]", &env).unwrap();
        assert!(matches!(s.store, StoreSettings::Postgres { pool: 4, .. }));
        assert_eq!(s.secrets(), ["postgres://bff:pw@db/bff"]);
        assert!(
            !format!("{s:?}").contains("pw@"),
            "the URL stays out of Debug"
        );
        let err = check("store = \"postgres\"\nroles = [\"viewer\"]", &|_| None).unwrap_err();
        assert!(err[0].message.contains("KEYS_DATABASE_URL"), "{err:?}");
        let bad = |_: &str| Some("mysql://x".to_owned());
        assert!(check("store = \"postgres\"\nroles = [\"viewer\"]", &bad).is_err());
    }

    #[test]
    fn every_limit_is_bounded_with_the_fix_named() {
        let err = check(
            "roles = [\"viewer\"]\nstore = \"redis\"\ntoken_ttl = \"2h\"\nrevocation_delay = \"5m\"\nmax_keys_per_tenant = 0\nmax_grace = \"90d\"\npool = 0\ntimeout = \"1ms\"\nflush_interval = \"1h\"",
            &|_| None,
        )
        .unwrap_err();
        let keys: Vec<&str> = err.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "keys.store",
            "keys.token_ttl",
            "keys.revocation_delay",
            "keys.max_keys_per_tenant",
            "keys.max_grace",
            "keys.pool",
            "keys.timeout",
            "keys.flush_interval",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
    }
}
