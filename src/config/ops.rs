//! The operations half of the config: `admin_listen`, `[redis]`, `[limits]`, `[audit]` and
//! `[log]` (see docs/operations.md). Kept apart from the core settings so each concern's
//! validation lives next to the code that uses it; this file only gathers their problems.

use std::net::SocketAddr;
use std::path::Path;

use super::FileConfig;
use super::problem::{EnvLookup, Problem};

/// The validated operations settings, moved into [`super::Settings`].
pub(super) struct Ops {
    pub admin_listen: Option<SocketAddr>,
    pub redis: Option<crate::redis::RedisSettings>,
    pub limits: crate::ratelimit::LimitSettings,
    pub audit: crate::audit::AuditOutput,
    pub log_format: crate::audit::LogFormat,
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
    match (limits, audit, log_format) {
        (Some(limits), Some(audit), Some(log_format)) if problems.is_empty() => Ok(Ops {
            admin_listen,
            redis,
            limits,
            audit,
            log_format,
        }),
        _ => Err(problems),
    }
}
