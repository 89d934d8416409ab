//! `[token]`: the JWTs the BFF mints.

use std::time::Duration;

use serde::Deserialize;

use super::problem::{Problem, parse_duration, problem};
use crate::tinybird::mint::NameTemplate;

/// `[token]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
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

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            ttl: default_ttl(),
            name: default_name(),
            rps: None,
        }
    }
}

fn default_ttl() -> String {
    "10m".into()
}
fn default_name() -> String {
    crate::tinybird::mint::DEFAULT_NAME_TEMPLATE.into()
}

/// `[token]`, validated.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// JWT lifetime.
    pub ttl: Duration,
    /// JWT `name` template.
    pub name: NameTemplate,
    /// `limits.rps`.
    pub rps: Option<i64>,
}

/// Validates `[token]`.
pub fn validate(raw: &TokenConfig) -> Result<TokenSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let ttl = parse_duration(&raw.ttl, "token.ttl", &mut problems);
    if let Some(ttl) = ttl
        && (ttl < Duration::from_secs(10) || ttl > Duration::from_secs(24 * 3600))
    {
        problems.push(problem("token.ttl", "must be between 10s and 24h; short TTLs are the only revocation Tinybird JWTs have (10m is a good default)"));
    }
    let name = NameTemplate::compile(&raw.name)
        .map_err(|e| problems.push(problem("token.name", e.to_string())))
        .ok();
    match (ttl, name) {
        (Some(ttl), Some(name)) if problems.is_empty() => Ok(TokenSettings {
            ttl,
            name,
            rps: raw.rps,
        }),
        _ => Err(problems),
    }
}
