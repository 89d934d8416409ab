//! The BFF: its state, its router, and `serve(listener, shutdown)`.
//!
//! Routes, grouped by who calls them:
//! - the browser page: `GET /` and its assets (`web/`, embedded in the binary);
//! - the app's JavaScript, with the session cookie: `/api/login`, `/api/logout`, `/api/me`,
//!   `/api/token` (POSTs pass the CSRF check in `auth::csrf`);
//! - operators: `/healthz`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, MemoryStore, SessionManagerLayer};

use crate::auth::session_store::FileSessionStore;
use crate::auth::store::DynStore;
use crate::auth::throttle::LoginThrottle;
use crate::auth::{csrf, login};
use crate::config::{SessionStoreKind, Settings};
use crate::tinybird::mint::MintParams;
use crate::{token, web};

/// Everything the handlers share.
pub struct App {
    /// Validated settings (users, grants, key, TTLs).
    pub settings: Settings,
    /// Base URL browsers call Tinybird at (the remote host, or the local endpoint's address).
    pub tinybird_url: String,
    /// Failed-login counters per account.
    pub account_throttle: LoginThrottle,
    /// Failed-login counters per client address (higher limit: catches guessing across accounts).
    pub client_throttle: LoginThrottle,
    /// Where sessions live.
    pub sessions: DynStore,
    /// Proxy mode: upstream client and cached upstream tokens.
    pub proxy: crate::proxy::Proxy,
}

/// Handler state.
pub type AppState = Arc<App>;

impl App {
    /// Builds the state; opens the session store.
    pub fn new(settings: Settings, tinybird_url: String) -> anyhow::Result<AppState> {
        let sessions = match &settings.session_store {
            SessionStoreKind::File(dir) => {
                DynStore(Arc::new(FileSessionStore::open(dir.clone()).map_err(
                    |e| anyhow::anyhow!("cannot open the session directory {}: {e}", dir.display()),
                )?))
            }
            SessionStoreKind::Memory => DynStore(Arc::new(MemoryStore::default())),
        };
        let proxy = crate::proxy::Proxy::new(&settings.proxy, &tinybird_url)?;
        Ok(Arc::new(App {
            proxy,
            account_throttle: LoginThrottle::new(settings.throttle),
            client_throttle: LoginThrottle::new(settings.client_throttle),
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
        .route("/api/token", post(token::token))
        .route_layer(middleware::from_fn_with_state(
            s.public_url.clone(),
            csrf::require,
        ));
    let api = Router::new()
        .route("/api/me", get(login::me))
        // Proxy GETs are read-only and need no CSRF header; form POSTs pass the CSRF check inside.
        .route(
            "/api/pipes/{file}",
            get(crate::proxy::pipe).post(crate::proxy::pipe),
        )
        .merge(csrf_checked)
        .layer(session_layer)
        .with_state(Arc::clone(&state));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async {
                crate::error::AppError::NotFound("no such API route".into())
            }),
        )
        .merge(api)
        .merge(web::router(&origin_of(&state.tinybird_url)))
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
