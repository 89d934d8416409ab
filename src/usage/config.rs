//! `[usage]`: reading Tinybird's usage record and the budgets counted from it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::budget::Limits;
use crate::config::problem::{EnvLookup, Problem, parse_duration, problem, read_secret};
use crate::redis::FailMode;

/// `[usage]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// Environment variable holding a static token scoped
    /// `DATASOURCES:READ:tinybird.pipe_stats_rt` (or `<VAR>_FILE` naming a file with it).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Read with the admin token when `token_env` is unset (it can read everything: avoid).
    #[serde(default)]
    pub use_admin_token: bool,
    /// How often `pipe_stats_rt` is read.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: String,
    /// How far behind the newest row each poll re-reads, for rows Tinybird records late.
    #[serde(default = "default_lookback")]
    pub lookback: String,
    /// How far back the first poll reads (at most 7d, Tinybird's TTL).
    #[serde(default = "default_backfill")]
    pub backfill: String,
    /// Rows read per poll at most (a backlog drains over several polls).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Budgets while usage cannot be read: "open" (allow) or "closed" (503).
    #[serde(default = "default_on_error")]
    pub on_error: String,
    /// The user attribute naming their plan (for `[usage.plans.<plan>]`).
    #[serde(default = "default_plan_attribute")]
    pub plan_attribute: String,
    /// Fraction of a budget at which tokens get shorter and slower, and a warning is logged.
    #[serde(default = "default_near")]
    pub near: f64,
    /// Token lifetime once near a budget.
    #[serde(default = "default_near_ttl")]
    pub near_ttl: String,
    /// `limits.rps` once near a budget (unset: unchanged).
    #[serde(default)]
    pub near_rps: Option<i64>,
    /// Default budgets of every tenant.
    #[serde(default)]
    pub budget: Limits,
    /// Per plan (a user attribute): budgets and `rps`, over the default.
    #[serde(default)]
    pub plans: BTreeMap<String, Limits>,
    /// Per tenant, over its plan and the default.
    #[serde(default)]
    pub tenants: BTreeMap<String, Limits>,
}

fn default_token_env() -> String {
    "TINYBIRD_USAGE_TOKEN".into()
}
fn default_poll_interval() -> String {
    "30s".into()
}
fn default_lookback() -> String {
    "2m".into()
}
fn default_backfill() -> String {
    "24h".into()
}
fn default_max_rows() -> usize {
    100_000
}
fn default_on_error() -> String {
    "open".into()
}
fn default_plan_attribute() -> String {
    "plan".into()
}
fn default_near() -> f64 {
    0.8
}
fn default_near_ttl() -> String {
    "1m".into()
}

/// `[usage]`, validated.
#[derive(Clone)]
pub struct UsageSettings {
    /// The token `pipe_stats_rt` is read with.
    pub token: SecretString,
    /// Whether that is the admin token (`check` warns).
    pub token_is_admin: bool,
    /// Where the token came from (for messages): the variable's name.
    pub token_env: String,
    /// Poll period.
    pub poll_interval: Duration,
    /// Re-read behind the newest row.
    pub lookback: Duration,
    /// First poll's reach.
    pub backfill: Duration,
    /// Row cap per poll.
    pub max_rows: usize,
    /// Budgets while usage is unreadable.
    pub on_error: FailMode,
    /// User attribute naming the plan.
    pub plan_attribute: String,
    /// Warning threshold (0..1].
    pub near: f64,
    /// Token lifetime near a budget.
    pub near_ttl: Duration,
    /// `limits.rps` near a budget.
    pub near_rps: Option<i64>,
    /// Default budgets.
    pub budget: Limits,
    /// Per plan.
    pub plans: BTreeMap<String, Limits>,
    /// Per tenant.
    pub tenants: BTreeMap<String, Limits>,
}

impl std::fmt::Debug for UsageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageSettings")
            .field("token_env", &self.token_env)
            .field("token_is_admin", &self.token_is_admin)
            .field("poll_interval", &self.poll_interval)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl UsageSettings {
    /// A tenant's limits: its own, else its user's plan, else the default, key by key.
    pub fn limits_for(&self, tenant: Option<&str>, plan: Option<&str>) -> Limits {
        let tenant = tenant
            .and_then(|t| self.tenants.get(t))
            .copied()
            .unwrap_or_default();
        let plan = plan
            .and_then(|p| self.plans.get(p))
            .copied()
            .unwrap_or_default();
        tenant.or(plan).or(self.budget)
    }
}

/// Validates `[usage]`; `admin` is the signing key, used only with `use_admin_token`.
pub fn validate(
    raw: &UsageConfig,
    base: &Path,
    env: EnvLookup<'_>,
    admin: Option<&SecretString>,
) -> Result<UsageSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let poll_interval = parse_duration(&raw.poll_interval, "usage.poll_interval", p);
    if poll_interval
        .is_some_and(|d| d < Duration::from_millis(100) || d > Duration::from_secs(3600))
    {
        p.push(problem(
            "usage.poll_interval",
            "must be between 100ms and 1h; 30s is a good default",
        ));
    }
    let lookback = parse_duration(&raw.lookback, "usage.lookback", p);
    if lookback.is_some_and(|d| d > Duration::from_secs(3600)) {
        p.push(problem(
            "usage.lookback",
            "must be at most 1h (rows are rarely recorded more than seconds late)",
        ));
    }
    let backfill = parse_duration(&raw.backfill, "usage.backfill", p);
    if backfill.is_some_and(|d| d > Duration::from_secs(7 * 86_400)) {
        p.push(problem(
            "usage.backfill",
            "must be at most 7d: pipe_stats_rt keeps 7 days",
        ));
    }
    let near_ttl = parse_duration(&raw.near_ttl, "usage.near_ttl", p);
    if near_ttl.is_some_and(|d| d < Duration::from_secs(10)) {
        p.push(problem(
            "usage.near_ttl",
            "must be at least 10s (like token.ttl)",
        ));
    }
    if !(raw.near > 0.0 && raw.near <= 1.0) {
        p.push(problem(
            "usage.near",
            format!("{} is not a fraction in (0, 1]; write e.g. 0.8", raw.near),
        ));
    }
    if raw.max_rows == 0 || raw.max_rows > 1_000_000 {
        p.push(problem("usage.max_rows", "must be between 1 and 1000000"));
    }
    let on_error = match raw.on_error.as_str() {
        "open" => Some(FailMode::Open),
        "closed" => Some(FailMode::Closed),
        other => {
            p.push(problem("usage.on_error", format!("{other:?}: write \"open\" (allow while usage is unreadable) or \"closed\" (refuse with 503)")));
            None
        }
    };
    let rps_ok = |l: &Limits| l.rps.is_none_or(|r| r > 0);
    for (what, limits) in raw
        .plans
        .iter()
        .map(|(k, v)| (format!("usage.plans.{k}"), v))
        .chain(
            raw.tenants
                .iter()
                .map(|(k, v)| (format!("usage.tenants.{k}"), v)),
        )
        .chain([("usage.budget".to_owned(), &raw.budget)])
    {
        if !rps_ok(limits) {
            p.push(problem(
                format!("{what}.rps"),
                "must be a positive number of requests per second",
            ));
        }
    }
    if raw.near_rps.is_some_and(|r| r <= 0) {
        p.push(problem(
            "usage.near_rps",
            "must be a positive number of requests per second",
        ));
    }
    let token = match read_secret(&raw.token_env, base, env) {
        Ok(Some(t)) if !t.trim().is_empty() => Some((SecretString::from(t), false)),
        Ok(_) if raw.use_admin_token => admin.map(|a| (a.clone(), true)),
        Ok(_) => {
            p.push(problem("usage.token_env", format!("set {0} (or {0}_FILE) to a static token scoped DATASOURCES:READ:tinybird.pipe_stats_rt, or set usage.use_admin_token = true to read with the admin token", raw.token_env)));
            None
        }
        Err(message) => {
            p.push(problem("usage.token_env", message));
            None
        }
    };
    match (token, poll_interval, lookback, backfill, near_ttl, on_error) {
        (
            Some((token, token_is_admin)),
            Some(poll_interval),
            Some(lookback),
            Some(backfill),
            Some(near_ttl),
            Some(on_error),
        ) if problems.is_empty() => Ok(UsageSettings {
            token,
            token_is_admin,
            token_env: raw.token_env.clone(),
            poll_interval,
            lookback,
            backfill,
            max_rows: raw.max_rows,
            on_error,
            plan_attribute: raw.plan_attribute.clone(),
            near: raw.near,
            near_ttl,
            near_rps: raw.near_rps,
            budget: raw.budget,
            plans: raw.plans.clone(),
            tenants: raw.tenants.clone(),
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<UsageSettings, Vec<Problem>> {
        let raw: UsageConfig = toml::from_str(text).unwrap();
        validate(
            &raw,
            Path::new("."),
            env,
            Some(&SecretString::from("p.admin")),
        )
    }

    #[test]
    fn the_token_comes_from_its_variable_or_explicitly_from_the_admin_token() {
        let none = |_: &str| None;
        let problems = check("", &none).unwrap_err();
        assert_eq!(problems[0].key, "usage.token_env");
        assert!(problems[0].message.contains("TINYBIRD_USAGE_TOKEN"));
        let admin = check("use_admin_token = true", &none).unwrap();
        assert!(admin.token_is_admin);
        let env = |k: &str| (k == "U").then(|| "p.usage".to_owned());
        let s = check("token_env = \"U\"\n[tenants.initech]\ndaily_requests = 5\n[plans.free]\ndaily_requests = 50\nrps = 2", &env).unwrap();
        assert!(!s.token_is_admin);
        assert_eq!(
            s.limits_for(Some("initech"), Some("free")).daily_requests,
            Some(5)
        );
        assert_eq!(s.limits_for(Some("acme"), Some("free")).rps, Some(2));
        assert_eq!(s.limits_for(Some("acme"), None), Limits::default());
    }

    #[test]
    fn bad_values_are_named_with_their_fix() {
        let env = |k: &str| (k == "TINYBIRD_USAGE_TOKEN").then(|| "p.usage".to_owned());
        let problems = check(
            "poll_interval = \"1ms\"\nnear = 2.0\non_error = \"maybe\"\n[plans.x]\nrps = 0",
            &env,
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "usage.poll_interval",
                "usage.near",
                "usage.on_error",
                "usage.plans.x.rps"
            ]
        );
    }
}
