//! `POST /api/login`, `POST /api/logout` and `GET /api/me` for a cookie session.
//!
//! Login renews the session id (no fixation), checks the password off the runtime against a
//! dummy hash for unknown users (no timing oracle), and is throttled per account and per
//! client address after repeated failures, each failure counted before its check.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::state::AppState;
use crate::auth::oidc::flow;
use crate::auth::session::{Lifetime, Login, SessionUser, current_user, signed_in, start_session};
use crate::error::AppError;

/// `POST /api/login` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's id in the users file.
    username: String,
    /// Their password.
    password: String,
}

/// `POST /api/login` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Who is now logged in.
    user: SessionUser,
}

/// `GET /api/me` answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// The logged-in user.
    user: SessionUser,
    /// The pipes their grants give, with the fixed params Tinybird enforces.
    pipes: Vec<crate::grants::PipeAccess>,
    /// The data sources their grants give for SQL, with the row filter of each.
    datasources: Vec<crate::grants::DatasourceAccess>,
    /// Why the grants give nothing (a missing attribute, a conflict), when they do not.
    #[schema(required = true)]
    grant_error: Option<String>,
    /// The workspace (region) their tokens are for, when the rule names one.
    #[schema(required = true)]
    workspace: Option<WorkspaceRef>,
    /// Whether they manage API keys (a tenant admin or platform admin, with `[keys]` on): the
    /// page shows its "API keys" section then (docs/api-keys.md).
    manages_keys: bool,
}

/// A workspace as the page shows it: its name in the config and the host the browser calls.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkspaceRef {
    /// `default` for a lone `[tinybird]`, else its `[tinybird.workspaces.<name>]`.
    name: String,
    /// The Tinybird base URL tokens for it are used at.
    host: String,
}

/// `POST /api/login`.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginRequest,
    params(("X-BFF-CSRF" = String, Header, description = "`1`: cookie-authenticated POSTs need it")),
    responses(
        (status = 200, description = "Logged in; the session cookie is set (a new id)", body = LoginResponse),
        (status = 400, description = "A username or password longer than its cap (`[login]`)", body = crate::error::ErrorBody),
        (status = 401, description = "Wrong username or password", body = crate::error::ErrorBody),
        (status = 429, description = "Too many failures for the account or the client; `Retry-After`", body = crate::error::ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    session: Session,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, AppError> {
    let now = Instant::now();
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    check_lengths(&body, settings.login_caps)?;
    let account = body.username.as_str();
    let ip = crate::client_ip::client_ip(peer.ip(), &headers, &settings.trusted_proxies);
    let client = ip.to_string();
    // Each attempt is checked and counted as a failure in one step, before its argon2 check,
    // so concurrent guesses cannot all slip in under `max_failures`. The client first: an
    // attempt it refuses counts nothing against the account.
    for (throttle, key) in [
        (&state.client_throttle, client.as_str()),
        (&state.account_throttle, account),
    ] {
        if let Err(e) = throttle.attempt(key, now).await {
            if matches!(e, AppError::TooManyRequests { .. }) {
                state.metrics.login("throttled");
                state.audit.login_failed(account, ip, "throttled");
            }
            return Err(e);
        }
    }
    let Some(user) = settings.users.verify(&body.username, &body.password).await else {
        state.client_throttle.failed(&client, now).await;
        state.account_throttle.failed(account, now).await;
        state.metrics.login("failed");
        state.audit.login_failed(account, ip, "password");
        tracing::warn!(client = %ip, "login failed");
        return Err(AppError::Unauthorized("wrong username or password".into()));
    };
    // The account's failures are cleared; the client only gets this attempt back, so one
    // known password does not reset its guessing at other accounts.
    state.account_throttle.record_success(account).await;
    state.client_throttle.forgive(&client).await;
    let display_name = settings
        .users
        .get(&user.id)
        .and_then(|r| r.display_name.clone());
    let record = SessionUser { user, display_name };
    let login = Login::Local {
        id: record.user.id.clone(),
    };
    start_session(&session, login).await?;
    tracing::info!(user = %record.user.id, tenant = record.user.tenant.as_deref().unwrap_or("-"), "login");
    state.metrics.login("ok");
    state.audit.login(&record.user, ip);
    Ok(Json(LoginResponse { user: record }))
}

/// 400 for a username or password longer than the caps (`[login]`), before anything keys on
/// them.
fn check_lengths(
    body: &LoginRequest,
    caps: crate::config::session::LoginCaps,
) -> Result<(), AppError> {
    for (field, value, cap, key) in [
        (
            "username",
            &body.username,
            caps.username,
            "max_username_bytes",
        ),
        (
            "password",
            &body.password,
            caps.password,
            "max_password_bytes",
        ),
    ] {
        if value.len() > cap {
            return Err(AppError::BadRequest(format!(
                "the {field} is longer than {cap} bytes (login.{key})"
            )));
        }
    }
    Ok(())
}

/// `POST /api/logout`: ends the session server-side. After an OIDC login at a provider with
/// an end-session endpoint, answers `{"redirect": url}` for the page to navigate to (the
/// provider's logout); else 204.
#[utoipa::path(post, path = "/api/logout", tag = "session",
    params(("X-BFF-CSRF" = String, Header, description = "`1`: cookie-authenticated POSTs need it")),
    responses(
        (status = 204, description = "Logged out; the session is gone on every instance"),
        (status = 200, description = "Logged out here; `{\"redirect\": url}` ends the identity provider's session too", body = Object),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
) -> Result<axum::response::Response, AppError> {
    if let Some(user) = signed_in(&session, &state.snapshot().settings.users).await? {
        tracing::info!(user = %user.id, "logout");
        state.metrics.logout();
        state.audit.logout(&user);
    }
    let public_url = &state.snapshot().settings.public_url;
    let redirect = flow::end_session_url(&state.oidc, public_url, &session).await?;
    session.flush().await?;
    Ok(match redirect {
        Some(url) => axum::response::IntoResponse::into_response(Json(
            serde_json::json!({ "redirect": url }),
        )),
        None => axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT),
    })
}

/// `GET /api/me`: the user, what their grants give them (pipes with their fixed params, data
/// sources with their rendered filters) and the workspace their tokens are for. An API key is
/// refused here, even next to a session cookie (keys never open the cookie routes).
#[utoipa::path(get, path = "/api/me", tag = "session",
    responses(
        (status = 200, description = "The user and what they may read", body = MeResponse),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    ))]
pub async fn me(
    State(state): State<AppState>,
    session: Session,
    headers: axum::http::HeaderMap,
) -> Result<Json<MeResponse>, AppError> {
    if crate::keys::caller::presented(&headers).is_some() {
        return Err(crate::keys::caller::not_here());
    }
    let snapshot = state.snapshot();
    let settings = &snapshot.settings;
    let lifetime = Lifetime {
        absolute: settings.session_absolute_ttl,
    };
    let current =
        current_user(&session, &settings.users, lifetime, state.logins.as_deref()).await?;
    let (pipes, datasources, grant_error) = match settings.grants.evaluate(&current.user) {
        Ok(access) => (access.pipes, access.datasources, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    // The workspace (region) the user's tokens are for: the page's region badge.
    let workspace = snapshot
        .workspaces
        .for_user(&current.user)
        .ok()
        .map(|w| WorkspaceRef {
            name: w.name.clone(),
            host: w.url.clone(),
        });
    let manages_keys = state.keys.as_ref().is_some_and(|keys| {
        crate::keys::rules::authority(&current.user, &keys.settings().admin_role).is_ok()
    });
    Ok(Json(MeResponse {
        user: current,
        pipes,
        datasources,
        grant_error,
        workspace,
        manages_keys,
    }))
}
