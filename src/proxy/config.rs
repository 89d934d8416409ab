//! `[proxy]` settings: how the BFF calls Tinybird on the browser's behalf.
//!
//! Every key has a default, so a config without `[proxy]` gets a working proxy that calls
//! Tinybird with a JWT minted per user. docs/proxy.md documents each key; validation names
//! the key and the fix for every problem, and reports all of them at once.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::problem::{EnvLookup, Problem};
use crate::tinybird::upstream::RetryPolicy;

/// `[proxy]` as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// `"jwt"` (a JWT minted per user, the default) or `"static"` (one read token from env).
    pub credentials: String,
    /// With `credentials = "static"`: the environment variable holding the read token.
    pub static_token_env: String,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling, e.g. `"100ms"`.
    pub base_delay: String,
    /// Largest backoff ceiling, e.g. `"2s"`.
    pub max_delay: String,
    /// Budget for all attempts and waits until Tinybird's response headers arrive.
    pub deadline: String,
    /// TCP/TLS connect timeout per attempt.
    pub connect_timeout: String,
    /// Longest silence while waiting for headers or body bytes.
    pub read_timeout: String,
    /// Calls waiting for Tinybird's response headers at once (and so connections open).
    pub max_connections: usize,
    /// Largest response passed to the client; longer bodies are cut.
    pub max_response_bytes: u64,
    /// Users whose upstream JWT is kept between requests.
    pub token_cache_size: usize,
    /// The optional response cache.
    pub cache: CacheConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        Self {
            credentials: "jwt".into(),
            static_token_env: "TINYBIRD_READ_TOKEN".into(),
            max_attempts: retry.max_attempts,
            base_delay: "100ms".into(),
            max_delay: "2s".into(),
            deadline: "10s".into(),
            connect_timeout: "2s".into(),
            read_timeout: "30s".into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            token_cache_size: 10_000,
            cache: CacheConfig::default(),
        }
    }
}

/// `[proxy.cache]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Pipe name to time-to-live, e.g. `{ top_products = "5s" }`; pipes not named are not cached.
    pub pipes: BTreeMap<String, String>,
    /// Entries kept at most (all pipes, users and parameters together).
    pub max_entries: usize,
    /// Largest response body cached; larger ones are streamed and not cached.
    pub max_entry_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            pipes: BTreeMap::new(),
            max_entries: 1000,
            max_entry_bytes: 1024 * 1024,
        }
    }
}

/// 50 MiB.
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 50 * 1024 * 1024;
/// Enough for ~2,500 calls/s at Tinybird's typical 100 ms per call; see docs/proxy.md.
const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// More than one host's worth of ephemeral ports is a typo, not a plan.
const MAX_CONNECTIONS_LIMIT: usize = 65_535;
/// Longest cache TTL: the cache is for bursts (dashboards opened by many at once), not storage.
const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// Which credential the proxy presents to Tinybird.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// A JWT minted for the calling user: Tinybird also enforces the row filter and counts
    /// `limits.rps` and usage per user.
    #[default]
    Jwt,
    /// One static read token for everyone (from the environment; redacted in `Debug`).
    Static(SecretString),
}

/// Validated `[proxy.cache]`.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// TTL per cached pipe.
    pub pipes: BTreeMap<String, Duration>,
    /// Entries kept at most.
    pub max_entries: usize,
    /// Largest cached body.
    pub max_entry_bytes: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        let raw = CacheConfig::default();
        Self {
            pipes: BTreeMap::new(),
            max_entries: raw.max_entries,
            max_entry_bytes: raw.max_entry_bytes,
        }
    }
}

/// Validated proxy settings (secrets included).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// What the proxy authenticates to Tinybird with.
    pub credentials: Credentials,
    /// Attempts, backoff and deadline.
    pub retry: RetryPolicy,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Read timeout (headers and each body read).
    pub read_timeout: Duration,
    /// Upstream calls in flight at once; more wait for a slot within the deadline.
    pub max_connections: usize,
    /// Response size cap.
    pub max_response_bytes: u64,
    /// Upstream JWTs kept at most (one per user).
    pub token_cache_size: usize,
    /// Response cache.
    pub cache: CacheSettings,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            credentials: Credentials::Jwt,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            token_cache_size: 10_000,
            cache: CacheSettings::default(),
        }
    }
}

fn problem(key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: format!("proxy.{key}"),
        message: message.into(),
    }
}

fn duration(value: &str, key: &str, problems: &mut Vec<Problem>) -> Duration {
    match humantime::parse_duration(value) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.push(problem(key, "must be longer than zero"));
            Duration::ZERO
        }
        Err(e) => {
            problems.push(problem(
                key,
                format!(
                    "{value:?} is not a duration ({e}); write e.g. \"100ms\", \"2s\" or \"1m\""
                ),
            ));
            Duration::ZERO
        }
    }
}

/// Validates `[proxy]`; every problem names its key (`proxy.<key>`) and the fix.
pub fn validate(
    raw: &ProxyConfig,
    base: &std::path::Path,
    env: EnvLookup<'_>,
) -> Result<ProxySettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let credentials = credentials(raw, base, env, &mut problems);
    if !(1..=10).contains(&raw.max_attempts) {
        problems.push(problem(
            "max_attempts",
            "must be between 1 (no retries) and 10",
        ));
    }
    let retry = RetryPolicy {
        max_attempts: raw.max_attempts,
        base_delay: duration(&raw.base_delay, "base_delay", &mut problems),
        max_delay: duration(&raw.max_delay, "max_delay", &mut problems),
        deadline: duration(&raw.deadline, "deadline", &mut problems),
    };
    if retry.max_delay < retry.base_delay {
        problems.push(problem("max_delay", "must be at least base_delay"));
    }
    let connect_timeout = duration(&raw.connect_timeout, "connect_timeout", &mut problems);
    let read_timeout = duration(&raw.read_timeout, "read_timeout", &mut problems);
    if !(1..=MAX_CONNECTIONS_LIMIT).contains(&raw.max_connections) {
        problems.push(problem(
            "max_connections",
            format!(
                "must be between 1 and {MAX_CONNECTIONS_LIMIT} (one connection each; the default is {DEFAULT_MAX_CONNECTIONS})"
            ),
        ));
    }
    if raw.max_response_bytes == 0 {
        problems.push(problem(
            "max_response_bytes",
            "must be at least 1 (the default is 52428800, 50 MiB)",
        ));
    }
    if raw.token_cache_size == 0 {
        problems.push(problem(
            "token_cache_size",
            "must be at least 1 (the default is 10000 users)",
        ));
    }
    let cache = cache(&raw.cache, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ProxySettings {
        credentials,
        retry,
        connect_timeout,
        read_timeout,
        max_connections: raw.max_connections,
        max_response_bytes: raw.max_response_bytes,
        token_cache_size: raw.token_cache_size,
        cache,
    })
}

fn credentials(
    raw: &ProxyConfig,
    base: &std::path::Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Credentials {
    match raw.credentials.as_str() {
        "jwt" => Credentials::Jwt,
        "static" => {
            let var = &raw.static_token_env;
            match crate::config::problem::read_secret(var, base, env) {
                Ok(Some(token))
                    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    Credentials::Static(SecretString::from(token))
                }
                Ok(Some(_)) => {
                    problems.push(problem("static_token_env", format!("{var} is empty or has spaces or non-ASCII characters: set it to a Tinybird read token as copied from the UI")));
                    Credentials::Jwt
                }
                Ok(None) => {
                    problems.push(problem("static_token_env", format!("credentials = \"static\" needs the read token in {var} (or a file named by {var}_FILE): set it (never in the TOML), or use credentials = \"jwt\"")));
                    Credentials::Jwt
                }
                Err(message) => {
                    problems.push(problem("static_token_env", message));
                    Credentials::Jwt
                }
            }
        }
        other => {
            problems.push(problem("credentials", format!("{other:?} is not a mode: use \"jwt\" (a JWT minted per user, the default) or \"static\" (one read token from {})", raw.static_token_env)));
            Credentials::Jwt
        }
    }
}

fn cache(raw: &CacheConfig, problems: &mut Vec<Problem>) -> CacheSettings {
    let mut pipes = BTreeMap::new();
    for (pipe, ttl) in &raw.pipes {
        let key = format!("cache.pipes.{pipe}");
        if !crate::tinybird::names::is_valid_pipe_name(pipe) {
            problems.push(problem(
                &key,
                "is not a pipe name (letters, digits and underscores)",
            ));
        }
        let ttl = duration(ttl, &key, problems);
        if ttl > MAX_CACHE_TTL {
            problems.push(problem(
                &key,
                "must be at most 1h: the cache absorbs bursts, it does not store data",
            ));
        }
        pipes.insert(pipe.clone(), ttl);
    }
    if raw.max_entries == 0 {
        problems.push(problem("cache.max_entries", "must be at least 1"));
    }
    if raw.max_entry_bytes == 0 {
        problems.push(problem("cache.max_entry_bytes", "must be at least 1"));
    }
    CacheSettings {
        pipes,
        max_entries: raw.max_entries,
        max_entry_bytes: raw.max_entry_bytes,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn parse(toml: &str) -> ProxyConfig {
        toml::from_str(toml).unwrap()
    }

    fn keys(problems: Vec<Problem>) -> Vec<String> {
        problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn no_proxy_table_gives_the_documented_defaults() {
        let s = validate(&ProxyConfig::default(), std::path::Path::new("."), &|_| {
            None
        })
        .unwrap();
        assert!(matches!(s.credentials, Credentials::Jwt));
        assert_eq!(s.retry, RetryPolicy::default());
        assert_eq!(s.retry.max_attempts, 4);
        assert_eq!(s.retry.base_delay, Duration::from_millis(100));
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.read_timeout, Duration::from_secs(30));
        assert_eq!(s.max_response_bytes, 50 * 1024 * 1024);
        assert_eq!(s.max_connections, 256);
        assert!(s.cache.pipes.is_empty());
        let d = ProxySettings::default();
        assert_eq!(
            (
                d.retry,
                d.read_timeout,
                d.max_response_bytes,
                d.max_connections
            ),
            (
                s.retry,
                s.read_timeout,
                s.max_response_bytes,
                s.max_connections
            )
        );
    }

    #[test]
    fn static_credentials_come_from_the_environment_and_stay_redacted() {
        let raw = parse("credentials = \"static\"\nstatic_token_env = \"TB_READ\"");
        let s = validate(&raw, std::path::Path::new("."), &|k| {
            (k == "TB_READ").then(|| "p.read-token".to_owned())
        })
        .unwrap();
        let Credentials::Static(token) = &s.credentials else {
            panic!("static")
        };
        assert_eq!(token.expose_secret(), "p.read-token");
        assert!(!format!("{s:?}").contains("p.read-token"));
        let missing = validate(&raw, std::path::Path::new("."), &|_| None).unwrap_err();
        assert_eq!(keys(missing), ["proxy.static_token_env"]);
        let spaced =
            validate(&raw, std::path::Path::new("."), &|_| Some("p.x \n".into())).unwrap_err();
        assert_eq!(keys(spaced), ["proxy.static_token_env"]);
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let raw = parse(
            "credentials = \"admin\"\nmax_attempts = 0\nbase_delay = \"soon\"\nmax_delay = \"0s\"\n\
             max_response_bytes = 0\nmax_connections = 0\n[cache]\nmax_entries = 0\npipes = { \"../x\" = \"5s\", slow = \"2h\" }",
        );
        let mut got = keys(validate(&raw, std::path::Path::new("."), &|_| None).unwrap_err());
        got.sort();
        assert_eq!(
            got,
            [
                "proxy.base_delay",
                "proxy.cache.max_entries",
                "proxy.cache.pipes.../x",
                "proxy.cache.pipes.slow",
                "proxy.credentials",
                "proxy.max_attempts",
                "proxy.max_connections",
                "proxy.max_delay",
                "proxy.max_response_bytes",
            ]
        );
        let huge = validate(
            &parse("max_connections = 1000000"),
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap_err();
        assert_eq!(keys(huge), ["proxy.max_connections"]);
        let most = validate(
            &parse("max_connections = 65535"),
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap();
        assert_eq!(most.max_connections, 65_535);
    }

    #[test]
    fn unknown_keys_are_refused_and_cache_ttls_are_per_pipe() {
        assert!(toml::from_str::<ProxyConfig>("retries = 3").is_err());
        assert!(toml::from_str::<ProxyConfig>("[cache]\nttl = \"5s\"").is_err());
        let s = validate(
            &parse("[cache]\npipes = { top_products = \"5s\" }"),
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap();
        assert_eq!(s.cache.pipes["top_products"], Duration::from_secs(5));
    }
}
