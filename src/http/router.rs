//! Every route of the BFF, grouped by who calls it, and the layers around them.
//!
//! - the browser page: `GET /` and its assets (`web/`, embedded in the binary);
//! - the app's JavaScript, with the session cookie: `/api/login`, `/api/logout`, `/api/me`,
//!   `/api/token` and the proxy (`/api/pipes/...`, `/api/sql`); POSTs pass the CSRF check,
//!   except with `Authorization: Bearer <IdP token or API key>`, which has no cookie to ride
//!   on (API keys, `Bearer tbk_...`, work on these routes only);
//! - browsers sent to and back from identity providers: `/api/providers`,
//!   `/auth/{provider}/login`, `/auth/{provider}/callback`;
//! - admins in the web app: `/api/admin/usage` (role `admin`); tenant and platform admins:
//!   `/api/keys` (API keys, the session cookie only: [`super::keys`]);
//! - operators: `/healthz`, `/readyz` (also on the admin listener, with `/metrics`: see
//!   [`super::ops`]).

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use super::middleware::{cors, csrf, envelope, sessions};
use super::state::AppState;
use super::{admin, keys, login, oidc, openapi, ops, pipes, sql, token, web};
use crate::auth::store::DynStore;
use crate::error::AppError;
use crate::ratelimit::Scope;
use tinybird_contract::serve::ConnLimits;

/// The router.
pub fn router(state: AppState) -> Router {
    let snapshot = state.snapshot();
    let origins = Arc::new((
        snapshot.settings.public_url.clone(),
        snapshot.settings.cors.allowed_origins.clone(),
    ));
    // The app's JavaScript, on the session cookie.
    // A login body is bounded by the field caps, before it is read whole.
    let login_body = DefaultBodyLimit::max(snapshot.settings.login_caps.body_bytes());
    let session_routes = Router::new()
        .route("/api/login", post(login::login).layer(login_body))
        .route("/api/logout", post(login::logout))
        .route_layer(from_fn_with_state(Arc::clone(&origins), csrf::require))
        .route("/api/me", get(login::me));
    // The data routes resolve their request once (`super::context::Ctx`: CSRF for a cookie
    // POST, who, limits, budget), counting it as the `Scope` they declare here. A bearer
    // request carries no cookie, so the CSRF check applies only without one; proxy GETs are
    // read-only and need none.
    let data_routes = Router::new()
        .route(
            "/api/token",
            post(token::token).route_layer(Extension(Scope::Token)),
        )
        .route(
            "/api/pipes/{file}",
            get(pipes::pipe)
                .post(pipes::pipe)
                .route_layer(Extension(Scope::Proxy)),
        )
        .route(
            "/api/sql",
            get(sql::sql)
                .post(sql::sql)
                .route_layer(Extension(Scope::Proxy)),
        );
    // Browser navigations to and from identity providers (GETs: top-level redirects).
    let oidc_routes = Router::new()
        .route("/api/providers", get(oidc::providers))
        .route("/auth/{provider}/login", get(oidc::login))
        .route("/auth/{provider}/callback", get(oidc::callback));
    let admin_routes = Router::new()
        .route("/api/admin/usage", get(admin::usage))
        .route("/api/usage/budget", get(admin::budget));
    // Tenant and platform admins managing API keys (`super::keys`): the session cookie only,
    // POSTs pass the CSRF check, bodies are small.
    let key_routes = Router::new()
        .route("/api/keys", post(keys::create))
        .route("/api/keys/{id}/roll", post(keys::roll))
        .route("/api/keys/{id}/revoke", post(keys::revoke))
        .route_layer(from_fn_with_state(origins, csrf::require))
        .route("/api/keys", get(keys::list))
        .layer(DefaultBodyLimit::max(keys::MAX_BODY_BYTES));
    let with_session = Router::new()
        .merge(session_routes)
        .merge(oidc_routes)
        .merge(admin_routes)
        .merge(key_routes)
        .layer(sessions::layer(
            DynStore::clone(&state.sessions),
            &snapshot.settings,
        ))
        // Outside the session layer: its bare 500 on a failed save becomes a 503 JSON.
        .layer(from_fn(sessions::unavailable))
        .with_state(Arc::clone(&state));
    // The data routes read the session cookie themselves (`super::context`): no session
    // layer, cookie jar or boxed future of their own on the hot path.
    let data_routes = data_routes.with_state(Arc::clone(&state));
    let operators = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/readyz", get(ops::readyz))
        .with_state(Arc::clone(&state));
    let router = Router::new()
        .merge(operators)
        .route(
            "/api/{*rest}",
            any(|| async { AppError::NotFound("no such API route".into()) }),
        )
        .merge(data_routes)
        .merge(with_session)
        .merge(web::router(&tinybird_origins(&state)))
        // API answers: framework rejections as JSON errors too; nosniff and a sandbox CSP.
        .layer(envelope::api_responses())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                // Path only: query strings may carry tokens.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        );
    // Outermost: preflights are answered before anything else, and every answer (errors
    // included) carries the CORS headers an allowed page needs to read it.
    match cors::layer(&snapshot.settings.cors) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Every workspace's origin, space-separated: the page may call each user's Tinybird host.
/// Hosts are fixed until a restart, so this is computed once.
fn tinybird_origins(state: &AppState) -> String {
    let mut origins: Vec<String> = state
        .snapshot()
        .workspaces
        .iter()
        .map(|w| origin_of(&w.url))
        .collect();
    origins.sort();
    origins.dedup();
    origins.join(" ")
}

/// `scheme://host[:port]` of a base URL (what CSP's `connect-src` wants).
fn origin_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_owned())
}

/// Serves until `shutdown` resolves, then drains in-flight requests; slow and idle clients
/// are cut and connections capped as `limits` says (see `tinybird_contract::serve`).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tinybird_contract::serve::serve(listener, router(state), limits, shutdown).await
}
