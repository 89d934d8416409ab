//! Counting a key's requests: its rps limit, its quota, its usage and `last_used_at`, with no
//! store write per request.
//!
//! Each instance counts in memory and writes its counts down every `keys.flush_interval`, in
//! one transaction, getting back the totals every instance wrote. A quota is checked against
//! the last totals plus this instance's own unwritten requests: exact for one instance, and
//! with N instances over by at most what the others served within one flush interval. The
//! rps limit is a GCRA bucket per key in this instance (Tinybird also counts `limits.rps`,
//! per key and pipe, on the tokens the key's calls use).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::Keys;
use super::record::{KeyRecord, Period};
use super::store::{Counted, Used};
use crate::error::AppError;

/// One instance's counts not yet written, per key.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Pending {
    requests: u64,
    errors: u64,
    last_used_at: i64,
}

/// Counts in memory: what is not written yet, and the totals last read back.
#[derive(Debug, Default)]
pub(super) struct Meter {
    pending: HashMap<String, Pending>,
    /// `(key id, period key)` → requests, as the store last said.
    totals: HashMap<(String, String), u64>,
}

/// A key's usage in the current day and month, as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyUsage {
    /// Requests today (UTC).
    pub today_requests: u64,
    /// Of which errors.
    pub today_errors: u64,
    /// Requests this month (UTC).
    pub month_requests: u64,
    /// Of which errors.
    pub month_errors: u64,
}

fn periods(now: i64) -> Vec<String> {
    vec![Period::Day.key(now), Period::Month.key(now)]
}

impl Keys {
    /// Lets one request of `key` through its rps limit and quota (and counts it), or the 429
    /// with `Retry-After` that refuses it.
    pub async fn admit(&self, key: &KeyRecord, now: i64) -> Result<(), AppError> {
        if let Some(rps) = key.rps {
            let interval = 1_000_000 / u64::from(rps.max(1));
            let bucket = (key.id.clone(), interval.max(1), rps.max(1));
            let outcome = self.buckets.check(&[bucket], Instant::now());
            if !outcome.allowed {
                self.metrics.key_limited("rps");
                return Err(AppError::TooManyRequests {
                    message: format!("API key rate limit: {rps} requests per second"),
                    retry_after: outcome.decision.retry_after_us.div_ceil(1_000_000).max(1),
                });
            }
        }
        if let Some(quota) = key.quota {
            let period = quota.period.key(now);
            let slot = (key.id.clone(), period.clone());
            let known = self.meter().totals.contains_key(&slot);
            if !known {
                let counted = self
                    .store
                    .counts(std::slice::from_ref(&key.id), &[period])
                    .await
                    .map_err(|e| self.store_down(e))?;
                let n = counted.first().map_or(0, |c| c.requests);
                self.meter().totals.entry(slot.clone()).or_insert(n);
            }
            let mut meter = self.meter();
            let pending = meter.pending.get(&key.id).map_or(0, |p| p.requests);
            let used = meter.totals.get(&slot).copied().unwrap_or(0) + pending;
            if used >= quota.requests {
                drop(meter);
                self.metrics.key_limited("quota");
                let resets_at = quota.period.resets_at(now);
                return Err(AppError::TooManyRequests {
                    message: format!(
                        "API key quota: {} requests per {} used; it resets at {}",
                        quota.requests,
                        quota.period.as_str(),
                        chrono::DateTime::from_timestamp(resets_at, 0)
                            .unwrap_or_default()
                            .to_rfc3339()
                    ),
                    retry_after: (resets_at - now).max(1) as u64,
                });
            }
            count(&mut meter, &key.id, now);
            return Ok(());
        }
        count(&mut self.meter(), &key.id, now);
        Ok(())
    }

    /// A request [`Self::admit`] let through was answered with `status`.
    pub fn answered(&self, key: &KeyRecord, status: u16) {
        if status >= 400
            && let Some(p) = self.meter().pending.get_mut(&key.id)
        {
            p.errors += 1;
        }
    }

    /// Writes the counts down (on failure they are kept for the next try), then reads back
    /// the totals of every quota this instance checks, so the other instances' requests count.
    pub(super) async fn flush(&self, now: i64) {
        let pending = std::mem::take(&mut self.meter().pending);
        if !pending.is_empty() {
            self.write(pending, now).await;
        }
        let current = periods(now);
        let ids: Vec<String> = {
            let mut meter = self.meter();
            // Totals of past periods are never read again.
            meter.totals.retain(|(_, p), _| current.contains(p));
            let mut ids: Vec<String> = meter.totals.keys().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        if ids.is_empty() {
            return;
        }
        match self.store.counts(&ids, &current).await {
            Ok(counted) => {
                self.store_up();
                let mut meter = self.meter();
                for c in counted {
                    if let Some(known) = meter.totals.get_mut(&(c.id, c.period)) {
                        *known = c.requests;
                    }
                }
            }
            Err(e) => {
                self.store_down(e);
            }
        }
    }

    async fn write(&self, pending: HashMap<String, Pending>, now: i64) {
        let used: Vec<Used> = pending
            .iter()
            .map(|(id, p)| Used {
                id: id.clone(),
                periods: periods(p.last_used_at.max(now - 1)),
                requests: p.requests,
                errors: p.errors,
                last_used_at: p.last_used_at,
            })
            .collect();
        match self.store.record(&used).await {
            Ok(totals) => {
                self.store_up();
                // Only the quotas this instance checks: the others are read when first needed.
                let mut meter = self.meter();
                for Counted {
                    id,
                    period,
                    requests,
                    ..
                } in totals
                {
                    if let Some(known) = meter.totals.get_mut(&(id, period)) {
                        *known = requests;
                    }
                }
            }
            Err(e) => {
                self.store_down(e);
                let mut meter = self.meter();
                for (id, p) in pending {
                    let slot = meter.pending.entry(id).or_default();
                    slot.requests += p.requests;
                    slot.errors += p.errors;
                    slot.last_used_at = slot.last_used_at.max(p.last_used_at);
                }
            }
        }
    }

    /// Usage of `keys` today and this month: what the store holds plus this instance's
    /// unwritten counts.
    pub async fn usage_of(
        &self,
        keys: &[KeyRecord],
        now: i64,
    ) -> Result<HashMap<String, KeyUsage>, AppError> {
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let (day, month) = (Period::Day.key(now), Period::Month.key(now));
        let counted = self
            .store
            .counts(&ids, &[day.clone(), month.clone()])
            .await
            .map_err(|e| self.store_down(e))?;
        let mut out: HashMap<String, KeyUsage> = HashMap::new();
        for c in counted {
            let u = out.entry(c.id).or_default();
            if c.period == day {
                (u.today_requests, u.today_errors) = (c.requests, c.errors);
            } else if c.period == month {
                (u.month_requests, u.month_errors) = (c.requests, c.errors);
            }
        }
        let meter = self.meter();
        for (id, p) in &meter.pending {
            if ids.contains(id) {
                let u = out.entry(id.clone()).or_default();
                u.today_requests += p.requests;
                u.month_requests += p.requests;
                u.today_errors += p.errors;
                u.month_errors += p.errors;
            }
        }
        Ok(out)
    }

    /// This instance's last use of `id` not yet written down, if any.
    pub(super) fn unwritten_last_use(&self, id: &str) -> Option<i64> {
        self.meter().pending.get(id).map(|p| p.last_used_at)
    }

    /// Runs [`Self::flush`] every `keys.flush_interval` while the service lives
    /// ([`Keys::close`] writes the last counts at shutdown).
    pub(super) fn start_flusher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.settings.flush_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(keys) = weak.upgrade() else { break };
                keys.flush(chrono::Utc::now().timestamp()).await;
            }
        });
    }
}

fn count(meter: &mut Meter, id: &str, now: i64) {
    let p = meter.pending.entry(id.to_owned()).or_default();
    p.requests += 1;
    p.last_used_at = p.last_used_at.max(now);
}
