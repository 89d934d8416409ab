//! Who the user is: local users with passwords, sessions, login throttling.
//!
//! Every way in (local login, OIDC login in [`oidc`], an IdP bearer token in [`bearer`])
//! produces the same [`User`], which is all the grants look at; [`current_user_any`] is the
//! one call for routes that accept both a session cookie and a bearer token, and the
//! [`CurrentUser`] extractor makes that call at most once per request.

pub mod bearer;
pub mod claims_map;
pub mod csrf;
pub mod idp_token;
pub mod jwks;
pub mod login;
pub mod oidc;
pub mod redis_store;
pub mod session_store;
pub mod store;
pub mod throttle;
pub mod users;

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use serde::{Deserialize, Serialize};

/// An authenticated app user, as the grants see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    /// Stable identifier (login name, or the IdP's `sub`).
    pub id: String,
    /// The tenant (organisation) the user belongs to; most row filters come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Roles that grants match on.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Any other attribute a grant may match on or render into a fixed param.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The user behind a request: its bearer token when it has an `Authorization` header (and
/// then only that: see [`bearer`]), else its session. 401 when neither proves a user.
pub async fn current_user_any(
    state: &crate::app::AppState,
    session: &tower_sessions::Session,
    headers: &axum::http::HeaderMap,
) -> Result<User, crate::error::AppError> {
    if let Some(user) = bearer::user_from_request(state, headers).await? {
        return Ok(user);
    }
    Ok(login::current_user(session).await?.user)
}

/// The request's user, as a handler argument: resolved by [`current_user_any`] at most once
/// per request. A route layer that needed the user first (the rate limits in
/// [`crate::ratelimit::enforce`]) leaves it in the request's extensions, so the session is
/// not read and deserialised again, nor a bearer token's signature verified twice.
///
/// Take it as `Result<CurrentUser, AppError>` to answer a missing user yourself.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<crate::app::AppState> for CurrentUser {
    type Rejection = crate::error::AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<CurrentUser>() {
            return Ok(known.clone());
        }
        let session = tower_sessions::Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| {
                crate::error::AppError::Internal(anyhow::anyhow!("no session layer: {why}"))
            })?;
        current_user_any(state, &session, &parts.headers)
            .await
            .map(CurrentUser)
    }
}
