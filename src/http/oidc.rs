//! Browsers sent to and back from identity providers: `GET /api/providers` (what the login
//! page offers), `GET /auth/{provider}/login` and `GET /auth/{provider}/callback` (the code
//! flow with PKCE in `crate::auth::oidc::flow`).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use tower_sessions::Session;
use tower_sessions::cookie::{Cookie, SameSite};

use super::state::AppState;
use crate::auth::oidc::flow::{self, CallbackError, CallbackQuery, LoginQuery};
use crate::config::Settings;
use crate::error::AppError;

/// `GET /api/providers`: the providers with browser login, and whether local login is on.
#[utoipa::path(get, path = "/api/providers", tag = "session",
    responses((status = 200, description = "How users can log in", body = ProvidersResponse)))]
pub async fn providers(State(state): State<AppState>) -> Json<ProvidersResponse> {
    let providers = state
        .oidc
        .iter()
        .filter(|p| p.settings.client.is_some())
        .map(|p| ProviderLink {
            name: p.settings.name.clone(),
            display_name: p.settings.display_name.clone(),
            login_url: format!("/auth/{}/login", p.settings.name),
        })
        .collect();
    let local = state.snapshot().settings.users.ids().next().is_some();
    Json(ProvidersResponse { local, providers })
}

/// `GET /api/providers` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProvidersResponse {
    /// Whether the username and password form applies (there are local users).
    local: bool,
    /// The identity providers users can log in with.
    providers: Vec<ProviderLink>,
}

/// An identity provider the login page can offer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProviderLink {
    /// Its name in the config (`[oidc.<name>]`).
    name: String,
    /// What to call it on a button.
    display_name: String,
    /// Starts its sign-in; add `?return_to=/path`.
    login_url: String,
}

/// `GET /auth/{provider}/login`: start the flow; the login in progress goes to the browser
/// in a sealed cookie, nothing to the session store.
#[utoipa::path(get, path = "/auth/{provider}/login", tag = "session", operation_id = "oidc_login",
    params(("provider" = String, Path, description = "An `[oidc.<name>]` with a client"),
        ("return_to" = Option<String>, Query, description = "A path on this site to land on after login")),
    responses((status = 303, description = "To the provider's sign-in page"),
        (status = 404, description = "No such provider", body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<LoginQuery>,
) -> Result<impl IntoResponse, AppError> {
    let provider = flow::login_provider(&state.oidc, &name)?;
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let (to, sealed) = flow::begin(
        &state.oidc,
        provider,
        &name,
        query.return_to.as_deref(),
        &settings.public_url,
    )
    .await?;
    let cookie = pending_cookie(settings, sealed, flow::PENDING_TTL_SECS);
    Ok((
        AppendHeaders([(SET_COOKIE, cookie)]),
        Redirect::to(to.as_str()),
    ))
}

/// The pending-login cookie: only sent back to `/auth/...`, never readable by scripts,
/// `Lax` so the provider's top-level redirect back carries it; `max_age` 0 deletes it.
fn pending_cookie(settings: &Settings, value: String, max_age: i64) -> String {
    Cookie::build((pending_cookie_name(settings), value))
        .path("/auth/")
        .http_only(true)
        .secure(settings.public_url.scheme() == "https")
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(max_age))
        .build()
        .to_string()
}

fn pending_cookie_name(settings: &Settings) -> String {
    format!("{}_login", settings.cookie_name)
}

/// The pending-login cookie the browser sent, if any.
fn pending_from(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// `GET /auth/{provider}/callback`: finish the flow; a failed exchange is a failed login
/// (metrics, audit), a malformed callback is just refused. The pending-login cookie is
/// deleted either way: it is good for one callback.
#[utoipa::path(get, path = "/auth/{provider}/callback", tag = "session", operation_id = "oidc_callback",
    params(("provider" = String, Path, description = "The provider the flow started with"),
        ("code" = Option<String>, Query), ("state" = Option<String>, Query), ("error" = Option<String>, Query)),
    responses((status = 303, description = "Logged in: to `return_to`"),
        (status = 400, description = "A malformed or replayed callback", body = crate::error::ErrorBody)))]
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let forget = pending_cookie(settings, String::new(), 0);
    let done = finish(&state, peer, &name, query, &headers, &session).await;
    (AppendHeaders([(SET_COOKIE, forget)]), done).into_response()
}

async fn finish(
    state: &AppState,
    peer: SocketAddr,
    name: &str,
    query: CallbackQuery,
    headers: &HeaderMap,
    session: &Session,
) -> Result<Redirect, AppError> {
    let name = name.to_owned();
    let provider = flow::login_provider(&state.oidc, &name)?;
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let cookie = pending_from(headers, &pending_cookie_name(settings));
    let callback = (query, cookie.as_deref());
    let public_url = &settings.public_url;
    let done =
        match flow::complete(&state.oidc, provider, &name, callback, public_url, session).await {
            Ok(done) => done,
            Err(CallbackError::Invalid(e)) => return Err(e),
            Err(CallbackError::Failed(e)) => {
                state.metrics.login("failed");
                state
                    .audit
                    .login_failed(&format!("(oidc:{name})"), peer.ip(), "oidc");
                return Err(e);
            }
        };
    let user = &done.record.user;
    state.metrics.login("ok");
    state.audit.login(user, peer.ip());
    tracing::info!(provider = %name, user = %user.id, tenant = user.tenant.as_deref().unwrap_or("-"), "oidc login");
    Ok(Redirect::to(&done.return_to))
}
