//! Budgets, as pure rules: which limits apply to a tenant (its own override, else its user's
//! plan, else the default, key by key), how much of each period it has spent, and whether a
//! request may pass, should get a shorter and slower token, or is refused until the reset.
//!
//! Periods are UTC calendar days and months: a daily budget resets at 00:00 UTC, a monthly
//! one at 00:00 UTC on the 1st. Spending is counted from Tinybird's own rows
//! (`pipe_stats_rt`), so direct browser calls count as much as proxied ones.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// One tenant's limits (`None`: no limit of that kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per UTC day.
    #[serde(default)]
    pub daily_requests: Option<u64>,
    /// Bytes read per UTC day.
    #[serde(default)]
    pub daily_read_bytes: Option<u64>,
    /// Requests per UTC month.
    #[serde(default)]
    pub monthly_requests: Option<u64>,
    /// Bytes read per UTC month.
    #[serde(default)]
    pub monthly_read_bytes: Option<u64>,
    /// `limits.rps` of the tokens minted for these users (overrides `token.rps`).
    #[serde(default)]
    pub rps: Option<i64>,
}

impl Limits {
    /// `self` where set, else `fallback`, key by key.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            daily_requests: self.daily_requests.or(fallback.daily_requests),
            daily_read_bytes: self.daily_read_bytes.or(fallback.daily_read_bytes),
            monthly_requests: self.monthly_requests.or(fallback.monthly_requests),
            monthly_read_bytes: self.monthly_read_bytes.or(fallback.monthly_read_bytes),
            rps: self.rps.or(fallback.rps),
        }
    }

    /// Whether any budget (not counting `rps`) is set.
    pub fn has_budget(&self) -> bool {
        self.daily_requests.is_some()
            || self.daily_read_bytes.is_some()
            || self.monthly_requests.is_some()
            || self.monthly_read_bytes.is_some()
    }
}

/// What a tenant spent in the current day and month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    /// Requests today.
    pub day_requests: u64,
    /// Bytes read today.
    pub day_read_bytes: u64,
    /// Requests this month.
    pub month_requests: u64,
    /// Bytes read this month.
    pub month_read_bytes: u64,
}

/// Which budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `daily_requests`.
    DailyRequests,
    /// `daily_read_bytes`.
    DailyReadBytes,
    /// `monthly_requests`.
    MonthlyRequests,
    /// `monthly_read_bytes`.
    MonthlyReadBytes,
}

impl Kind {
    /// The setting's name, used in messages, metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DailyRequests => "daily_requests",
            Kind::DailyReadBytes => "daily_read_bytes",
            Kind::MonthlyRequests => "monthly_requests",
            Kind::MonthlyReadBytes => "monthly_read_bytes",
        }
    }

    fn monthly(self) -> bool {
        matches!(self, Kind::MonthlyRequests | Kind::MonthlyReadBytes)
    }
}

/// One budget's state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Line {
    /// Which budget.
    pub budget: Kind,
    /// Its limit.
    pub limit: u64,
    /// Spent in the current period.
    pub spent: u64,
    /// When the period ends (Unix seconds).
    pub resets_at: i64,
}

impl Line {
    /// `spent / limit` (1.0 and above: over).
    pub fn fraction(&self) -> f64 {
        if self.limit == 0 {
            return f64::INFINITY;
        }
        self.spent as f64 / self.limit as f64
    }
}

/// A tenant's budget as one request sees it: the limits that apply and where it stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The tenant's limits (tenant over plan over default).
    pub limits: Limits,
    /// Where it stands against them.
    pub standing: Standing,
}

impl Budget {
    /// No budget at all (usage off): nothing limits minting.
    pub const NONE: Budget = Budget {
        limits: Limits {
            daily_requests: None,
            daily_read_bytes: None,
            monthly_requests: None,
            monthly_read_bytes: None,
            rps: None,
        },
        standing: Standing::Within,
    };
}

/// Where a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// No budget, or well within every one.
    Within,
    /// At or past the warning threshold of `line` (the fullest budget): mint shorter, slower.
    Near {
        /// The fullest budget.
        line: Line,
    },
    /// Over `line`: refused until `line.resets_at`.
    Over {
        /// The exhausted budget (the one that resets last when several are).
        line: Line,
    },
}

impl Standing {
    /// The refusal text: names the budget, its limit and the reset.
    pub fn message(&self, tenant: &str) -> Option<String> {
        let Standing::Over { line } = self else {
            return None;
        };
        let reset = Utc
            .timestamp_opt(line.resets_at, 0)
            .single()
            .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M UTC").to_string());
        Some(format!(
            "tenant {tenant} is over its {} budget ({} of {}); it resets at {reset}",
            line.budget.as_str(),
            line.spent,
            line.limit
        ))
    }
}

/// The start of the UTC day of `now`, as `YYYYMMDD` (the counters' period key).
pub fn day_key(now: DateTime<Utc>) -> String {
    now.format("%Y%m%d").to_string()
}

/// The UTC month of `now`, as `YYYYMM`.
pub fn month_key(now: DateTime<Utc>) -> String {
    now.format("%Y%m").to_string()
}

/// 00:00 UTC after `now`.
pub fn next_day(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    Utc.from_utc_datetime(&today) + Duration::days(1)
}

/// 00:00 UTC on the 1st after `now`.
pub fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the 1st exists")
}

/// Where a tenant with `limits` that spent `spent` stands at `now`; `near` is the warning
/// threshold as a fraction of a budget (e.g. 0.8).
pub fn standing(limits: &Limits, spent: &Spent, near: f64, now: DateTime<Utc>) -> Standing {
    let (day_end, month_end) = (next_day(now).timestamp(), next_month(now).timestamp());
    let lines = [
        (
            Kind::DailyRequests,
            limits.daily_requests,
            spent.day_requests,
        ),
        (
            Kind::DailyReadBytes,
            limits.daily_read_bytes,
            spent.day_read_bytes,
        ),
        (
            Kind::MonthlyRequests,
            limits.monthly_requests,
            spent.month_requests,
        ),
        (
            Kind::MonthlyReadBytes,
            limits.monthly_read_bytes,
            spent.month_read_bytes,
        ),
    ]
    .into_iter()
    .filter_map(|(budget, limit, spent)| {
        Some(Line {
            budget,
            limit: limit?,
            spent,
            resets_at: if budget.monthly() { month_end } else { day_end },
        })
    });
    let mut over: Option<Line> = None;
    let mut fullest: Option<Line> = None;
    for line in lines {
        if line.spent >= line.limit {
            // When several are spent, the refusal lasts until the last one resets.
            if over.is_none_or(|o| line.resets_at > o.resets_at) {
                over = Some(line);
            }
        } else if fullest.is_none_or(|f| line.fraction() > f.fraction()) {
            fullest = Some(line);
        }
    }
    match (over, fullest) {
        (Some(line), _) => Standing::Over { line },
        (None, Some(line)) if line.fraction() >= near => Standing::Near { line },
        _ => Standing::Within,
    }
}

/// The budget thresholds crossed by going from `before` to `after` spent on `limit`
/// (`near` and 1.0), for one warning each.
pub fn crossed(before: u64, after: u64, limit: u64, near: f64) -> Vec<f64> {
    [near, 1.0]
        .into_iter()
        .filter(|t| {
            let mark = (limit as f64 * t).ceil() as u64;
            before < mark && after >= mark
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn overrides_apply_key_by_key() {
        let default = Limits {
            daily_requests: Some(1000),
            daily_read_bytes: Some(1 << 30),
            ..Limits::default()
        };
        let plan = Limits {
            daily_requests: Some(100),
            rps: Some(5),
            ..Limits::default()
        };
        let tenant = Limits {
            daily_read_bytes: Some(10),
            ..Limits::default()
        };
        let l = tenant.or(plan).or(default);
        assert_eq!(l.daily_requests, Some(100));
        assert_eq!(l.daily_read_bytes, Some(10));
        assert_eq!(l.rps, Some(5));
        assert!(l.has_budget());
        assert!(!Limits::default().has_budget());
    }

    #[test]
    fn within_near_and_over_with_the_reset_of_the_budget_spent() {
        let now = at("2026-03-15T22:30:00Z");
        let limits = Limits {
            daily_requests: Some(100),
            monthly_read_bytes: Some(1000),
            ..Limits::default()
        };
        let spent = |r, b| Spent {
            day_requests: r,
            month_read_bytes: b,
            ..Spent::default()
        };
        assert_eq!(
            standing(&limits, &spent(10, 10), 0.8, now),
            Standing::Within
        );
        let Standing::Near { line } = standing(&limits, &spent(85, 10), 0.8, now) else {
            panic!()
        };
        assert_eq!(line.budget, Kind::DailyRequests);
        let over = standing(&limits, &spent(100, 10), 0.8, now);
        let Standing::Over { line } = over else {
            panic!()
        };
        assert_eq!(line.resets_at, at("2026-03-16T00:00:00Z").timestamp());
        assert_eq!(
            over.message("initech").unwrap(),
            "tenant initech is over its daily_requests budget (100 of 100); it resets at 2026-03-16 00:00 UTC"
        );
        // Both spent: refused until the later reset, the month's.
        let Standing::Over { line } = standing(&limits, &spent(100, 1000), 0.8, now) else {
            panic!()
        };
        assert_eq!(line.budget, Kind::MonthlyReadBytes);
        assert_eq!(line.resets_at, at("2026-04-01T00:00:00Z").timestamp());
        assert_eq!(
            standing(&Limits::default(), &spent(1 << 40, 0), 0.8, now),
            Standing::Within
        );
    }

    #[test]
    fn periods_roll_over_at_utc_midnight_and_the_first() {
        let now = at("2026-12-31T23:59:59Z");
        assert_eq!(day_key(now), "20261231");
        assert_eq!(month_key(now), "202612");
        assert_eq!(next_day(now), at("2027-01-01T00:00:00Z"));
        assert_eq!(next_month(now), at("2027-01-01T00:00:00Z"));
        let later = now + Duration::seconds(1);
        assert_ne!(
            day_key(later),
            day_key(now),
            "a new day has its own counter"
        );
        assert_eq!(
            next_month(at("2026-02-10T00:00:00Z")),
            at("2026-03-01T00:00:00Z")
        );
    }

    #[test]
    fn thresholds_are_crossed_once() {
        assert_eq!(crossed(0, 79, 100, 0.8), Vec::<f64>::new());
        assert_eq!(crossed(79, 80, 100, 0.8), vec![0.8]);
        assert_eq!(crossed(50, 120, 100, 0.8), vec![0.8, 1.0]);
        assert_eq!(crossed(100, 130, 100, 0.8), Vec::<f64>::new());
    }
}
