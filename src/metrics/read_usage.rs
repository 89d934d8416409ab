//! Series of Tinybird's own usage record (`crate::usage`): requests and bytes read per tenant
//! and path, budget warnings and refusals per tenant and budget, and polls by outcome.
//! Tenants pass the same [`super::LabelCap`] as every other series, so cardinality stays
//! bounded. Only the instance that polls counts rows, so summing instances counts each once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    tenant: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    tenant: String,
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    outcome: String,
}

/// The families, registered once.
#[derive(Default)]
pub(super) struct UsageFamilies {
    requests: Family<PathLabels, Counter>,
    read_bytes: Family<PathLabels, Counter>,
    warnings: Family<BudgetLabels, Counter>,
    refused: Family<BudgetLabels, Counter>,
    polls: Family<PollLabels, Counter>,
}

impl UsageFamilies {
    /// Registers every family in `r`.
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "tinybird_requests",
            "Requests in Tinybird's pipe_stats_rt, by tenant and path (direct, proxy)",
            self.requests.clone(),
        );
        r.register(
            "tinybird_read_bytes",
            "Bytes read in Tinybird's pipe_stats_rt, by tenant and path",
            self.read_bytes.clone(),
        );
        r.register(
            "budget_warnings",
            "Budget thresholds crossed, by tenant and budget",
            self.warnings.clone(),
        );
        r.register(
            "budget_refused",
            "Requests refused over a budget, by tenant and budget",
            self.refused.clone(),
        );
        r.register(
            "usage_polls",
            "Polls of Tinybird's pipe_stats_rt, by outcome (ok, error)",
            self.polls.clone(),
        );
    }
}

impl Metrics {
    /// A poll found `requests` rows reading `bytes` for `tenant` on `path`.
    pub fn usage_rows(&self, tenant: &str, path: &str, requests: u64, bytes: u64) {
        let labels = PathLabels {
            tenant: self.0.tenants.fold(tenant),
            path: path.to_owned(),
        };
        let f = &self.0.read_usage;
        f.requests.get_or_create(&labels).inc_by(requests);
        f.read_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// A poll ended with `outcome`.
    pub fn usage_poll(&self, outcome: &str) {
        let labels = PollLabels {
            outcome: outcome.to_owned(),
        };
        self.0.read_usage.polls.get_or_create(&labels).inc();
    }

    /// A tenant crossed a threshold of `budget`.
    pub fn budget_warning(&self, tenant: Option<&str>, budget: &str) {
        let labels = BudgetLabels {
            tenant: self.tenant(tenant),
            budget: budget.to_owned(),
        };
        self.0.read_usage.warnings.get_or_create(&labels).inc();
    }

    /// A request was refused over `budget`.
    pub fn budget_refused(&self, tenant: Option<&str>, budget: &str) {
        let labels = BudgetLabels {
            tenant: self.tenant(tenant),
            budget: budget.to_owned(),
        };
        self.0.read_usage.refused.get_or_create(&labels).inc();
    }
}
