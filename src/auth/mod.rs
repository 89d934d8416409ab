//! Who the user is: local users with passwords, sessions, login throttling.
//!
//! Every way in (local login, OIDC login in [`oidc`], an IdP bearer token in [`bearer`])
//! produces the same [`User`], which is all the grants look at; [`current_user_any`] is the
//! one call for routes that accept both a session cookie and a bearer token.

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

use serde::{Deserialize, Serialize};

/// An authenticated app user, as the grants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
