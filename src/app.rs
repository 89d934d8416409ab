//! The BFF: its state, its router, and `serve(listener, shutdown)`.
//!
//! Routes, grouped by who calls them:
//! - the browser page: `GET /` and its assets (`web/`, embedded in the binary);
//! - the app's JavaScript, with the session cookie: `/api/login`, `/api/logout`, `/api/me`,
//!   `/api/providers`, `/api/token` (POSTs pass the CSRF check in `auth::csrf`, except
//!   `/api/token` with `Authorization: Bearer <IdP token>`, which has no cookie: `auth::bearer`);
//! - browsers sent to and back from identity providers: `/auth/{provider}/login`,
//!   `/auth/{provider}/callback` (`auth::oidc::flow`);
//! - admins in the web app: `/api/admin/usage` (role `admin`);
//! - operators: `/healthz`, `/readyz` (also on the admin listener, with `/metrics`: see
//!   [`crate::health`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::redis_store::{self, ObservedStore, RedisSessionStore};
use crate::auth::session_store::FileSessionStore;
use crate::auth::store::DynStore;
use crate::auth::{csrf, login, oidc};
use crate::config::{SessionStoreKind, Settings};
use crate::ratelimit::login::SharedThrottle;
use crate::ratelimit::{Limiter, Scope};
use crate::tinybird::mint::MintParams;
use crate::{token, web};

/// Everything the handlers share.
pub struct App {
    /// Validated settings (users, grants, key, TTLs).
    pub settings: Settings,
    /// Base URL browsers call Tinybird at (the remote host, or the local endpoint's address).
    pub tinybird_url: String,
    /// Failed-login counters per account (in Redis when configured: shared by instances).
    pub account_throttle: SharedThrottle,
    /// Failed-login counters per client address (higher limit: catches guessing across accounts).
    pub client_throttle: SharedThrottle,
    /// Where sessions live.
    pub sessions: DynStore,
    /// Proxy mode: upstream client and cached upstream tokens.
    pub proxy: crate::proxy::Proxy,
    /// The shared Redis, when configured (sessions, limits, throttles).
    pub redis: Option<crate::redis::Redis>,
    /// Per-user and per-tenant rate limits on `/api/token` and `/api/pipes/...`.
    pub limits: Limiter,
    /// This instance's Prometheus metrics and usage ring.
    pub metrics: crate::metrics::Metrics,
    /// The audit log.
    pub audit: crate::audit::Audit,
    /// Readiness checks.
    pub health: crate::health::Health,
    /// Identity providers: discovery, keys, login and bearer-token verification.
    pub oidc: crate::auth::oidc::OidcProviders,
}

/// Handler state.
pub type AppState = Arc<App>;

impl App {
    /// Builds the state; opens the session store and the audit output, prepares Redis.
    pub fn new(settings: Settings, tinybird_url: String) -> anyhow::Result<AppState> {
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
        let proxy = crate::proxy::Proxy::new(
            &settings.proxy,
            &tinybird_url,
            settings.signing_key.secret(),
        )?;
        let fail = settings.limits.on_redis_error;
        let oidc = crate::auth::oidc::OidcProviders::new(&settings.oidc)?;
        Ok(Arc::new(App {
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
            audit: crate::audit::Audit::open(&settings.audit, metrics.clone())?,
            health: crate::health::Health::new(&settings)?,
            redis,
            metrics,
            tinybird_url: tinybird_url.trim_end_matches('/').to_owned(),
            settings,
            sessions,
        }))
    }

    /// What minting needs, borrowed from the settings.
    pub fn mint_params(&self) -> MintParams<'_> {
        MintParams {
            workspace_id: &self.settings.workspace_id,
            signing_key: self.settings.signing_key.secret(),
            ttl: self.settings.token_ttl,
            rps: self.settings.token_rps,
            name: &self.settings.token_name,
        }
    }
}

/// The router.
pub fn router(state: AppState) -> Router {
    let s = &state.settings;
    let session_layer = SessionManagerLayer::new(state.sessions.clone())
        .with_name(s.cookie_name.clone())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(s.public_url.scheme() == "https")
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            s.session_ttl.as_secs() as i64,
        )));
    let csrf_checked = Router::new()
        .route("/api/login", post(login::login))
        .route("/api/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            s.public_url.clone(),
            csrf::require,
        ));
    // A bearer-authenticated token request carries no cookie, so CSRF applies only without one.
    let token_route = Router::new()
        .route(
            "/api/token",
            post(token::token).route_layer(middleware::from_fn_with_state(
                (Arc::clone(&state), Scope::Token),
                crate::ratelimit::enforce,
            )),
        )
        .route_layer(middleware::from_fn_with_state(
            s.public_url.clone(),
            crate::auth::bearer::csrf_unless_bearer,
        ));
    // Browser navigations to and from identity providers (GETs: top-level redirects).
    let oidc_routes = Router::new()
        .route("/api/providers", get(oidc::flow::providers))
        .route("/auth/{provider}/login", get(oidc::flow::login))
        .route("/auth/{provider}/callback", get(oidc::flow::callback));
    let api = Router::new()
        .route("/api/me", get(login::me))
        // Proxy GETs are read-only and need no CSRF header; form POSTs pass the CSRF check inside.
        .route(
            "/api/pipes/{file}",
            get(crate::proxy::pipe)
                .post(crate::proxy::pipe)
                .route_layer(middleware::from_fn_with_state(
                    (Arc::clone(&state), Scope::Proxy),
                    crate::ratelimit::enforce,
                )),
        )
        // SQL over data sources through the proxy: the same auth, CSRF, limits and retries.
        .route(
            "/api/sql",
            get(crate::proxy::sql::sql)
                .post(crate::proxy::sql::sql)
                .route_layer(middleware::from_fn_with_state(
                    (Arc::clone(&state), Scope::Proxy),
                    crate::ratelimit::enforce,
                )),
        )
        .route("/api/admin/usage", get(crate::metrics::usage::admin_usage))
        .merge(csrf_checked)
        .merge(token_route)
        .merge(oidc_routes)
        .layer(session_layer)
        // Outside the session layer: its bare 500 on a failed save becomes a 503 JSON.
        .layer(middleware::from_fn(redis_store::session_unavailable))
        .with_state(Arc::clone(&state));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(crate::health::readyz).with_state(Arc::clone(&state)),
        )
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async {
                crate::error::AppError::NotFound("no such API route".into())
            }),
        )
        .merge(api)
        .merge(web::router(&origin_of(&state.tinybird_url)))
        // API answers: framework rejections as JSON errors too; nosniff and a sandbox CSP.
        .layer(middleware::from_fn(crate::error::api_responses))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // Path only: query strings may carry tokens.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
}

/// `scheme://host[:port]` of a base URL (what CSP's `connect-src` wants).
fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_owned())
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
