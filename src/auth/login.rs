//! Login, logout and "who am I" for local users, on a cookie session.
//!
//! Login renews the session id (no fixation), checks the password off the runtime against a
//! dummy hash for unknown users (no timing oracle), and is throttled per account and per
//! client address after repeated failures.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::User;
use crate::app::AppState;
use crate::error::AppError;

/// Session key of the logged-in user.
const USER_KEY: &str = "user";

/// What the session keeps about the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    /// The identity grants evaluate.
    #[serde(flatten)]
    pub user: User,
    /// Name to show, if any.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The logged-in user of a session, or 401.
///
/// Also keeps an active session alive: the store only learns of activity when the session is
/// saved, and saving on every request would cost a disk write per request with the file store,
/// so the session is re-saved (its expiry pushed to now + ttl) once a tenth of the inactivity
/// timeout has passed since the last save. A session thus ends between 0.9 and 1 times
/// `session.ttl` after the user's last request.
pub async fn current_user(session: &Session) -> Result<SessionUser, AppError> {
    let user = session
        .get::<SessionUser>(USER_KEY)
        .await?
        .ok_or_else(|| AppError::Unauthorized("not signed in: log in first".into()))?;
    if let Some(tower_sessions::Expiry::OnInactivity(ttl)) = session.expiry() {
        let now = chrono::Utc::now().timestamp();
        let saved_at = session.get::<i64>(SAVED_AT_KEY).await?.unwrap_or(0);
        if now - saved_at >= ttl.whole_seconds() / 10 {
            session.insert(SAVED_AT_KEY, now).await?;
        }
    }
    Ok(user)
}

/// Session key of the Unix time the session was last saved (see [`current_user`]).
const SAVED_AT_KEY: &str = "saved_at";

/// Starts a logged-in session for `record` (OIDC login): renews the session id first, so a
/// session id planted before login is worthless after it.
pub async fn start_session(session: &Session, record: &SessionUser) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.insert(USER_KEY, record).await?;
    session
        .insert(SAVED_AT_KEY, chrono::Utc::now().timestamp())
        .await?;
    Ok(())
}

/// `POST /api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /api/login`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    session: Session,
    Json(body): Json<LoginRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let now = Instant::now();
    let account = body.username.as_str();
    let ip = crate::client_ip::client_ip(peer.ip(), &headers, &state.settings.trusted_proxies);
    let client = ip.to_string();
    for (throttle, key) in [
        (&state.account_throttle, account),
        (&state.client_throttle, client.as_str()),
    ] {
        if let Err(e) = throttle.check(key, now).await {
            if matches!(e, AppError::TooManyRequests { .. }) {
                state.metrics.login("throttled");
                state.audit.login_failed(account, ip, "throttled");
            }
            return Err(e);
        }
    }
    // Count the attempt as a failure before checking it, so concurrent guesses cannot all
    // slip in under `max_failures` while their argon2 checks run; a success clears it.
    state.account_throttle.record_failure(account, now).await;
    state.client_throttle.record_failure(&client, now).await;
    let Some(user) = state
        .settings
        .users
        .verify(&body.username, &body.password)
        .await
    else {
        state.metrics.login("failed");
        state.audit.login_failed(account, ip, "password");
        tracing::warn!(client = %ip, "login failed");
        return Err(AppError::Unauthorized("wrong username or password".into()));
    };
    state.account_throttle.record_success(account).await;
    state.client_throttle.record_success(&client).await;
    let display_name = state
        .settings
        .users
        .get(&user.id)
        .and_then(|r| r.display_name.clone());
    session.cycle_id().await?;
    let record = SessionUser { user, display_name };
    session.insert(USER_KEY, &record).await?;
    session
        .insert(SAVED_AT_KEY, chrono::Utc::now().timestamp())
        .await?;
    tracing::info!(user = %record.user.id, tenant = record.user.tenant.as_deref().unwrap_or("-"), "login");
    state.metrics.login("ok");
    state.audit.login(&record.user, ip);
    Ok(Json(serde_json::json!({ "user": record })))
}

/// `POST /api/logout`: ends the session server-side. After an OIDC login at a provider with
/// an end-session endpoint, answers `{"redirect": url}` for the page to navigate to (the
/// provider's logout); else 204.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
) -> Result<axum::response::Response, AppError> {
    if let Some(user) = session.get::<SessionUser>(USER_KEY).await? {
        tracing::info!(user = %user.user.id, "logout");
        state.metrics.logout();
        state.audit.logout(&user.user);
    }
    let redirect = super::oidc::flow::end_session_url(&state, &session).await?;
    session.flush().await?;
    Ok(match redirect {
        Some(url) => axum::response::IntoResponse::into_response(Json(
            serde_json::json!({ "redirect": url }),
        )),
        None => axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT),
    })
}

/// `GET /api/me`: the user and what their grants give them: pipes with their fixed params,
/// data sources with their rendered filters.
pub async fn me(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<serde_json::Value>, AppError> {
    let current = current_user(&session).await?;
    let (pipes, datasources, grant_error) = match state.settings.grants.evaluate(&current.user) {
        Ok(access) => (access.pipes, access.datasources, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    Ok(Json(serde_json::json!({
        "user": current,
        "pipes": pipes,
        "datasources": datasources,
        "grant_error": grant_error,
    })))
}
