//! Who the user is: local users with passwords, sessions, login throttling.
//!
//! Every way in (local login, and later OIDC or an IdP bearer token) produces the same
//! [`User`], which is all the grants look at.

pub mod csrf;
pub mod login;
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
