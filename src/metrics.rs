//! Usage visibility: Prometheus metrics per instance, and the per-tenant usage ring behind
//! `GET /api/admin/usage`.
//!
//! Metrics are per running BFF, not process-global, so two BFF instances in one
//! process (tests, or the two-instance example) each report their own numbers. Prometheus sums
//! instances; the usage ring (see [`usage`]) is per instance too.
//!
//! Cardinality is bounded: tenant and pipe labels go through a [`LabelCap`] that admits the
//! first `N` distinct values it sees and folds every later one into `other`, so a flood of
//! tenants or made-up pipe names cannot blow up the scrape or the Prometheus server.
//! Usernames never become labels.
//!
//! The proxy records each forwarded call with [`Metrics::proxy_request`].

mod keys;
pub mod labels;
mod read_usage;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use labels::LabelCap;
use usage::{UsageKind, UsageRing};

/// Distinct tenant label values kept before folding into `other`.
pub const MAX_TENANTS: usize = 100;
/// Distinct pipe label values kept before folding into `other`.
pub const MAX_PIPES: usize = 200;
/// The label value for everything past a cap.
pub const OTHER: &str = "other";
/// The tenant label of users without a tenant.
pub const NO_TENANT: &str = "(none)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    tenant: String,
    pipe: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipeLabels {
    pipe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    scope: String,
    per: String,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~20 s: Tinybird answers in milliseconds, retries and timeouts take seconds.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    ])
}

struct Inner {
    registry: Registry,
    tenants: LabelCap,
    pipes: LabelCap,
    tokens: Family<TenantLabels, Counter>,
    proxy: Family<ProxyLabels, Counter>,
    retries: Family<PipeLabels, Counter>,
    latency: Family<PipeLabels, Histogram, fn() -> Histogram>,
    limited: Family<LimitLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    logouts: Counter,
    redis_errors: Family<OpLabels, Counter>,
    redis_up: Gauge,
    session_errors: Counter,
    audit_errors: Counter,
    usage: UsageRing,
    read_usage: read_usage::UsageFamilies,
    keys: keys::KeyFamilies,
}

/// This instance's counters; cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics with the default label caps.
    pub fn new() -> Self {
        Self::with_caps(MAX_TENANTS, MAX_PIPES)
    }

    /// Empty metrics with custom label caps (tests).
    pub fn with_caps(max_tenants: usize, max_pipes: usize) -> Self {
        let mut registry = Registry::with_prefix("tbff");
        let tokens = Family::default();
        let proxy = Family::default();
        let retries = Family::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let limited = Family::default();
        let logins = Family::default();
        let logouts = Counter::default();
        let redis_errors = Family::default();
        let redis_up = Gauge::default();
        let session_errors = Counter::default();
        let audit_errors = Counter::default();
        let read_usage = read_usage::UsageFamilies::default();
        let r = &mut registry;
        read_usage.register(r);
        let keys = keys::KeyFamilies::default();
        keys.register(r);
        r.register("tokens_minted", "Tokens minted, by tenant", tokens.clone());
        r.register(
            "proxy_requests",
            "Proxied pipe calls, by tenant, pipe and final status",
            proxy.clone(),
        );
        r.register(
            "upstream_retries",
            "Retries of upstream Tinybird calls, by pipe",
            retries.clone(),
        );
        r.register(
            "upstream_latency_seconds",
            "Upstream Tinybird call latency including retries, by pipe",
            latency.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the BFF's rate limits, by scope, bucket and tenant",
            limited.clone(),
        );
        r.register(
            "logins",
            "Login attempts, by outcome (ok, failed, throttled)",
            logins.clone(),
        );
        r.register("logouts", "Logouts", logouts.clone());
        r.register(
            "redis_errors",
            "Failed Redis operations, by operation",
            redis_errors.clone(),
        );
        r.register(
            "redis_up",
            "1 when the last Redis operation succeeded, 0 when it failed",
            redis_up.clone(),
        );
        r.register(
            "session_store_errors",
            "Session store failures (answered 503)",
            session_errors.clone(),
        );
        r.register(
            "audit_write_errors",
            "Audit lines that could not be written",
            audit_errors.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            tenants: LabelCap::new(max_tenants),
            pipes: LabelCap::new(max_pipes),
            tokens,
            proxy,
            retries,
            latency,
            limited,
            logins,
            logouts,
            redis_errors,
            redis_up,
            session_errors,
            audit_errors,
            usage: UsageRing::new(),
            read_usage,
            keys,
        }))
    }

    fn tenant(&self, tenant: Option<&str>) -> String {
        self.0.tenants.fold(tenant.unwrap_or(NO_TENANT))
    }

    /// A token was minted for a user of `tenant`.
    pub fn token_minted(&self, tenant: Option<&str>) {
        let tenant = self.tenant(tenant);
        self.0.usage.add(&tenant, UsageKind::Token, unix_now());
        self.0.tokens.get_or_create(&TenantLabels { tenant }).inc();
    }

    /// The proxy finished one call: final `status` after `attempts` upstream tries (1 = no
    /// retry) taking `latency` in all. Call once per client request.
    pub fn proxy_request(
        &self,
        tenant: Option<&str>,
        pipe: &str,
        status: u16,
        attempts: u32,
        latency: Duration,
    ) {
        let tenant = self.tenant(tenant);
        let pipe = self.0.pipes.fold(pipe);
        self.0.usage.add(&tenant, UsageKind::Proxy, unix_now());
        self.0
            .proxy
            .get_or_create(&ProxyLabels {
                tenant,
                pipe: pipe.clone(),
                status: status.to_string(),
            })
            .inc();
        let labels = PipeLabels { pipe };
        if attempts > 1 {
            self.0
                .retries
                .get_or_create(&labels)
                .inc_by(u64::from(attempts - 1));
        }
        self.0
            .latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }

    /// A request was refused by the BFF's own limit `scope` (`token`, `proxy`) on the `per`
    /// bucket (`user`, `tenant`).
    pub fn rate_limited(&self, scope: &str, per: &str, tenant: Option<&str>) {
        let tenant = self.tenant(tenant);
        self.0.usage.add(&tenant, UsageKind::Limited, unix_now());
        self.0
            .limited
            .get_or_create(&LimitLabels {
                scope: scope.to_owned(),
                per: per.to_owned(),
                tenant,
            })
            .inc();
    }

    /// A login attempt ended with `outcome`: `ok`, `failed` or `throttled`.
    pub fn login(&self, outcome: &'static str) {
        self.0
            .logins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A session was ended by logout.
    pub fn logout(&self) {
        self.0.logouts.inc();
    }

    /// A Redis operation (`session`, `ratelimit`, `login_throttle`, `ping`) failed.
    pub fn redis_error(&self, op: &'static str) {
        self.0.redis_up.set(0);
        self.0
            .redis_errors
            .get_or_create(&OpLabels { op: op.to_owned() })
            .inc();
    }

    /// A Redis operation succeeded.
    pub fn redis_ok(&self) {
        self.0.redis_up.set(1);
    }

    /// The session store failed (any store); the client got a 503.
    pub fn session_store_error(&self) {
        self.0.session_errors.inc();
    }

    /// An audit line could not be written.
    pub fn audit_write_error(&self) {
        self.0.audit_errors.inc();
    }

    /// The last hour of per-tenant usage on this instance.
    pub fn usage_report(&self) -> usage::UsageReport {
        self.0.usage.report(unix_now())
    }

    /// The Prometheus (OpenMetrics) text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn tenants_past_the_cap_are_counted_as_other() {
        let m = Metrics::with_caps(2, 10);
        for t in ["a", "b", "c", "d", "a"] {
            m.token_minted(Some(t));
        }
        let text = m.encode();
        assert_eq!(
            line(&text, "tbff_tokens_minted_total{tenant=\"a\"}"),
            Some("tbff_tokens_minted_total{tenant=\"a\"} 2")
        );
        assert_eq!(
            line(&text, "tbff_tokens_minted_total{tenant=\"other\"}"),
            Some("tbff_tokens_minted_total{tenant=\"other\"} 2")
        );
        assert!(line(&text, "tbff_tokens_minted_total{tenant=\"c\"}").is_none());
    }

    #[test]
    fn proxy_requests_count_status_retries_and_latency() {
        let m = Metrics::new();
        m.proxy_request(
            Some("acme"),
            "top_products",
            200,
            1,
            Duration::from_millis(20),
        );
        m.proxy_request(Some("acme"), "top_products", 429, 3, Duration::from_secs(2));
        m.proxy_request(None, "top_products", 200, 1, Duration::from_millis(5));
        let text = m.encode();
        for expected in [
            "tbff_proxy_requests_total{tenant=\"acme\",pipe=\"top_products\",status=\"200\"} 1",
            "tbff_proxy_requests_total{tenant=\"acme\",pipe=\"top_products\",status=\"429\"} 1",
            "tbff_proxy_requests_total{tenant=\"(none)\",pipe=\"top_products\",status=\"200\"} 1",
            "tbff_upstream_retries_total{pipe=\"top_products\"} 2",
            "tbff_upstream_latency_seconds_count{pipe=\"top_products\"} 3",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected}\n{text}");
        }
    }

    #[test]
    fn redis_up_follows_the_last_operation() {
        let m = Metrics::new();
        m.redis_ok();
        assert!(m.encode().contains("tbff_redis_up 1"));
        m.redis_error("session");
        let text = m.encode();
        assert!(text.contains("tbff_redis_up 0"));
        assert!(text.contains("tbff_redis_errors_total{op=\"session\"} 1"));
    }
}
