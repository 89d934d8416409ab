//! The server's shared state: [`App`], every service a handler may need, each field saying
//! why it is there. Only `crate::http` names it; services take the parts they use.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::redis_store::{ObservedStore, RedisSessionStore};
use crate::auth::session_store::FileSessionStore;
use crate::auth::store::DynStore;
use arc_swap::ArcSwap;

use crate::config::{SessionStoreKind, Settings, TinybirdHost};
use crate::error::AppError;
use crate::ratelimit::Limiter;
use crate::ratelimit::login::SharedThrottle;
use crate::tinybird::mint::MintParams;
use crate::tinybird::workspaces::{Workspace, Workspaces};
use crate::user::User;

/// Everything the handlers share.
pub struct App {
    /// Validated settings (users, grants, TTLs); a reload swaps them whole (see `reload.rs`).
    settings: ArcSwap<Settings>,
    /// The workspaces (host, key) and which is each user's; swapped with the settings.
    workspaces: ArcSwap<Workspaces>,
    /// Failed-login counters per account (in Redis when configured: shared by instances).
    pub account_throttle: SharedThrottle,
    /// Failed-login counters per client address (higher limit: catches guessing across accounts).
    pub client_throttle: SharedThrottle,
    /// Where sessions live.
    pub sessions: DynStore,
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
        let sessions = DynStore(Arc::new(ObservedStore::new(store, metrics.clone())));
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
                if workspaces.iter().count() > 1 {
                    tracing::warn!(
                        workspace = %first.name,
                        "usage: only the first workspace's pipe_stats_rt is read; tenants of the others count on the proxy path only and have no direct-path budget"
                    );
                }
                let usage = crate::usage::Usage::new(
                    u.clone(),
                    // The first workspace's record (several workspaces: see docs/usage.md).
                    &first.url,
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
            limits: Limiter::new(
                settings.limits.clone(),
                Arc::clone(&settings.grants),
                redis.clone(),
                metrics.clone(),
            ),
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
                settings.session_store.clone(),
            )?,
            redis,
            metrics,
            settings: ArcSwap::from_pointee(settings),
            workspaces: ArcSwap::from_pointee(workspaces),
            sessions,
        }))
    }

    /// The settings in force now (a reload may replace them for the next request).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// The workspaces in force now.
    pub fn workspaces(&self) -> Arc<Workspaces> {
        self.workspaces.load_full()
    }

    /// How long sessions last, as the settings in force say.
    pub fn session_lifetime(&self, settings: &Settings) -> crate::auth::session::Lifetime {
        crate::auth::session::Lifetime {
            absolute: settings.session_absolute_ttl,
        }
    }

    /// The workspace `user`'s tokens are for (a 403 naming the rule when none).
    pub fn workspace_for(&self, user: &User) -> Result<Arc<Workspace>, AppError> {
        Ok(self.workspaces.load().for_user(user)?)
    }

    /// Puts reloaded settings and workspaces in force, together.
    pub fn replace(&self, settings: Settings, workspaces: Workspaces) {
        self.limits.set_grants(Arc::clone(&settings.grants));
        self.workspaces.store(Arc::new(workspaces));
        self.settings.store(Arc::new(settings));
    }
}

/// What minting for `workspace` needs, borrowed from the settings.
pub fn mint_params<'a>(settings: &'a Settings, workspace: &'a Workspace) -> MintParams<'a> {
    MintParams {
        workspace_id: &workspace.workspace_id,
        signing_key: workspace.signing_key.secret(),
        ttl: settings.token_ttl,
        rps: settings.token_rps,
        name: &settings.token_name,
    }
}

impl App {
    /// What minting for `user` in `workspace` needs: the settings', with their plan's
    /// `limits.rps` when `[usage.plans]` sets one.
    pub fn mint_params_for<'a>(
        &self,
        settings: &'a Settings,
        workspace: &'a Workspace,
        user: &User,
    ) -> MintParams<'a> {
        let mut params = mint_params(settings, workspace);
        if let Some(rps) = self.usage.as_ref().and_then(|u| u.limits_for(user).rps) {
            params.rps = Some(rps);
        }
        params
    }
}

/// Handlers that need only the metrics ask for them (`State<Metrics>`), not the whole [`App`].
impl axum::extract::FromRef<AppState> for crate::metrics::Metrics {
    fn from_ref(app: &AppState) -> Self {
        app.metrics.clone()
    }
}
