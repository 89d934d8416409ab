//! The shared Redis (or Valkey) connection: sessions and rate limits of every instance live
//! there, so N instances behind a load balancer act as one.
//!
//! Plain `redis://` or TLS (`rediss://`, verified with the platform's roots or `ca_file`), with an
//! ACL user in the URL and the password from the environment.
//!
//! One multiplexed connection per instance (`redis::aio::ConnectionManager`), created lazily
//! so the BFF starts even while Redis is down, and reconnected by the manager after an outage.
//! Every operation has a short timeout: when Redis is gone, requests fail fast (503 for
//! sessions, open or closed for limits) instead of piling up. Failures are counted in
//! `tbff_redis_errors_total{op}`, and the transitions (down, back up) are logged once each
//! rather than once per request.
//!
//! There is deliberately no in-process cache in front of Redis: a logout on one instance must
//! end the session on all of them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use reqwest::Url;
use serde::Deserialize;

use crate::config::problem::{EnvLookup, Problem};
use crate::metrics::Metrics;

/// What to do when the shared store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Let requests through (and count `tbff_redis_errors_total`).
    #[default]
    Open,
    /// Refuse with 503.
    Closed,
}

/// `[redis]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:6379/0` (no password: that comes from `password_env`).
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
    /// With `rediss://`: a PEM file of the CA that signed the server's certificate (a private
    /// CA); unset, the platform's roots verify it.
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_password_env() -> String {
    "REDIS_PASSWORD".into()
}
fn default_prefix() -> String {
    "tbff:".into()
}
fn default_timeout() -> String {
    "1s".into()
}

/// Validated `[redis]`; the URL may carry the password, so it is kept out of `Debug`.
#[derive(Clone)]
pub struct RedisSettings {
    url: Url,
    /// With `rediss://`, the PEM of a configured CA (else the platform's roots).
    ca: Option<Vec<u8>>,
    /// Key prefix.
    pub key_prefix: String,
    /// Per-operation (and connect) timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("host", &self.url.host_str())
            .field("port", &self.url.port())
            .field("tls", &(self.url.scheme() == "rediss"))
            .field("ca_file", &self.ca.is_some())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisSettings {
    /// Settings for a password-less Redis at `url` (tests, local setups).
    pub fn new(url: &str) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        Ok(Self {
            url,
            ca: None,
            key_prefix: default_prefix(),
            timeout: Duration::from_secs(1),
        })
    }

    /// Host and port, for logs and `/readyz` (never the password).
    pub fn display_addr(&self) -> String {
        format!(
            "{}:{}",
            self.url.host_str().unwrap_or("?"),
            self.url.port().unwrap_or(6379)
        )
    }
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
    let mut url = match Url::parse(&raw.url) {
        Ok(u) if u.fragment().is_some_and(|f| f.contains("insecure")) => {
            push("url", "#insecure turns off the check of the server's certificate, so anyone on the path could read every session: remove it and set redis.ca_file to the CA that signed the certificate".into());
            None
        }
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => Some(u),
        _ => {
            push(
                "url",
                format!(
                    "{:?} is not a Redis URL; write e.g. \"redis://127.0.0.1:6379/0\", or \"rediss://user@cache.example.com:6380/0\" for TLS",
                    raw.url
                ),
            );
            None
        }
    };
    let ca = match (&raw.ca_file, &url) {
        (None, _) => None,
        (Some(_), Some(u)) if u.scheme() != "rediss" => {
            push(
                "ca_file",
                "a CA is only used with TLS: write the url as rediss://".into(),
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
    if let Some(u) = &url
        && u.password().is_some()
    {
        push(
            "url",
            format!(
                "carries a password; remove it and set {} (or {}_FILE) instead: secrets never live in the TOML",
                raw.password_env, raw.password_env
            ),
        );
    }
    let password = crate::config::problem::read_secret(&raw.password_env, base, env)
        .map_err(|message| push("password_env", message))
        .ok()
        .flatten();
    if let (Some(u), Some(p)) = (url.as_mut(), password) {
        let _ = u.set_password(Some(&p));
    }
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
    if problems.is_empty() {
        Ok(RedisSettings {
            url: url.expect("no problems"),
            ca,
            key_prefix: raw.key_prefix.clone(),
            timeout: timeout.expect("no problems"),
        })
    } else {
        Err(problems)
    }
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    addr: String,
    metrics: Metrics,
    /// Whether the last operation succeeded; only transitions are logged.
    healthy: AtomicBool,
}

/// A handle on the shared Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("addr", &self.0.addr).finish()
    }
}

/// A failed Redis operation (already logged and counted).
#[derive(Debug, thiserror::Error)]
#[error("Redis at {addr} failed during {op}: {source}")]
pub struct RedisFailure {
    /// Host:port.
    pub addr: String,
    /// What was being done.
    pub op: &'static str,
    /// The client's error.
    #[source]
    pub source: ::redis::RedisError,
}

impl Redis {
    /// Prepares the connection; nothing is sent until the first operation. Needs a Tokio
    /// runtime (the manager spawns its reconnect task).
    pub fn new(settings: &RedisSettings, metrics: Metrics) -> anyhow::Result<Self> {
        // `rediss://` verifies the server with the platform's roots, or the configured CA.
        let client = match &settings.ca {
            None => ::redis::Client::open(settings.url.as_str()),
            Some(pem) => ::redis::Client::build_with_tls(
                settings.url.as_str(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
        }
        .map_err(|e| anyhow::anyhow!("redis.url {}: {e}", settings.display_addr()))?;
        // Few, quick reconnect attempts: a request waiting on a dead Redis should fail within
        // about one timeout, and the next request starts a fresh attempt anyway.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("redis: {e}"))?;
        // Presumed up until an operation fails, like `healthy` below.
        metrics.redis_ok();
        Ok(Self(Arc::new(Inner {
            conn,
            prefix: settings.key_prefix.clone(),
            addr: settings.display_addr(),
            metrics,
            healthy: AtomicBool::new(true),
        })))
    }

    /// A connection handle for one operation (a clone of the multiplexed connection).
    pub fn conn(&self) -> ConnectionManager {
        self.0.conn.clone()
    }

    /// `<prefix><rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.0.prefix)
    }

    /// Host:port, for logs and readiness.
    pub fn addr(&self) -> &str {
        &self.0.addr
    }

    /// Counts and logs the outcome of an operation named `op`.
    pub fn observe<T>(
        &self,
        op: &'static str,
        result: ::redis::RedisResult<T>,
    ) -> Result<T, RedisFailure> {
        match result {
            Ok(v) => {
                self.0.metrics.redis_ok();
                if !self.0.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(redis = %self.0.addr, "redis reachable again");
                }
                Ok(v)
            }
            Err(source) => {
                self.0.metrics.redis_error(op);
                if self.0.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(redis = %self.0.addr, op, error = %source, "redis unavailable");
                } else {
                    tracing::debug!(redis = %self.0.addr, op, error = %source, "redis still unavailable");
                }
                Err(RedisFailure {
                    addr: self.0.addr.clone(),
                    op,
                    source,
                })
            }
        }
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> Result<(), RedisFailure> {
        let mut conn = self.conn();
        let result: ::redis::RedisResult<String> =
            ::redis::cmd("PING").query_async(&mut conn).await;
        self.observe("ping", result).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(url: &str) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            password_env: default_password_env(),
            key_prefix: default_prefix(),
            timeout: default_timeout(),
            ca_file: None,
        }
    }

    #[test]
    fn password_comes_from_the_environment_and_stays_out_of_debug() {
        let env = |k: &str| (k == "REDIS_PASSWORD").then(|| "s3cret".to_owned());
        let s = validate(
            &raw("redis://cache:6380/1"),
            std::path::Path::new("."),
            &env,
        )
        .unwrap();
        assert_eq!(s.url.password(), Some("s3cret"));
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
        let p = validate(
            &raw("redis://:pw@cache:6379"),
            std::path::Path::new("."),
            &none,
        )
        .unwrap_err();
        assert!(p[0].message.contains("REDIS_PASSWORD"), "{p:?}");
        let p = validate(&raw("http://cache"), std::path::Path::new("."), &none).unwrap_err();
        assert_eq!(p[0].key, "redis.url");
        let p = validate(
            &raw("rediss://cache#insecure"),
            std::path::Path::new("."),
            &none,
        )
        .unwrap_err();
        assert!(p[0].message.contains("ca_file"), "{p:?}");
        let tls = validate(
            &raw("rediss://bff@cache:6380/0"),
            std::path::Path::new("."),
            &none,
        );
        assert!(tls.is_ok(), "rediss:// with an ACL user");
        let mut with_ca = raw("redis://cache");
        with_ca.ca_file = Some("ca.pem".into());
        let p = validate(&with_ca, std::path::Path::new("."), &none).unwrap_err();
        assert!(
            p[0].key == "redis.ca_file" && p[0].message.contains("rediss://"),
            "{p:?}"
        );
    }
}
