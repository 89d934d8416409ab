//! The server's shared state: [`App`], every service a handler may need, each field saying
//! why it is there. Only `crate::http` names it; services take the parts they use.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::redis_store::{ObservedStore, RedisSessionStore};
use crate::auth::session::LoginCache;
use crate::auth::session_store::FileSessionStore;
use crate::auth::store::DynStore;
use arc_swap::ArcSwap;

use crate::config::{SessionStoreKind, Settings, TinybirdHost};
use crate::health::SessionCheck;
use crate::ratelimit::Limiter;
use crate::ratelimit::login::SharedThrottle;
use crate::tinybird::workspaces::Workspaces;

/// What a reload replaces, as one value: a request resolves everything against one of these,
/// so it never sees the settings of one reload with the workspaces or grants of another.
#[derive(Debug)]
pub struct Snapshot {
    /// Validated settings: users, grants, token and session settings.
    pub settings: Settings,
    /// The workspaces (host, key) and which is each user's.
    pub workspaces: Workspaces,
}

/// Everything the handlers share.
pub struct App {
    /// The settings, workspaces and grants in force; a reload swaps them as one (see
    /// `reload.rs`).
    snapshot: ArcSwap<Snapshot>,
    /// Failed-login counters per account (in Redis when configured: shared by instances).
    pub account_throttle: SharedThrottle,
    /// Failed-login counters per client address (higher limit: catches guessing across accounts).
    pub client_throttle: SharedThrottle,
    /// Where sessions live (the session layer's store, and the data routes' own reads).
    pub sessions: Arc<DynStore>,
    /// Decoded logins by session id, with the stores this process alone writes (memory,
    /// file); `None` with Redis (see `crate::auth::session`).
    pub logins: Option<Arc<LoginCache>>,
    /// Proxy mode: upstream client and cached upstream tokens (shared with cache flights).
    pub proxy: Arc<crate::proxy::Proxy>,
    /// The shared Redis, when configured (sessions, limits, throttles).
    pub redis: Option<crate::redis::Redis>,
    /// Per-user and per-tenant rate limits on `/api/token` and `/api/pipes/...`.
    pub limits: Limiter,
    /// This instance's Prometheus metrics and usage ring.
    pub metrics: crate::metrics::Metrics,
    /// The audit log (shared with the usage service, which logs budget warnings).
    pub audit: Arc<crate::audit::Audit>,
    /// Tinybird's usage record and the budgets counted from it, when `[usage]` is set.
    pub usage: Option<Arc<crate::usage::Usage>>,
    /// Readiness checks.
    pub health: crate::health::Health,
    /// Identity providers: discovery, keys, login and bearer-token verification.
    pub oidc: crate::auth::oidc::OidcProviders,
    /// Tenant API keys, when `[keys]` is set (migrated and started by `crate::run`).
    pub keys: Option<Arc<crate::keys::Keys>>,
}

/// Handler state.
pub type AppState = Arc<App>;

/// Sessions whose decoded login is kept (a few hundred bytes each).
const CACHED_LOGINS: usize = 10_000;

impl App {
    /// Builds the state; opens the session store and the audit output, prepares Redis.
    pub fn new(settings: Settings, workspaces: Workspaces) -> anyhow::Result<AppState> {
        let metrics = crate::metrics::Metrics::new();
        let redis = match &settings.redis {
            Some(r) => Some(crate::redis::Redis::new(r, metrics.clone())?),
            None => None,
        };
        let embedded = match &settings.session_store {
            SessionStoreKind::File(dir) => {
                Some(FileSessionStore::open(dir.clone()).map_err(|e| {
                    anyhow::anyhow!("cannot open the session directory {}: {e}", dir.display())
                })?)
            }
            SessionStoreKind::Memory => Some(FileSessionStore::in_memory()),
            SessionStoreKind::Redis => None,
        };
        if let Some(store) = &embedded {
            // Redis expires its keys itself; the embedded store forgets no session on its own.
            store.purge_every((settings.session_ttl / 10).max(Duration::from_secs(1)));
        }
        let store: Arc<dyn tower_sessions::SessionStore> = match embedded {
            Some(store) => Arc::new(store),
            None => Arc::new(RedisSessionStore::new(
                redis
                    .clone()
                    .expect("validated: session.store = redis needs [redis]"),
            )),
        };
        // Only this process writes the embedded stores, so it may keep what it decoded.
        let logins = (!matches!(settings.session_store, SessionStoreKind::Redis))
            .then(|| Arc::new(LoginCache::new(CACHED_LOGINS)));
        let sessions = Arc::new(DynStore(Arc::new(ObservedStore::new(
            store,
            metrics.clone(),
            logins.clone(),
        ))));
        let hosts: Vec<(String, String)> = workspaces
            .iter()
            .map(|w| (w.name.clone(), w.url.clone()))
            .collect();
        let first = workspaces.iter().next().expect("at least one workspace");
        let proxy = Arc::new(crate::proxy::Proxy::new(
            &settings.proxy,
            &hosts,
            first.signing_key.secret(),
        )?);
        let fail = settings.limits.on_redis_error;
        // Pending OIDC logins are sealed with a key derived from the first workspace's admin
        // token: a secret every instance of a deployment already shares.
        let oidc = crate::auth::oidc::OidcProviders::new(
            &settings.oidc,
            secrecy::ExposeSecret::expose_secret(first.signing_key.secret()).as_bytes(),
        )?;
        let audit = Arc::new(crate::audit::Audit::open(&settings.audit, metrics.clone())?);
        let usage = match &settings.usage {
            Some(u) => {
                // Every workspace's record, each with its own cursor (docs/usage.md).
                let usage = crate::usage::Usage::new(
                    u.clone(),
                    &hosts,
                    redis.clone(),
                    metrics.clone(),
                    Arc::clone(&audit),
                )?;
                usage.start();
                Some(usage)
            }
            None => None,
        };
        let keys = match &settings.keys {
            Some(k) => Some(crate::keys::Keys::new(
                k.clone(),
                Arc::clone(&audit),
                metrics.clone(),
            )?),
            None => None,
        };
        Ok(Arc::new(App {
            keys,
            oidc,
            proxy,
            account_throttle: SharedThrottle::new(
                "account",
                settings.throttle,
                redis.clone(),
                fail,
            ),
            client_throttle: SharedThrottle::new(
                "client",
                settings.client_throttle,
                redis.clone(),
                fail,
            ),
            limits: Limiter::new(settings.limits.clone(), redis.clone(), metrics.clone()),
            audit,
            usage,
            health: crate::health::Health::new(
                settings
                    .tinybird
                    .workspaces
                    .iter()
                    .filter_map(|w| match &w.host {
                        TinybirdHost::Remote(url) => Some((w.name.clone(), url.clone())),
                        TinybirdHost::Local(_) => None,
                    })
                    .collect(),
                match &settings.session_store {
                    SessionStoreKind::Redis => SessionCheck::Redis,
                    SessionStoreKind::File(dir) => SessionCheck::Dir(dir.clone()),
                    SessionStoreKind::Memory => SessionCheck::Memory,
                },
            )?,
            redis,
            metrics,
            snapshot: ArcSwap::from_pointee(Snapshot {
                settings,
                workspaces,
            }),
            sessions,
            logins,
        }))
    }

    /// The settings, workspaces and grants in force now (a reload may replace them for the
    /// next request, never under one).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Puts reloaded settings and workspaces in force, as one.
    pub fn replace(&self, settings: Settings, workspaces: Workspaces) {
        self.snapshot.store(Arc::new(Snapshot {
            settings,
            workspaces,
        }));
    }
}

/// Handlers that need only the metrics ask for them (`State<Metrics>`), not the whole [`App`].
impl axum::extract::FromRef<AppState> for crate::metrics::Metrics {
    fn from_ref(app: &AppState) -> Self {
        app.metrics.clone()
    }
}
