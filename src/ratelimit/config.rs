//! `[limits]`: the BFF's own rate limits, globally and per grant.
//!
//! ```toml
//! [limits]
//! user.token = "2/s burst 10"      # POST /api/token, per user
//! user.proxy = "20/s burst 40"     # /api/pipes/..., per user
//! tenant.proxy = "100/s burst 200" # /api/pipes/..., all users of a tenant together
//! on_redis_error = "open"          # or "closed": what to do while Redis is down
//!
//! [limits.grants.platform-admin]   # users matching this grant get other limits
//! user.proxy = "50/s burst 100"
//! tenant.proxy = "off"
//! ```
//!
//! Which buckets exist is which keys are set: `user.*` only is per user, `tenant.*` only per
//! tenant, both is both (a request must pass each). For each limit, the first grant in config
//! order that matches the user and sets that limit decides; otherwise the global value does.
//! Nothing set means no limit (Tinybird's own `limits.rps` on the JWT still applies).

use std::collections::BTreeMap;

use serde::Deserialize;

pub use crate::redis::FailMode;

use super::{Per, Scope};
use crate::config::problem::Problem;
use crate::tinybird::gcra::Rate;

/// `[limits]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per-user buckets.
    #[serde(default)]
    pub user: RawBuckets,
    /// Per-tenant buckets (users without a tenant have none).
    #[serde(default)]
    pub tenant: RawBuckets,
    /// `"open"` (default: allow while Redis is down) or `"closed"` (503).
    #[serde(default = "default_fail")]
    pub on_redis_error: String,
    /// Overrides for users matching a grant, by grant name.
    #[serde(default)]
    pub grants: BTreeMap<String, RawOverride>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            user: RawBuckets::default(),
            tenant: RawBuckets::default(),
            on_redis_error: default_fail(),
            grants: BTreeMap::new(),
        }
    }
}

fn default_fail() -> String {
    "open".into()
}

/// `token` and `proxy` rates of one bucket kind, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuckets {
    /// `POST /api/token`.
    pub token: Option<String>,
    /// `/api/pipes/...`.
    pub proxy: Option<String>,
}

/// `[limits.grants.<name>]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// Per-user overrides.
    #[serde(default)]
    pub user: RawBuckets,
    /// Per-tenant overrides.
    #[serde(default)]
    pub tenant: RawBuckets,
}

/// One limit's setting in an override: not set, switched off, or a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting {
    /// Falls back to the next grant, then the global value.
    #[default]
    Inherit,
    /// No limit.
    Off,
    /// This rate.
    Limit(Rate),
}

/// Four limits: (user, tenant) x (token, proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Table<T> {
    cells: [[T; 2]; 2],
}

impl<T: Copy> Table<T> {
    /// The value for one bucket kind and scope.
    pub fn get(&self, per: Per, scope: Scope) -> T {
        self.cells[per as usize][scope as usize]
    }
    fn set(&mut self, per: Per, scope: Scope, value: T) {
        self.cells[per as usize][scope as usize] = value;
    }
}

/// Validated `[limits]`.
#[derive(Debug, Clone, Default)]
pub struct LimitSettings {
    /// Global limits (`None` = no limit).
    pub global: Table<Option<Rate>>,
    /// Per-grant overrides, in the config order of the grants.
    pub grants: Vec<(String, Table<Setting>)>,
    /// Behaviour while Redis is down (also for login throttling).
    pub on_redis_error: FailMode,
}

impl LimitSettings {
    /// Whether any limit could ever apply.
    pub fn is_empty(&self) -> bool {
        let any = |t: &Table<Option<Rate>>| t.cells.iter().flatten().any(Option::is_some);
        !any(&self.global)
            && self.grants.iter().all(|(_, t)| {
                t.cells
                    .iter()
                    .flatten()
                    .all(|s| !matches!(s, Setting::Limit(_)))
            })
    }

    /// The rate for `per`/`scope` for a user matching `user_grants` (any order).
    pub fn rate_for(&self, per: Per, scope: Scope, user_grants: &[String]) -> Option<Rate> {
        let chosen = self
            .grants
            .iter()
            .filter(|(name, _)| user_grants.contains(name))
            .map(|(_, t)| t.get(per, scope))
            .find(|s| *s != Setting::Inherit);
        match chosen {
            Some(Setting::Limit(rate)) => Some(rate),
            Some(Setting::Off) => None,
            _ => self.global.get(per, scope),
        }
    }
}

/// Validates `[limits]`; `grant_names` are the `[[grants]]` names in config order.
pub fn validate(raw: &LimitsConfig, grant_names: &[String]) -> Result<LimitSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut global = Table::default();
    let read = |at: &str, buckets: &[(Per, &RawBuckets)], problems: &mut Vec<Problem>| {
        let mut table = Table::<Setting>::default();
        for (per, b) in buckets {
            for (scope, text) in [(Scope::Token, &b.token), (Scope::Proxy, &b.proxy)] {
                let Some(text) = text else { continue };
                match Rate::parse(text) {
                    Ok(Some(rate)) => table.set(*per, scope, Setting::Limit(rate)),
                    Ok(None) => table.set(*per, scope, Setting::Off),
                    Err(message) => problems.push(Problem {
                        key: format!("{at}{}.{}", per.as_str(), scope.as_str()),
                        message,
                    }),
                }
            }
        }
        table
    };
    let top = read(
        "limits.",
        &[(Per::User, &raw.user), (Per::Tenant, &raw.tenant)],
        &mut problems,
    );
    for per in [Per::User, Per::Tenant] {
        for scope in [Scope::Token, Scope::Proxy] {
            if let Setting::Limit(rate) = top.get(per, scope) {
                global.set(per, scope, Some(rate));
            }
        }
    }
    for name in raw.grants.keys() {
        if !grant_names.contains(name) {
            problems.push(Problem {
                key: format!("limits.grants.{name}"),
                message: format!(
                    "no [[grants]] is named {name:?}; known grants: {}",
                    grant_names.join(", ")
                ),
            });
        }
    }
    let mut grants = Vec::new();
    for name in grant_names {
        if let Some(o) = raw.grants.get(name) {
            let at = format!("limits.grants.{name}.");
            let table = read(
                &at,
                &[(Per::User, &o.user), (Per::Tenant, &o.tenant)],
                &mut problems,
            );
            grants.push((name.clone(), table));
        }
    }
    let on_redis_error = match raw.on_redis_error.as_str() {
        "open" => FailMode::Open,
        "closed" => FailMode::Closed,
        _ => {
            problems.push(Problem {
                key: "limits.on_redis_error".into(),
                message: "must be \"open\" (let requests through while Redis is down) or \"closed\" (answer 503)".into(),
            });
            FailMode::Open
        }
    };
    if problems.is_empty() {
        Ok(LimitSettings {
            global,
            grants,
            on_redis_error,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<LimitSettings, Vec<Problem>> {
        let raw: LimitsConfig = toml::from_str(toml_text).unwrap();
        validate(&raw, &["admins".into(), "tenants".into()])
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn global_limits_and_grant_overrides_resolve_per_key() {
        let s = parse(
            r#"
            user.token = "2/s"
            user.proxy = "20/s burst 40"
            tenant.proxy = "100/s"
            [grants.admins]
            user.proxy = "50/s"
            tenant.proxy = "off"
            [grants.tenants]
            user.proxy = "5/s"
            "#,
        )
        .unwrap();
        let rate = |per, scope, grants: &[&str]| {
            s.rate_for(per, scope, &names(grants))
                .map(|r| r.to_string())
        };
        assert_eq!(
            rate(Per::User, Scope::Token, &[]).as_deref(),
            Some("2/1s burst 2")
        );
        assert_eq!(rate(Per::Tenant, Scope::Token, &[]), None);
        // The first grant in config order that sets a limit wins, key by key.
        assert_eq!(
            rate(Per::User, Scope::Proxy, &["tenants", "admins"]).as_deref(),
            Some("50/1s burst 50")
        );
        assert_eq!(
            rate(Per::Tenant, Scope::Proxy, &["tenants", "admins"]),
            None
        );
        assert_eq!(
            rate(Per::Tenant, Scope::Proxy, &["tenants"]).as_deref(),
            Some("100/1s burst 100")
        );
        assert!(!s.is_empty());
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("").unwrap().on_redis_error, FailMode::Open);
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let p = parse(
            r#"
            user.token = "fast"
            on_redis_error = "maybe"
            [grants.nobody]
            user.proxy = "1/s"
            "#,
        )
        .unwrap_err();
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limits.user.token",
                "limits.grants.nobody",
                "limits.on_redis_error"
            ]
        );
        assert!(p[0].message.contains("20/s burst 40"), "{}", p[0].message);
        assert!(p[1].message.contains("admins, tenants"), "{}", p[1].message);
    }
}
