//! The app user, as every part of the BFF sees them: whoever logged in (a local user, an OIDC
//! login, an identity provider's bearer token) becomes one of these, and it is all the grants
//! look at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An authenticated app user, as the grants see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// Stable identifier (login name, or the IdP's `sub`).
    pub id: String,
    /// The tenant (organisation) the user belongs to; most row filters come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tenant: Option<String>,
    /// Roles that grants match on.
    #[serde(default)]
    #[schema(required = true)]
    pub roles: Vec<String>,
    /// Any other attribute a grant may match on or render into a fixed param.
    #[serde(default)]
    #[schema(required = true)]
    pub attributes: BTreeMap<String, String>,
}
