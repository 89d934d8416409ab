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
pub async fn current_user(session: &Session) -> Result<SessionUser, AppError> {
    session
        .get::<SessionUser>(USER_KEY)
        .await?
        .ok_or_else(|| AppError::Unauthorized("not signed in: log in first".into()))
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
    session: Session,
    Json(body): Json<LoginRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    let now = Instant::now();
    let account = body.username.as_str();
    let client = peer.ip().to_string();
    for (throttle, key) in [
        (&state.account_throttle, account),
        (&state.client_throttle, client.as_str()),
    ] {
        if let Err(wait) = throttle.check(key, now) {
            return Err(AppError::TooManyRequests {
                message: "too many failed logins: wait before trying again".into(),
                retry_after: wait.as_secs().max(1),
            });
        }
    }
    let Some(user) = state
        .settings
        .users
        .verify(&body.username, &body.password)
        .await
    else {
        state.account_throttle.record_failure(account, now);
        state.client_throttle.record_failure(&client, now);
        tracing::warn!(client = %peer.ip(), "login failed");
        return Err(AppError::Unauthorized("wrong username or password".into()));
    };
    state.account_throttle.record_success(account);
    state.client_throttle.record_success(&client);
    let display_name = state
        .settings
        .users
        .get(&user.id)
        .and_then(|r| r.display_name.clone());
    session.cycle_id().await?;
    let record = SessionUser { user, display_name };
    session.insert(USER_KEY, &record).await?;
    tracing::info!(user = %record.user.id, tenant = record.user.tenant.as_deref().unwrap_or("-"), "login");
    Ok(Json(serde_json::json!({ "user": record })))
}

/// `POST /api/logout`: ends the session server-side.
pub async fn logout(session: Session) -> Result<StatusCode, AppError> {
    if let Some(user) = session.get::<SessionUser>(USER_KEY).await? {
        tracing::info!(user = %user.user.id, "logout");
    }
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me`: the user and what their grants give them.
pub async fn me(
    State(state): State<AppState>,
    session: Session,
) -> Result<Json<serde_json::Value>, AppError> {
    let current = current_user(&session).await?;
    let (pipes, grant_error) = match state.settings.grants.evaluate(&current.user) {
        Ok(access) => (access.pipes, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Ok(Json(
        serde_json::json!({ "user": current, "pipes": pipes, "grant_error": grant_error }),
    ))
}
