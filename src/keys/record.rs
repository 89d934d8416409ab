//! A key as stored ([`KeyRecord`]) and as shown ([`KeyView`]): never its secret, and the
//! hashes only where the store needs them.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::secret::SecretHash;

/// What a key may read: names of pipes and data sources. The rows (fixed params, filters) come
/// from the tenant's grants at each use, so a key never outlives a narrowed grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScopes {
    /// Pipes (`PIPES:READ`), sorted.
    #[serde(default)]
    pub pipes: Vec<String>,
    /// Data sources (`DATASOURCES:READ`, for `/v0/sql`), sorted.
    #[serde(default)]
    pub datasources: Vec<String>,
}

impl KeyScopes {
    /// Sorted and without duplicates.
    pub fn normalized(mut self) -> Self {
        for list in [&mut self.pipes, &mut self.datasources] {
            list.sort();
            list.dedup();
        }
        self
    }

    /// Whether it reads nothing.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty() && self.datasources.is_empty()
    }
}

/// How often a quota resets (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// At midnight UTC.
    Day,
    /// On the first of the month, midnight UTC.
    Month,
}

impl Period {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// From `day`/`daily` or `month`/`monthly`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" | "daily" => Some(Period::Day),
            "month" | "monthly" => Some(Period::Month),
            _ => None,
        }
    }

    /// The period `at` falls in, as counters are keyed: `2026-05-20` or `2026-05`.
    pub fn key(self, at: i64) -> String {
        let t = Utc.timestamp_opt(at, 0).single().unwrap_or_default();
        match self {
            Period::Day => t.format("%Y-%m-%d").to_string(),
            Period::Month => t.format("%Y-%m").to_string(),
        }
    }

    /// When the period `at` falls in ends (Unix seconds).
    pub fn resets_at(self, at: i64) -> i64 {
        let t: DateTime<Utc> = Utc.timestamp_opt(at, 0).single().unwrap_or_default();
        let day = t.date_naive();
        let next = match self {
            Period::Day => day.succ_opt(),
            Period::Month => {
                let (y, m) = if day.month() == 12 {
                    (day.year() + 1, 1)
                } else {
                    (day.year(), day.month() + 1)
                };
                chrono::NaiveDate::from_ymd_opt(y, m, 1)
            }
        };
        next.and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(at + 86_400, |d| d.and_utc().timestamp())
    }
}

/// At most `requests` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Requests allowed per period.
    pub requests: u64,
    /// The period.
    pub period: Period,
}

/// A key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The public id (12 hex characters).
    pub id: String,
    /// The tenant that owns it.
    pub tenant: String,
    /// A name for people ("nightly export").
    pub name: String,
    /// SHA-256 of the current secret.
    pub secret_hash: SecretHash,
    /// SHA-256 of the secret before the last roll, and until when it still works.
    pub previous: Option<(SecretHash, i64)>,
    /// What it may read.
    pub scopes: KeyScopes,
    /// The attributes it acts with (grants and the workspace rule read them).
    pub attributes: BTreeMap<String, String>,
    /// When it stops working (Unix seconds), if ever.
    pub expires_at: Option<i64>,
    /// `limits.rps` of its tokens, and its own rate on the BFF.
    pub rps: Option<u32>,
    /// Its request quota.
    pub quota: Option<Quota>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// Who created it (a user id, or `cli:<operator>`).
    pub created_by: String,
    /// When it was last used, as far as the store knows (written in batches).
    pub last_used_at: Option<i64>,
    /// When it was revoked, and by whom.
    pub revoked: Option<(i64, String)>,
    /// When it was last rolled.
    pub rolled_at: Option<i64>,
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Active,
    /// Revoked: never works again.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl KeyRecord {
    /// Its status at `now`.
    pub fn status(&self, now: i64) -> Status {
        if self.revoked.is_some() {
            Status::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The id as the grants and usage see it: `key:<id>`.
    pub fn principal_id(&self) -> String {
        principal_id(&self.id)
    }

    /// The JWT `name` of its tokens: its id and tenant, so Tinybird's `limits.rps` and
    /// `pipe_stats_rt` count per key.
    pub fn token_name(&self) -> String {
        format!("{}@{}", self.principal_id(), self.tenant)
    }
}

/// `key:<id>`: the user id a key acts as.
pub fn principal_id(id: &str) -> String {
    format!("key:{id}")
}

/// A key as the routes and the CLI show it (no secret, no hash).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The id.
    pub id: String,
    /// `tbk_live_3f9a`: what the full key starts with.
    pub prefix: String,
    /// The name.
    pub name: String,
    /// The tenant.
    pub tenant: String,
    /// Active, revoked or expired.
    pub status: Status,
    /// What it may read.
    pub scopes: KeyScopes,
    /// Unix seconds, if it expires.
    pub expires_at: Option<i64>,
    /// Requests per second, if limited.
    pub rps: Option<u32>,
    /// Its quota, if any.
    pub quota: Option<Quota>,
    /// Unix seconds.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
    /// Unix seconds, as recorded (at most `keys.flush_interval` behind).
    pub last_used_at: Option<i64>,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// Unix seconds of the last roll.
    pub rolled_at: Option<i64>,
    /// Until when the secret before the last roll still works (Unix seconds), if it does.
    pub previous_valid_until: Option<i64>,
    /// The JWT `name` of its tokens (how Tinybird's usage record names it).
    pub token_name: String,
}

impl KeyRecord {
    /// Its view at `now`.
    pub fn view(&self, now: i64) -> KeyView {
        KeyView {
            id: self.id.clone(),
            prefix: super::secret::display_prefix(&self.id),
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            status: self.status(now),
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
            rps: self.rps,
            quota: self.quota,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            last_used_at: self.last_used_at,
            revoked_at: self.revoked.as_ref().map(|r| r.0),
            revoked_by: self.revoked.as_ref().map(|r| r.1.clone()),
            rolled_at: self.rolled_at,
            previous_valid_until: self.previous.map(|p| p.1).filter(|until| *until > now),
            token_name: self.token_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_key_and_reset_in_utc() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 30)
            .unwrap()
            .timestamp();
        assert_eq!(Period::Day.key(at), "2026-12-31");
        assert_eq!(Period::Month.key(at), "2026-12");
        assert_eq!(Period::Day.resets_at(at) - at, 30);
        assert_eq!(Period::Month.resets_at(at) - at, 30);
        let mid = Utc
            .with_ymd_and_hms(2026, 2, 10, 12, 0, 0)
            .unwrap()
            .timestamp();
        let march = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert_eq!(Period::Month.resets_at(mid), march);
        assert_eq!(Period::parse("monthly"), Some(Period::Month));
        assert_eq!(Period::parse("weekly"), None);
    }
}
