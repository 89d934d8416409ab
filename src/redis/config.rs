//! `[redis]`: which Redis (one server, a Sentinel-watched master, or a Cluster), how to reach it
//! (TLS, ACL user, password from the environment) and how long an operation may take.
//!
//! One key, `redis.url`, names the kind by its scheme, so a deployment switches from one Redis
//! to Sentinel or Cluster by changing one line (or one environment-templated value):
//!
//! - `redis://host:6379/0`, `rediss://user@host:6380/0`: one server;
//! - `redis+sentinel://[user@]s1:26379,s2:26379/<master>[/<db>]`: the sentinels, asked for the
//!   master named `<master>`; the user is the master's ACL user;
//! - `redis+cluster://[user@]n1:6379,n2:6379`: some nodes of a Cluster (the rest are
//!   discovered); Cluster has only database 0.
//!
//! `rediss+sentinel://` and `rediss+cluster://` use TLS for every connection (sentinels
//! included), verified like `rediss://`. Passwords never live in the URL.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::config::problem::{EnvLookup, Problem};

/// `[redis]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:6379/0`, `redis+sentinel://...` or `redis+cluster://...` (no password:
    /// that comes from `password_env`).
    pub url: String,
    /// Environment variable holding the password (or `<VAR>_FILE` naming a file with it).
    #[serde(default = "default_password_env")]
    pub password_env: String,
    /// Prefix of every key, so several apps can share one Redis.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Per-operation timeout, e.g. `"500ms"`.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// With TLS: a PEM file of the CA that signed the server's certificate (a private CA);
    /// unset, the platform's roots verify it.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// With `redis+sentinel://`: the sentinels' own ACL user, when they require one.
    #[serde(default)]
    pub sentinel_username: Option<String>,
    /// With `redis+sentinel://`: environment variable holding the sentinels' password (or
    /// `<VAR>_FILE`); unset, the sentinels get no `AUTH`.
    #[serde(default)]
    pub sentinel_password_env: Option<String>,
}

impl RedisConfig {
    /// `[redis]` with only `url` set, every other key at its default.
    pub fn with_url(url: &str) -> Self {
        Self {
            url: url.into(),
            password_env: default_password_env(),
            key_prefix: default_prefix(),
            timeout: default_timeout(),
            ca_file: None,
            sentinel_username: None,
            sentinel_password_env: None,
        }
    }
}

fn default_password_env() -> String {
    "REDIS_PASSWORD".into()
}
pub(super) fn default_prefix() -> String {
    "tbff:".into()
}
fn default_timeout() -> String {
    "1s".into()
}

/// Which Redis, as the URL's scheme says.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://`, `rediss://`).
    Single(Url),
    /// A master found through Redis Sentinel.
    Sentinel {
        /// `host:port` of every sentinel, asked in order.
        sentinels: Vec<(String, u16)>,
        /// The master's name in the sentinels' configuration (`sentinel monitor <name> ...`).
        master: String,
        /// Database number on the master.
        db: i64,
    },
    /// A Redis Cluster, from some of its nodes.
    Cluster {
        /// `host:port` of the seed nodes.
        nodes: Vec<(String, u16)>,
    },
}

/// Validated `[redis]`; it holds passwords, so it is kept out of `Debug`.
#[derive(Clone)]
pub struct RedisSettings {
    /// One server, Sentinel or Cluster.
    pub topology: Topology,
    /// TLS to every node (`rediss`).
    pub tls: bool,
    /// The data nodes' ACL user (Sentinel and Cluster; a single server's is in its URL).
    pub(super) username: Option<String>,
    /// The data nodes' password (Sentinel and Cluster; a single server's is in its URL).
    pub(super) password: Option<String>,
    /// The sentinels' ACL user and password, when they need `AUTH`.
    pub(super) sentinel_auth: (Option<String>, Option<String>),
    /// With TLS, the PEM of a configured CA (else the platform's roots).
    pub(super) ca: Option<Vec<u8>>,
    /// Key prefix.
    pub key_prefix: String,
    /// Per-operation (and connect) timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("redis", &self.display_addr())
            .field("tls", &self.tls)
            .field("ca_file", &self.ca.is_some())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisSettings {
    /// Settings for a password-less Redis at `url`, any of the three kinds (tests, local
    /// setups).
    pub fn new(url: &str) -> Result<Self, String> {
        let parsed = parse_url(url)?;
        Ok(Self {
            topology: parsed.topology,
            tls: parsed.tls,
            username: parsed.username,
            password: None,
            sentinel_auth: (None, None),
            ca: None,
            key_prefix: default_prefix(),
            timeout: Duration::from_secs(1),
        })
    }

    /// Where Redis is, for logs and `/readyz` (never a password).
    pub fn display_addr(&self) -> String {
        let list = |nodes: &[(String, u16)]| {
            nodes
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            Topology::Single(url) => format!(
                "{}:{}",
                url.host_str().unwrap_or("?"),
                url.port().unwrap_or(6379)
            ),
            Topology::Sentinel {
                sentinels, master, ..
            } => format!("sentinel {master}@{}", list(sentinels)),
            Topology::Cluster { nodes } => format!("cluster {}", list(nodes)),
        }
    }
}

/// A URL taken apart (no password in it).
struct Parsed {
    topology: Topology,
    tls: bool,
    username: Option<String>,
    has_password: bool,
}

fn hint() -> &'static str {
    "write e.g. \"redis://127.0.0.1:6379/0\", \"rediss://user@cache.example.com:6380/0\" (TLS), \
     \"redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0\" or \
     \"redis+cluster://10.0.0.1:6379,10.0.0.2:6379\""
}

/// Parses any of the three kinds; errors say what to write instead.
fn parse_url(text: &str) -> Result<Parsed, String> {
    let bad = |why: &str| format!("{text:?} is not a Redis URL ({why}); {}", hint());
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let (tls, kind) = match scheme {
        "redis" => (false, ""),
        "rediss" => (true, ""),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        other => return Err(bad(&format!("unknown scheme {other:?}"))),
    };
    if kind.is_empty() {
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let username = (!url.username().is_empty()).then(|| url.username().to_owned());
        return Ok(Parsed {
            has_password: url.password().is_some(),
            username,
            topology: Topology::Single(url),
            tls,
        });
    }
    if rest.contains('#') || rest.contains('?') {
        return Err(bad("no query or fragment is understood here"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, has_password) = match userinfo {
        None => (None, false),
        Some(u) => match u.split_once(':') {
            Some((user, _)) => ((!user.is_empty()).then(|| user.to_owned()), true),
            None => ((!u.is_empty()).then(|| u.to_owned()), false),
        },
    };
    let default_port = if kind == "sentinel" { 26379 } else { 6379 };
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        let url = Url::parse(&format!("redis://{host}"))
            .ok()
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()) && u.path().is_empty())
            .ok_or_else(|| bad(&format!("{host:?} is not host:port")))?;
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        nodes.push((host.to_owned(), url.port().unwrap_or(default_port)));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let topology = if kind == "sentinel" {
        let (master, db) = match segments[..] {
            [master] => (master, 0),
            [master, db] => (
                master,
                db.parse::<i64>()
                    .map_err(|_| bad(&format!("database {db:?} is not a number")))?,
            ),
            _ => {
                return Err(bad(
                    "the path must be /<master name> or /<master name>/<db>",
                ));
            }
        };
        Topology::Sentinel {
            sentinels: nodes,
            master: master.to_owned(),
            db,
        }
    } else {
        match segments[..] {
            [] | ["0"] => Topology::Cluster { nodes },
            _ => return Err(bad("a Cluster has only database 0: remove the path")),
        }
    };
    Ok(Parsed {
        topology,
        tls,
        username,
        has_password,
    })
}

/// Validates `[redis]`; problems name `redis.<key>` and the fix.
pub fn validate(
    raw: &RedisConfig,
    base: &std::path::Path,
    env: EnvLookup<'_>,
) -> Result<RedisSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut push = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("redis.{key}"),
            message,
        })
    };
    let parsed = if raw.url.contains("#insecure") {
        push("url", "#insecure turns off the check of the server's certificate, so anyone on the path could read every session: remove it and set redis.ca_file to the CA that signed the certificate".into());
        None
    } else {
        parse_url(&raw.url).map_err(|m| push("url", m)).ok()
    };
    if parsed.as_ref().is_some_and(|p| p.has_password) {
        push(
            "url",
            format!(
                "carries a password; remove it and set {} (or {}_FILE) instead: secrets never live in the TOML",
                raw.password_env, raw.password_env
            ),
        );
    }
    let tls = parsed.as_ref().map(|p| p.tls);
    let ca = match (&raw.ca_file, tls) {
        (None, _) => None,
        (Some(_), Some(false)) => {
            push(
                "ca_file",
                "a CA is only used with TLS: write the url as rediss:// (or rediss+sentinel://, rediss+cluster://)".into(),
            );
            None
        }
        (Some(file), _) => match std::fs::read(base.join(file)) {
            Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(pem),
            Ok(_) => {
                push(
                    "ca_file",
                    format!("{file:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
                );
                None
            }
            Err(e) => {
                push("ca_file", format!("{file:?} cannot be read: {e}"));
                None
            }
        },
    };
    let is_sentinel = parsed
        .as_ref()
        .is_some_and(|p| matches!(p.topology, Topology::Sentinel { .. }));
    for (key, set) in [
        ("sentinel_username", raw.sentinel_username.is_some()),
        ("sentinel_password_env", raw.sentinel_password_env.is_some()),
    ] {
        if set && parsed.is_some() && !is_sentinel {
            push(
                key,
                "only used with Sentinel: write the url as redis+sentinel://<sentinels>/<master>"
                    .into(),
            );
        }
    }
    let password = crate::config::problem::read_secret(&raw.password_env, base, env)
        .map_err(|message| push("password_env", message))
        .ok()
        .flatten();
    let sentinel_password = match &raw.sentinel_password_env {
        None => None,
        Some(var) => match crate::config::problem::read_secret(var, base, env) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                push(
                    "sentinel_password_env",
                    format!(
                        "{var} (or {var}_FILE) is not set; set it, or remove the key if the sentinels need no password"
                    ),
                );
                None
            }
            Err(message) => {
                push("sentinel_password_env", message);
                None
            }
        },
    };
    let timeout = humantime::parse_duration(&raw.timeout)
        .map_err(|e| {
            push(
                "timeout",
                format!(
                    "{:?} is not a duration ({e}); write e.g. \"500ms\" or \"1s\"",
                    raw.timeout
                ),
            )
        })
        .ok();
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut parsed = parsed.expect("no problems");
    if let (Topology::Single(url), Some(p)) = (&mut parsed.topology, &password) {
        let _ = url.set_password(Some(p));
    }
    Ok(RedisSettings {
        topology: parsed.topology,
        tls: parsed.tls,
        username: parsed.username,
        password,
        sentinel_auth: (raw.sentinel_username.clone(), sentinel_password),
        ca,
        key_prefix: raw.key_prefix.clone(),
        timeout: timeout.expect("no problems"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> &'static std::path::Path {
        std::path::Path::new(".")
    }

    #[test]
    fn password_comes_from_the_environment_and_stays_out_of_debug() {
        let env = |k: &str| (k == "REDIS_PASSWORD").then(|| "s3cret".to_owned());
        let s = validate(&RedisConfig::with_url("redis://cache:6380/1"), here(), &env).unwrap();
        let Topology::Single(url) = &s.topology else {
            panic!("one server")
        };
        assert_eq!(url.password(), Some("s3cret"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("cache"),
            "{shown}"
        );
        assert_eq!(s.display_addr(), "cache:6380");
    }

    #[test]
    fn bad_urls_and_passwords_in_the_toml_are_problems() {
        let none = |_: &str| None;
        let check = |url: &str| validate(&RedisConfig::with_url(url), here(), &none);
        let p = check("redis://:pw@cache:6379").unwrap_err();
        assert!(p[0].message.contains("REDIS_PASSWORD"), "{p:?}");
        let p = check("http://cache").unwrap_err();
        assert_eq!(p[0].key, "redis.url");
        let p = check("rediss://cache#insecure").unwrap_err();
        assert!(p[0].message.contains("ca_file"), "{p:?}");
        assert!(
            check("rediss://bff@cache:6380/0").is_ok(),
            "rediss:// with an ACL user"
        );
        let mut with_ca = RedisConfig::with_url("redis://cache");
        with_ca.ca_file = Some("ca.pem".into());
        let p = validate(&with_ca, here(), &none).unwrap_err();
        assert!(
            p[0].key == "redis.ca_file" && p[0].message.contains("rediss://"),
            "{p:?}"
        );
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_database() {
        let env = |k: &str| match k {
            "REDIS_PASSWORD" => Some("data-pw".to_owned()),
            "SENTINEL_PW" => Some("sentinel-pw".to_owned()),
            _ => None,
        };
        let mut raw = RedisConfig::with_url(
            "rediss+sentinel://bff@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/2",
        );
        raw.sentinel_username = Some("watcher".into());
        raw.sentinel_password_env = Some("SENTINEL_PW".into());
        let s = validate(&raw, here(), &env).unwrap();
        assert!(
            s.topology
                == Topology::Sentinel {
                    sentinels: vec![
                        ("10.0.0.1".into(), 26380),
                        ("10.0.0.2".into(), 26379),
                        ("::1".into(), 26381)
                    ],
                    master: "mymaster".into(),
                    db: 2,
                }
        );
        assert!(s.tls);
        assert_eq!(s.username.as_deref(), Some("bff"));
        assert_eq!(s.password.as_deref(), Some("data-pw"));
        assert_eq!(
            s.sentinel_auth,
            (Some("watcher".into()), Some("sentinel-pw".into()))
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("-pw") && shown.contains("sentinel mymaster@10.0.0.1:26380"),
            "{shown}"
        );
    }

    #[test]
    fn cluster_urls_list_seed_nodes_and_only_database_zero() {
        let none = |_: &str| None;
        let s = validate(
            &RedisConfig::with_url("redis+cluster://n1:7000,n2"),
            here(),
            &none,
        )
        .unwrap();
        assert!(
            s.topology
                == Topology::Cluster {
                    nodes: vec![("n1".into(), 7000), ("n2".into(), 6379)]
                }
        );
        assert_eq!(s.display_addr(), "cluster n1:7000,n2:6379");
    }

    #[test]
    fn sentinel_and_cluster_mistakes_are_problems_that_say_what_to_write() {
        let none = |_: &str| None;
        let check = |url: &str| validate(&RedisConfig::with_url(url), here(), &none).unwrap_err();
        for (url, says) in [
            ("redis+sentinel://s1:26379", "/<master name>"),
            ("redis+sentinel://s1:26379/m/x", "not a number"),
            ("redis+sentinel://u:pw@s1/m", "REDIS_PASSWORD"),
            ("redis+cluster://n1/3", "only database 0"),
            ("redis+cluster://n1,,n2", "is not host:port"),
            ("redis+cluster://n1#insecure", "ca_file"),
            ("redis+sentinal://s1/m", "unknown scheme"),
        ] {
            let p = check(url);
            assert!(
                p[0].key == "redis.url" && p[0].message.contains(says),
                "{url}: {p:?}"
            );
        }
        let mut raw = RedisConfig::with_url("redis://cache");
        raw.sentinel_password_env = Some("X".into());
        let p = validate(&raw, here(), &none).unwrap_err();
        assert!(
            p[0].key == "redis.sentinel_password_env" && p[0].message.contains("only used"),
            "{p:?}"
        );
        let mut raw = RedisConfig::with_url("redis+sentinel://s1/m");
        raw.sentinel_password_env = Some("UNSET_VAR".into());
        let p = validate(&raw, here(), &none).unwrap_err();
        assert!(p[0].message.contains("UNSET_VAR"), "{p:?}");
    }
}
