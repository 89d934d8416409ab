//! The BFF's own rate limits, per user and per tenant, on token minting and proxy calls.
//!
//! - [`crate::tinybird::gcra`]: the algorithm (pure) and the in-memory buckets used without
//!   Redis (shared with the local endpoint's `limits.rps`);
//! - [`redis_gcra`]: the same algorithm as one Lua script, shared by every instance;
//! - [`config`]: `[limits]`, global and per grant;
//! - [`login`]: failed-login throttling on the same store (memory or Redis), with
//!   [`throttle`] the in-memory rule it keeps on both.
//!
//! [`Limiter::check`] counts one request; the route layer that calls it for `/api/token` and
//! the proxy, and answers 429 with `Retry-After` and `X-RateLimit-Limit/Remaining/Reset`
//! (seconds until the bucket is full), is `crate::http::middleware::limits`.
//!
//! This is the first of two layers: the JWT's `limits.rps` makes Tinybird count direct
//! browser calls per JWT `name` too (see docs/operations.md).

pub mod config;
pub mod login;
pub mod redis_gcra;
pub mod throttle;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::metrics::Metrics;
use crate::redis::Redis;
use crate::tinybird::gcra::{MemoryBuckets, Outcome};
use crate::user::User;
pub use config::{FailMode, LimitSettings, LimitsConfig};

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /api/token`.
    Token = 0,
    /// `/api/pipes/...` (proxy mode).
    Proxy = 1,
}

impl Scope {
    /// `token` or `proxy` (config keys, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Token => "token",
            Scope::Proxy => "proxy",
        }
    }
}

/// Whose bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// One bucket per user id.
    User = 0,
    /// One bucket per tenant, shared by its users.
    Tenant = 1,
}

impl Per {
    /// `user` or `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Per::User => "user",
            Per::Tenant => "tenant",
        }
    }
}

/// The state of the bucket that decided, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// The burst: requests allowed at once.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Which bucket.
    pub per: Per,
}

impl RateInfo {
    /// Adds `X-RateLimit-Limit`, `-Remaining` and `-Reset` (whole seconds, rounded up).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from(ceil_secs(self.reset)),
        );
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}

/// Why a request may not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited {
    /// Over the limit: 429.
    Exceeded {
        /// The bucket that refused.
        info: RateInfo,
        /// When a retry would pass.
        retry_after: Duration,
        /// What was limited.
        scope: Scope,
    },
    /// Redis is down and `limits.on_redis_error = "closed"`: 503.
    Unavailable,
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let Limited::Exceeded {
            info, retry_after, ..
        } = &self
        else {
            return AppError::from(self).into_response();
        };
        let (info, retry_after) = (*info, *retry_after);
        let mut response = AppError::from(self).into_response();
        info.write_headers(response.headers_mut());
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(ceil_secs(retry_after).max(1)),
        );
        response
    }
}

impl From<Limited> for AppError {
    /// Keeps `Retry-After`; the `X-RateLimit-*` headers need [`Limited`]'s own response.
    fn from(l: Limited) -> Self {
        match l {
            Limited::Exceeded {
                info,
                retry_after,
                scope,
            } => AppError::TooManyRequests {
                message: format!(
                    "rate limit exceeded ({} requests per {}): retry after {} s",
                    scope.as_str(),
                    info.per.as_str(),
                    ceil_secs(retry_after).max(1)
                ),
                retry_after: ceil_secs(retry_after).max(1),
            },
            Limited::Unavailable => AppError::Unavailable(
                "rate limiting is unavailable (shared store down); try again shortly".into(),
            ),
        }
    }
}

enum Backend {
    Memory(MemoryBuckets),
    Redis(Redis),
}

/// Checks users' buckets; one per running BFF.
pub struct Limiter {
    settings: LimitSettings,
    backend: Backend,
    metrics: Metrics,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("settings", &self.settings)
            .field(
                "backend",
                &match self.backend {
                    Backend::Memory(_) => "memory",
                    Backend::Redis(_) => "redis",
                },
            )
            .finish()
    }
}

impl Limiter {
    /// Buckets in `redis` when given (shared by all instances), else in this process.
    pub fn new(settings: LimitSettings, redis: Option<Redis>, metrics: Metrics) -> Self {
        let backend = match redis {
            Some(r) => Backend::Redis(r),
            None => Backend::Memory(MemoryBuckets::new()),
        };
        Self {
            settings,
            backend,
            metrics,
        }
    }

    /// Whether any limit is configured (else the route layer does not even look up the user).
    pub fn is_enabled(&self) -> bool {
        !self.settings.is_empty()
    }

    /// Counts one `scope` request by `user`, whose access comes from the grants named
    /// `user_grants` (per-grant limits follow them): `Ok(None)` when no limit applies to them,
    /// `Ok(Some(info))` when within limits, [`Limited`] otherwise. One Redis round trip.
    pub async fn check(
        &self,
        scope: Scope,
        user: &User,
        user_grants: &[String],
    ) -> Result<Option<RateInfo>, Limited> {
        if self.settings.is_empty() {
            return Ok(None);
        }
        let mut buckets = Vec::with_capacity(2);
        let mut pers = Vec::with_capacity(2);
        // One script updates the user's and the tenant's bucket: one hash tag (Cluster slot),
        // the tenant's, or the user's when there is no tenant.
        let tag = crate::redis::tag(user.tenant.as_ref().unwrap_or(&user.id));
        for (per, id) in [
            (Per::User, Some(&user.id)),
            (Per::Tenant, user.tenant.as_ref()),
        ] {
            let (Some(id), Some(rate)) = (id, self.settings.rate_for(per, scope, user_grants))
            else {
                continue;
            };
            let key = format!("rl:{tag}:{}:{}:{id}", scope.as_str(), per.as_str());
            buckets.push((key, rate.interval_us(), rate.burst));
            pers.push((per, rate.burst));
        }
        if buckets.is_empty() {
            return Ok(None);
        }
        let outcome: Outcome = match &self.backend {
            Backend::Memory(m) => m.check(&buckets, Instant::now()),
            Backend::Redis(r) => match redis_gcra::check(r, &buckets).await {
                Ok(o) => o,
                Err(e) => {
                    return match self.settings.on_redis_error {
                        FailMode::Open => {
                            tracing::debug!(error = %e, "rate limit skipped: redis unavailable (on_redis_error = open)");
                            Ok(None)
                        }
                        FailMode::Closed => Err(Limited::Unavailable),
                    };
                }
            },
        };
        let (per, limit) = pers[outcome.binding.min(pers.len() - 1)];
        let d = outcome.decision;
        let info = RateInfo {
            limit,
            remaining: d.remaining,
            reset: Duration::from_micros(d.reset_us),
            per,
        };
        if outcome.allowed {
            return Ok(Some(info));
        }
        self.metrics
            .rate_limited(scope.as_str(), per.as_str(), user.tenant.as_deref());
        tracing::info!(user = %user.id, scope = scope.as_str(), per = per.as_str(), "rate limited");
        Err(Limited::Exceeded {
            info,
            retry_after: Duration::from_micros(d.retry_after_us),
            scope,
        })
    }
}
