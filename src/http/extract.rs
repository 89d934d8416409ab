//! Request extractors: who the request's user is.
//!
//! Every way in (a session cookie, an IdP bearer token) produces the same [`User`]; a request
//! with an `Authorization` header is authenticated by it alone (see `crate::auth::bearer`).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use tower_sessions::Session;

use super::state::{App, AppState};
use crate::auth::{bearer, session};
use crate::error::AppError;
use crate::user::User;

/// The user behind a request: its bearer token when it has an `Authorization` header (and
/// then only that), else its session. 401 when neither proves a user.
pub async fn current_user_any(
    app: &App,
    session: &Session,
    headers: &HeaderMap,
) -> Result<User, AppError> {
    if let Some(user) = bearer::user_from_request(&app.oidc, headers).await? {
        return Ok(user);
    }
    let settings = app.settings();
    Ok(
        session::current_user(session, &settings.users, app.session_lifetime(&settings))
            .await?
            .user,
    )
}

/// The request's user, as a handler argument: resolved by [`current_user_any`] at most once
/// per request. A route layer that needed the user first (the rate limits in
/// [`super::middleware::limits`]) leaves it in the request's extensions, so the session is not
/// read and deserialised again, nor a bearer token's signature verified twice.
///
/// Take it as `Result<CurrentUser, AppError>` to answer a missing user yourself.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<CurrentUser>() {
            return Ok(known.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| AppError::Internal(anyhow::anyhow!("no session layer: {why}")))?;
        current_user_any(state, &session, &parts.headers)
            .await
            .map(CurrentUser)
    }
}
