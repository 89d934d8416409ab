//! Usage across both paths, and budgets that hold on the direct one.
//!
//! The browser calls Tinybird directly with its JWT, so the BFF never sees most requests.
//! Tinybird does: `tinybird.pipe_stats_rt` has one row per request with `token_name` = the
//! JWT's `name` (docs/tinybird.md, "Usage attribution"). This service reads it server-side through the SQL API
//! with a narrow static token, maps each name back to the user and tenant the BFF minted it
//! for, and keeps the result as one-minute cells ([`store`]) that `GET /api/admin/usage`
//! reports and the budgets ([`budget`], pure) are counted from.
//!
//! - [`rows`]: the query, its answer and the cursor that reads only new rows (pure);
//! - [`store`]: the cells and the report of a window (pure);
//! - [`budget`]: limits per tenant and plan, periods, standing (pure);
//! - [`config`]: the `[usage]` section;
//! - [`poller`]: the I/O: polling, and sharing through Redis.
//!
//! With Redis, one instance (whoever holds a short lease) polls, counts the budgets in Redis
//! and publishes each poll's cells on a Redis stream that every instance applies, so every
//! instance reports the same numbers and enforces the same budgets. Without Redis each
//! instance polls on its own. Names minted and proxied request ids are kept in bounded
//! in-process caches (and in Redis when configured, so the polling instance knows what the
//! others minted). A name the BFF never minted is reported under [`store::UNKNOWN`], never
//! guessed from its shape.

pub mod budget;
pub mod config;
pub mod poller;
pub mod rows;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::redis::FailMode;
use crate::redis::Redis;
use crate::user::User;
pub use budget::Budget;
use budget::{Limits, Spent, Standing};
pub use config::{UsageConfig, UsageSettings};
use store::{Store, Window};

/// Names and proxied request ids kept in process (like the token name cache).
const CACHED: usize = 10_000;
/// Cells kept in process at most (about 200 bytes each).
const MAX_CELLS: usize = 1_000_000;

/// Who a JWT name was minted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// User id.
    pub user: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// The user's plan attribute, when set.
    pub plan: Option<String>,
}

/// How the last poll went, shown on `/readyz` and the admin page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// Whether the last poll succeeded.
    pub ok: bool,
    /// Unix seconds of the last successful poll.
    pub last_success: Option<i64>,
    /// Unix seconds of the last attempt.
    pub last_attempt: Option<i64>,
    /// What went wrong, for operators (never a token).
    pub error: Option<String>,
}

/// Why a request is refused on budget grounds.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over a budget: 429 with `Retry-After` until the reset.
    Over {
        /// Names the budget, its limit and the reset.
        message: String,
        /// Seconds until the reset.
        retry_after: u64,
    },
    /// Usage cannot be read and `usage.on_error = "closed"`: 503.
    Unavailable(String),
}

impl From<Refusal> for crate::error::AppError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Over {
                message,
                retry_after,
            } => crate::error::AppError::TooManyRequests {
                message,
                retry_after,
            },
            Refusal::Unavailable(m) => crate::error::AppError::Unavailable(m),
        }
    }
}

/// The budget of `tenant` as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    /// The limits that apply (tenant over plan over default).
    pub limits: Limits,
    /// Spent in the current day and month.
    pub spent: Spent,
    /// Within, near or over.
    pub standing: Standing,
}

/// `GET /api/admin/usage`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageView {
    /// `15m`, `1h`, `24h` or `7d`.
    pub window: &'static str,
    /// RFC 3339.
    pub generated_at: String,
    /// Whether Tinybird's record is read at all (`[usage]` configured).
    pub enabled: bool,
    /// How reading it goes.
    pub source: SourceStatus,
    /// Start of each chart step (Unix seconds); tenants' `series` align with it.
    pub steps: Vec<i64>,
    /// Per tenant, busiest first.
    pub tenants: Vec<store::TenantReport>,
}

/// Memory-mode budget counters: `(tenant, period) → (requests, read bytes)`.
type Counters = HashMap<(String, String), (u64, u64)>;

/// The usage service; one per running BFF.
pub struct Usage {
    settings: UsageSettings,
    poller: poller::Source,
    redis: Option<Redis>,
    metrics: Metrics,
    audit: Arc<Audit>,
    store: Mutex<Store>,
    names: quick_cache::sync::Cache<String, Owner>,
    /// Plans last seen per tenant, for the budgets counted at poll time.
    plans: quick_cache::sync::Cache<String, String>,
    proxied: quick_cache::sync::Cache<String, Owner>,
    counters: Mutex<Counters>,
    status: Mutex<SourceStatus>,
    /// The cursor, without Redis (with Redis it lives there, for whichever instance polls).
    cursor: Mutex<rows::Cursor>,
    /// The id of the last stream entry applied (`0`: none yet).
    followed: Mutex<String>,
    /// This instance's id, for the polling lease.
    instance: String,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage")
            .field("settings", &self.settings)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Usage {
    /// The service reading `{tinybird_url}/v0/sql`; call [`Usage::start`] to poll.
    pub fn new(
        settings: UsageSettings,
        tinybird_url: &str,
        redis: Option<Redis>,
        metrics: Metrics,
        audit: Arc<Audit>,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            poller: poller::Source::new(tinybird_url, &settings)?,
            settings,
            redis,
            metrics,
            audit,
            store: Mutex::new(Store::new(MAX_CELLS)),
            names: quick_cache::sync::Cache::new(CACHED),
            plans: quick_cache::sync::Cache::new(CACHED),
            proxied: quick_cache::sync::Cache::new(CACHED),
            counters: Mutex::new(HashMap::new()),
            status: Mutex::new(SourceStatus::default()),
            cursor: Mutex::new(rows::Cursor::default()),
            followed: Mutex::new("0".into()),
            instance: uuid::Uuid::new_v4().to_string(),
        }))
    }

    /// Starts polling (and following the other instances' polls); the task ends when the
    /// service is dropped.
    pub fn start(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.settings.poll_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(usage) = weak.upgrade() else { break };
                usage.tick().await;
            }
        });
    }

    fn owner_of(&self, user: &User) -> Owner {
        Owner {
            user: user.id.clone(),
            tenant: user.tenant.clone(),
            plan: self.plan_of(user).map(str::to_owned),
        }
    }

    fn plan_of<'u>(&self, user: &'u User) -> Option<&'u str> {
        user.attributes
            .get(&self.settings.plan_attribute)
            .map(String::as_str)
    }

    /// A JWT named `name` was minted for `user`: its rows belong to them.
    pub fn minted(&self, user: &User, name: &str) {
        let owner = self.owner_of(user);
        if let (Some(t), Some(p)) = (&owner.tenant, &owner.plan) {
            self.plans.insert(t.clone(), p.clone());
        }
        if self.names.get(name).as_ref() == Some(&owner) {
            return;
        }
        self.names.insert(name.to_owned(), owner.clone());
        if let Some(redis) = self.redis.clone() {
            let name = name.to_owned();
            tokio::spawn(async move { poller::share_name(&redis, &name, &owner).await });
        }
    }

    /// The proxy's call answered by Tinybird as `request_id` was made for `user`.
    pub fn proxied(&self, user: &User, request_id: &str) {
        let owner = self.owner_of(user);
        self.proxied.insert(request_id.to_owned(), owner.clone());
        if let Some(redis) = self.redis.clone() {
            let id = request_id.to_owned();
            tokio::spawn(async move { poller::share_proxied(&redis, &id, &owner).await });
        }
    }

    /// The limits that apply to `user`'s tenant.
    pub fn limits_for(&self, user: &User) -> Limits {
        self.settings
            .limits_for(user.tenant.as_deref(), self.plan_of(user))
    }

    /// Where `user`'s tenant stands against its budgets (with the limits that apply to it),
    /// or why it is refused.
    pub async fn check(&self, user: &User) -> Result<Budget, Refusal> {
        let limits = self.limits_for(user);
        let within = Budget {
            limits,
            standing: Standing::Within,
        };
        if !limits.has_budget() {
            return Ok(within);
        }
        let closed = self.settings.on_error == FailMode::Closed;
        if closed && self.stale() {
            return Err(Refusal::Unavailable(
                "usage budgets cannot be checked (Tinybird's usage record is unreadable); try again shortly".into(),
            ));
        }
        let now = Utc::now();
        let tenant = user.tenant.as_deref().unwrap_or(store::NO_TENANT);
        let spent = match self.spent(tenant, now).await {
            Ok(s) => s,
            Err(()) if closed => {
                return Err(Refusal::Unavailable(
                    "usage budgets cannot be checked (shared store down); try again shortly".into(),
                ));
            }
            Err(()) => return Ok(within),
        };
        let standing = budget::standing(&limits, &spent, self.settings.near, now);
        match standing.message(tenant) {
            Some(message) => {
                let Standing::Over { line } = standing else {
                    unreachable!("only Over has a message")
                };
                self.metrics
                    .budget_refused(Some(tenant), line.budget.as_str());
                Err(Refusal::Over {
                    message,
                    retry_after: (line.resets_at - now.timestamp()).max(1) as u64,
                })
            }
            None => Ok(Budget { limits, standing }),
        }
    }

    /// Token lifetime and `limits.rps` under `budget`: its plan's `rps` over `rps`; near a
    /// budget, the shorter `near_ttl` and `near_rps`.
    pub fn mint_adjust(
        &self,
        budget: &Budget,
        ttl: Duration,
        rps: Option<i64>,
    ) -> (Duration, Option<i64>) {
        let rps = budget.limits.rps.or(rps);
        match budget.standing {
            Standing::Near { .. } => (
                ttl.min(self.settings.near_ttl),
                self.settings.near_rps.or(rps).map(|r| match rps {
                    Some(base) => r.min(base),
                    None => r,
                }),
            ),
            _ => (ttl, rps),
        }
    }

    /// Whether the usage record has not been read for a while (three polls, at least 10s).
    pub fn stale(&self) -> bool {
        let grace = (self.settings.poll_interval * 3).max(Duration::from_secs(10));
        let status = lock(&self.status);
        status
            .last_success
            .is_none_or(|t| Utc::now().timestamp() - t > grace.as_secs() as i64)
    }

    /// How reading the record goes.
    pub fn status(&self) -> SourceStatus {
        lock(&self.status).clone()
    }

    async fn spent(&self, tenant: &str, now: DateTime<Utc>) -> Result<Spent, ()> {
        let (day, month) = (budget::day_key(now), budget::month_key(now));
        match &self.redis {
            Some(redis) => poller::read_spent(redis, tenant, &day, &month).await,
            None => {
                let c = lock(&self.counters);
                let get = |p: &str| {
                    c.get(&(tenant.to_owned(), p.to_owned()))
                        .copied()
                        .unwrap_or_default()
                };
                let (d, m) = (get(&day), get(&month));
                Ok(Spent {
                    day_requests: d.0,
                    day_read_bytes: d.1,
                    month_requests: m.0,
                    month_read_bytes: m.1,
                })
            }
        }
    }

    /// The report over `window`, with each tenant's budget.
    pub async fn report(&self, window: Window) -> UsageView {
        let now = Utc::now();
        let (steps, mut tenants) = lock(&self.store).report(window, now.timestamp());
        for t in &mut tenants {
            let plan = self.plans.get(&t.tenant);
            let limits = self.settings.limits_for(Some(&t.tenant), plan.as_deref());
            if !limits.has_budget() || t.tenant == store::UNKNOWN {
                continue;
            }
            if let Ok(spent) = self.spent(&t.tenant, now).await {
                t.budget = Some(budget::standing(&limits, &spent, self.settings.near, now));
            }
        }
        UsageView {
            window: window.as_str(),
            generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            enabled: true,
            source: self.status(),
            steps,
            tenants,
        }
    }

    /// The budget of one tenant, for the report's `budget` key.
    pub async fn budget_view(&self, user: &User) -> Option<BudgetView> {
        let limits = self.limits_for(user);
        if !limits.has_budget() {
            return None;
        }
        let now = Utc::now();
        let tenant = user.tenant.as_deref().unwrap_or(store::NO_TENANT);
        let spent = self.spent(tenant, now).await.ok()?;
        Some(BudgetView {
            limits,
            spent,
            standing: budget::standing(&limits, &spent, self.settings.near, now),
        })
    }
}
