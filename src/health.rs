//! Readiness: what `/readyz` reports (the routes, and the admin listener that serves them
//! with `/metrics`, are `crate::http::ops`).
//!
//! `/readyz` checks what a request needs: the signing key (loaded at start, so always ok
//! once running), the session store, Redis, and, for a remote Tinybird, that its host
//! answers at all (a `HEAD /` with a short timeout; any HTTP status counts as reachable).
//! The upstream result is kept for a few seconds so a load balancer polling every second
//! does not turn into a stream of requests to Tinybird. Redis is pinged on every call: it is
//! cheap and must reflect an outage at once. Both routes sit outside auth and rate limits.
//! Failure details go to the log, not the (unauthenticated) response.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::redis::Redis;

/// What readiness checks of the session store: that Redis answers, that the file store's
/// directory is still one, or nothing (memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCheck {
    /// Sessions live in the shared Redis.
    Redis,
    /// Sessions live in files in this directory.
    Dir(std::path::PathBuf),
    /// Sessions live in this process.
    Memory,
}

/// How long the upstream check may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an upstream check result is reused.
pub const UPSTREAM_CACHE: Duration = Duration::from_secs(5);

/// Readiness checks; one per running BFF.
pub struct Health {
    /// The remote Tinybird hosts to probe, by workspace (none with the embedded endpoint).
    upstreams: Vec<(String, Url)>,
    client: reqwest::Client,
    /// The last result per upstream host and when it was taken.
    last_upstream: Mutex<HashMap<Url, (Instant, bool)>>,
    /// Where sessions live (a file store's directory must stay a directory).
    session_store: SessionCheck,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl Health {
    /// Checks for a BFF whose remote Tinybird hosts are `upstreams` (by workspace; the
    /// embedded endpoint is not probed) and whose sessions live in `session_store`.
    pub fn new(upstreams: Vec<(String, Url)>, session_store: SessionCheck) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            upstreams,
            client,
            last_upstream: Mutex::new(HashMap::new()),
            session_store,
        })
    }

    /// Whether the upstream host answers (reused for [`UPSTREAM_CACHE`]).
    async fn upstream_ok(&self, url: &Url) -> bool {
        let cached = self
            .last_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .copied();
        if let Some((at, ok)) = cached
            && at.elapsed() < UPSTREAM_CACHE
        {
            return ok;
        }
        let ok = match self.client.head(url.clone()).send().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(upstream = %url, error = %e, "readiness: Tinybird host unreachable");
                false
            }
        };
        self.last_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(url.clone(), (Instant::now(), ok));
        ok
    }
}

/// One readiness check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// A word or two for operators; details go to the log, never the response.
    pub detail: &'static str,
}

fn check(ok: bool, ok_detail: &'static str, failed: &'static str) -> Check {
    Check {
        ok,
        detail: if ok { ok_detail } else { failed },
    }
}

/// Every check, in a stable order (`signing_key`, `redis`, `session_store`, `upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Check name and outcome.
    pub checks: Vec<(&'static str, Check)>,
}

impl Report {
    /// Whether every check passed.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|(_, c)| c.ok)
    }
}

impl Health {
    /// Runs the checks: the shared `redis` pinged when there is one, the session store, the
    /// upstream host (cached for [`UPSTREAM_CACHE`]).
    pub async fn report(&self, redis: Option<&Redis>) -> Report {
        let mut checks = vec![("signing_key", check(true, "loaded", "missing"))];
        let redis_ok = match redis {
            Some(redis) => {
                let ok = redis.ping().await.is_ok();
                checks.push(("redis", check(ok, "reachable", "unreachable")));
                Some(ok)
            }
            None => None,
        };
        let session = match (&self.session_store, redis_ok) {
            (SessionCheck::Redis, ok) => check(ok == Some(true), "redis", "redis unreachable"),
            (SessionCheck::Dir(dir), _) => {
                let ok = dir.is_dir();
                if !ok {
                    tracing::warn!(dir = %dir.display(), "readiness: session directory missing");
                }
                check(ok, "file", "session directory missing")
            }
            (SessionCheck::Memory, _) => check(true, "memory", "memory"),
        };
        checks.push(("session_store", session));
        if !self.upstreams.is_empty() {
            // Every workspace's host: a user of the unreachable one cannot be served.
            let mut ok = true;
            for (workspace, url) in &self.upstreams {
                if !self.upstream_ok(url).await {
                    tracing::warn!(
                        workspace,
                        "readiness: a workspace's Tinybird host is unreachable"
                    );
                    ok = false;
                }
            }
            checks.push(("upstream", check(ok, "reachable", "unreachable")));
        }
        Report { checks }
    }
}
