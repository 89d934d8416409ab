//! Series of tenant API keys (`crate::keys`): refused uses by reason, requests refused by a
//! key's own limits, and key changes by kind. Reasons, limits and kinds are fixed words, so
//! cardinality stays bounded (key ids never become labels).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    change: String,
}

/// The families, registered once.
#[derive(Default)]
pub(super) struct KeyFamilies {
    refused: Family<ReasonLabels, Counter>,
    limited: Family<LimitLabels, Counter>,
    changes: Family<ChangeLabels, Counter>,
}

impl KeyFamilies {
    /// Registers every family in `r`.
    pub(super) fn register(&self, r: &mut Registry) {
        r.register(
            "api_key_refused",
            "Requests with an API key refused, by reason (unknown, revoked, expired, rolled)",
            self.refused.clone(),
        );
        r.register(
            "api_key_limited",
            "Requests refused by an API key's own limits, by limit (rps, quota)",
            self.limited.clone(),
        );
        r.register(
            "api_key_changes",
            "API keys created, rolled and revoked",
            self.changes.clone(),
        );
    }
}

impl Metrics {
    /// A presented API key was refused for `reason`.
    pub fn key_refused(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.to_owned(),
        };
        self.0.keys.refused.get_or_create(&labels).inc();
    }

    /// A request was refused by a key's `limit` (`rps` or `quota`).
    pub fn key_limited(&self, limit: &str) {
        let labels = LimitLabels {
            limit: limit.to_owned(),
        };
        self.0.keys.limited.get_or_create(&labels).inc();
    }

    /// A key was `change`d (`created`, `rolled`, `revoked`).
    pub fn key_changed(&self, change: &str) {
        let labels = ChangeLabels {
            change: change.to_owned(),
        };
        self.0.keys.changes.get_or_create(&labels).inc();
    }
}
