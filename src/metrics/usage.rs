//! Per-tenant usage per minute over the last hour, for the admin usage page.
//!
//! A ring of 60 one-minute slots in memory, per instance: cheap, no Redis round trip on the
//! hot path, and enough for "who is using this right now". Across instances, use the
//! Prometheus counters (`tbff_tokens_minted_total`, `tbff_proxy_requests_total`), which a
//! Prometheus server sums. Tenants are already capped by the caller ([`super::LabelCap`]), so
//! each slot holds at most that many entries.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Minutes kept.
pub const MINUTES: usize = 60;

/// What one usage count is of.
#[derive(Debug, Clone, Copy)]
pub enum UsageKind {
    /// A token minted.
    Token,
    /// A proxied pipe call.
    Proxy,
    /// A request refused by a BFF rate limit.
    Limited,
}

#[derive(Debug, Default, Clone)]
struct Slot {
    /// Unix minute (`seconds / 60`) this slot counts; older contents are stale.
    minute: i64,
    counts: HashMap<String, [u64; 3]>,
}

/// The ring; shareable across tasks.
#[derive(Debug)]
pub struct UsageRing {
    slots: Mutex<Vec<Slot>>,
}

impl Default for UsageRing {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /api/admin/usage`: per-tenant counts per minute, oldest minute first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageReport {
    /// Always `"instance"`: these are this instance's counts only.
    pub scope: &'static str,
    /// Seconds per bucket (60).
    pub step_seconds: u32,
    /// Start of each minute bucket, Unix seconds; 60 entries, the last is the current minute.
    pub minutes: Vec<i64>,
    /// One entry per tenant with any usage in the hour, busiest first.
    pub tenants: Vec<TenantUsage>,
}

/// One tenant's series; every array is aligned with [`UsageReport::minutes`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantUsage {
    /// Tenant id, `(none)` for users without one, `other` past the label cap.
    pub tenant: String,
    /// Tokens minted per minute.
    pub tokens: Vec<u64>,
    /// Proxied pipe calls per minute.
    pub proxy_requests: Vec<u64>,
    /// Requests refused by the BFF's rate limits per minute.
    pub rate_limited: Vec<u64>,
    /// Sum of tokens and proxy requests over the hour.
    pub total: u64,
}

impl UsageRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(vec![Slot::default(); MINUTES]),
        }
    }

    /// Counts one event for `tenant` at `now` (Unix seconds).
    pub fn add(&self, tenant: &str, kind: UsageKind, now: i64) {
        let minute = now.div_euclid(60);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.minute != minute {
            *slot = Slot {
                minute,
                counts: HashMap::new(),
            };
        }
        let counts = slot.counts.entry(tenant.to_owned()).or_default();
        counts[kind as usize] += 1;
    }

    /// The hour ending with the minute of `now` (Unix seconds).
    pub fn report(&self, now: i64) -> UsageReport {
        let current = now.div_euclid(60);
        let minutes: Vec<i64> = (current - MINUTES as i64 + 1..=current).collect();
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tenants: HashMap<&str, TenantUsage> = HashMap::new();
        for (i, minute) in minutes.iter().enumerate() {
            let slot = &slots[minute.rem_euclid(MINUTES as i64) as usize];
            if slot.minute != *minute {
                continue;
            }
            for (tenant, counts) in &slot.counts {
                let entry = tenants.entry(tenant).or_insert_with(|| TenantUsage {
                    tenant: tenant.clone(),
                    tokens: vec![0; MINUTES],
                    proxy_requests: vec![0; MINUTES],
                    rate_limited: vec![0; MINUTES],
                    total: 0,
                });
                entry.tokens[i] += counts[UsageKind::Token as usize];
                entry.proxy_requests[i] += counts[UsageKind::Proxy as usize];
                entry.rate_limited[i] += counts[UsageKind::Limited as usize];
                entry.total +=
                    counts[UsageKind::Token as usize] + counts[UsageKind::Proxy as usize];
            }
        }
        let mut tenants: Vec<TenantUsage> = tenants.into_values().collect();
        tenants.sort_by(|a, b| b.total.cmp(&a.total).then(a.tenant.cmp(&b.tenant)));
        UsageReport {
            scope: "instance",
            step_seconds: 60,
            minutes: minutes.iter().map(|m| m * 60).collect(),
            tenants,
        }
    }
}

/// The role that may read usage.
pub const ADMIN_ROLE: &str = "admin";

#[cfg(test)]
mod tests {
    use super::*;

    /// A minute boundary (divisible by 60).
    const T0: i64 = 30_000_000 * 60;

    #[test]
    fn counts_land_in_their_minute_and_the_last_is_now() {
        let ring = UsageRing::new();
        ring.add("acme", UsageKind::Token, T0);
        ring.add("acme", UsageKind::Proxy, T0 + 59);
        ring.add("acme", UsageKind::Proxy, T0 + 60);
        ring.add("globex", UsageKind::Limited, T0 + 61);
        let r = ring.report(T0 + 90);
        assert_eq!(r.minutes.len(), MINUTES);
        assert_eq!(*r.minutes.last().unwrap(), T0 + 60);
        assert_eq!(r.minutes[0], T0 + 60 - 59 * 60);
        let acme = &r.tenants[0];
        assert_eq!(acme.tenant, "acme");
        assert_eq!(acme.total, 3);
        assert_eq!(acme.tokens[58..], [1, 0]);
        assert_eq!(acme.proxy_requests[58..], [1, 1]);
        let globex = &r.tenants[1];
        assert_eq!((globex.total, globex.rate_limited[59]), (0, 1));
    }

    #[test]
    fn minutes_older_than_an_hour_are_dropped() {
        let ring = UsageRing::new();
        ring.add("acme", UsageKind::Token, T0);
        assert_eq!(ring.report(T0 + 59 * 60).tenants.len(), 1);
        assert!(ring.report(T0 + 60 * 60).tenants.is_empty());
        // Reusing the slot an hour later starts it from zero.
        ring.add("acme", UsageKind::Token, T0 + 60 * 60);
        assert_eq!(ring.report(T0 + 60 * 60).tenants[0].total, 1);
    }
}
