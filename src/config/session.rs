//! `[session]` and `[login]`: where sessions live, how long they last, the cookie, and
//! failed-login throttling.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::problem::{Problem, parse_duration, problem};
use crate::auth::store::SessionStoreKind;
use crate::ratelimit::throttle::ThrottleConfig;

/// `[session]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// `"file"` (default, survives restarts), `"memory"` or `"redis"`.
    #[serde(default = "default_store")]
    pub store: String,
    /// Directory of the file store.
    #[serde(default = "default_session_dir")]
    pub dir: PathBuf,
    /// Inactivity timeout, e.g. `"12h"`.
    #[serde(default = "default_session_ttl")]
    pub ttl: String,
    /// How long a session lasts after its login however active, e.g. `"24h"`.
    #[serde(default = "default_absolute_ttl")]
    pub absolute_ttl: String,
    /// Cookie name.
    #[serde(default = "default_cookie")]
    pub cookie_name: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: default_store(),
            dir: default_session_dir(),
            ttl: default_session_ttl(),
            absolute_ttl: default_absolute_ttl(),
            cookie_name: default_cookie(),
        }
    }
}

/// `[login]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
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
    /// Longest username accepted, in bytes (longer is a 400 before anything keys on it).
    #[serde(default = "default_max_username_bytes")]
    pub max_username_bytes: usize,
    /// Longest password accepted, in bytes (longer is a 400 before argon2 runs).
    #[serde(default = "default_max_password_bytes")]
    pub max_password_bytes: usize,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            max_client_failures: default_max_client_failures(),
            window: default_fifteen_minutes(),
            lockout: default_fifteen_minutes(),
            max_username_bytes: default_max_username_bytes(),
            max_password_bytes: default_max_password_bytes(),
        }
    }
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
fn default_absolute_ttl() -> String {
    "24h".into()
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
fn default_max_username_bytes() -> usize {
    256
}
fn default_max_password_bytes() -> usize {
    1024
}
fn default_fifteen_minutes() -> String {
    "15m".into()
}

/// `[session]` and `[login]`, validated.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Session store.
    pub store: SessionStoreKind,
    /// Session inactivity timeout.
    pub ttl: Duration,
    /// How long a session lasts after its login, however active.
    pub absolute_ttl: Duration,
    /// Session cookie name.
    pub cookie_name: String,
    /// Failed-login throttling per account.
    pub throttle: ThrottleConfig,
    /// Failed-login throttling per client address.
    pub client_throttle: ThrottleConfig,
    /// How long a login's fields may be.
    pub login_caps: LoginCaps,
}

/// How long a login's username and password may be, in bytes: anything longer is refused
/// before the throttles key on it or argon2 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginCaps {
    /// `login.max_username_bytes`.
    pub username: usize,
    /// `login.max_password_bytes`.
    pub password: usize,
}

impl LoginCaps {
    /// The largest JSON body a login within these caps can take (every byte escaped as
    /// `\uXXXX`, plus the keys and punctuation).
    pub fn body_bytes(&self) -> usize {
        (self.username + self.password) * 6 + 1024
    }
}

/// Validates `[session]` and `[login]`; `has_redis` says whether a `[redis]` table exists;
/// relative paths resolve against `base`.
pub fn validate(
    session: &SessionConfig,
    login: &LoginConfig,
    has_redis: bool,
    base: &Path,
) -> Result<SessionSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let store = match session.store.as_str() {
        "file" => Some(SessionStoreKind::File(base.join(&session.dir))),
        "memory" => Some(SessionStoreKind::Memory),
        "redis" if has_redis => Some(SessionStoreKind::Redis),
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
    let ttl = parse_duration(&session.ttl, "session.ttl", &mut problems);
    let absolute_ttl = parse_duration(&session.absolute_ttl, "session.absolute_ttl", &mut problems);
    if session.cookie_name.is_empty()
        || !session
            .cookie_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        problems.push(problem(
            "session.cookie_name",
            "must be letters, digits, `_` or `-`",
        ));
    }
    let window = parse_duration(&login.window, "login.window", &mut problems);
    let lockout = parse_duration(&login.lockout, "login.lockout", &mut problems);
    if login.max_failures == 0 {
        problems.push(problem("login.max_failures", "must be at least 1"));
    }
    for (key, value) in [
        ("login.max_username_bytes", login.max_username_bytes),
        ("login.max_password_bytes", login.max_password_bytes),
    ] {
        if !(1..=65_536).contains(&value) {
            problems.push(problem(key, "must be between 1 and 65536 (bytes)"));
        }
    }
    if login.max_client_failures < login.max_failures {
        problems.push(problem(
            "login.max_client_failures",
            "must be at least login.max_failures (one client may mistype several accounts)",
        ));
    }
    match (store, ttl, absolute_ttl, window, lockout) {
        (Some(store), Some(ttl), Some(absolute_ttl), Some(window), Some(lockout))
            if problems.is_empty() =>
        {
            Ok(SessionSettings {
                store,
                ttl,
                absolute_ttl,
                cookie_name: session.cookie_name.clone(),
                throttle: ThrottleConfig {
                    max_failures: login.max_failures,
                    window,
                    lockout,
                },
                client_throttle: ThrottleConfig {
                    max_failures: login.max_client_failures,
                    window,
                    lockout,
                },
                login_caps: LoginCaps {
                    username: login.max_username_bytes,
                    password: login.max_password_bytes,
                },
            })
        }
        _ => Err(problems),
    }
}
