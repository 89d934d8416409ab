//! The operations half of the config: `admin_listen`, `[redis]`, `[limits]`, `[audit]` and
//! `[log]` (see docs/operations.md). Kept apart from the core settings so each concern's
//! validation lives next to the code that uses it; this file only gathers their problems.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::FileConfig;
use super::problem::{EnvLookup, Problem};

/// The validated operations settings, moved into [`super::Settings`].
pub(super) struct Ops {
    pub admin_listen: Option<SocketAddr>,
    pub redis: Option<crate::redis::RedisSettings>,
    pub limits: crate::ratelimit::LimitSettings,
    pub audit: crate::audit::AuditOutput,
    pub log_format: crate::audit::LogFormat,
    pub reload_watch: Option<Duration>,
}

/// `[reload]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// How often to look at the config, users and key files for a change; `"off"` leaves
    /// `SIGHUP` as the only trigger.
    #[serde(default = "default_watch")]
    pub watch: String,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: default_watch(),
        }
    }
}

fn default_watch() -> String {
    "2s".into()
}

/// Validates every operations key, returning all problems at once.
pub(super) fn validate(
    raw: &FileConfig,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<Ops, Vec<Problem>> {
    let mut problems = Vec::new();
    let admin_listen = match &raw.admin_listen {
        None => None,
        Some(text) => super::problem::parse_addr(text, "admin_listen", &mut problems),
    };
    if let (Some(admin), Ok(app)) = (admin_listen, raw.listen.parse::<SocketAddr>())
        && admin == app
        && admin.port() != 0
    {
        problems.push(Problem {
            key: "admin_listen".into(),
            message:
                "is the same address as listen: give /metrics its own port, e.g. \"127.0.0.1:9300\""
                    .into(),
        });
    }
    let redis = raw.redis.as_ref().and_then(|r| {
        crate::redis::validate(r, base, env)
            .map_err(|p| problems.extend(p))
            .ok()
    });
    let grant_names: Vec<String> = raw.grants.iter().map(|g| g.name.clone()).collect();
    let limits = crate::ratelimit::config::validate(&raw.limits, &grant_names)
        .map_err(|p| problems.extend(p))
        .ok();
    let audit = crate::audit::validate(&raw.audit, base)
        .map_err(|p| problems.push(p))
        .ok();
    let log_format = crate::audit::validate_log(&raw.log)
        .map_err(|p| problems.push(p))
        .ok();
    let reload_watch = match raw.reload.watch.as_str() {
        "off" => Some(None),
        text => super::problem::parse_duration(text, "reload.watch", &mut problems).and_then(|d| {
            if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                problems.push(Problem {
                    key: "reload.watch".into(),
                    message: "must be between 100ms and 1h, or \"off\" (then only SIGHUP reloads)"
                        .into(),
                });
                None
            } else {
                Some(Some(d))
            }
        }),
    };
    match (limits, audit, log_format, reload_watch) {
        (Some(limits), Some(audit), Some(log_format), Some(reload_watch))
            if problems.is_empty() =>
        {
            Ok(Ops {
                reload_watch,
                admin_listen,
                redis,
                limits,
                audit,
                log_format,
            })
        }
        _ => Err(problems),
    }
}
