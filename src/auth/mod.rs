//! Who the user is: local users with passwords, sessions and their stores, CSRF, login
//! throttling, OIDC login and identity-provider bearer tokens.
//!
//! Every way in (local login, OIDC login in [`oidc`], an IdP bearer token in [`bearer`])
//! produces the same [`User`](crate::user::User). These are services: the routes that use
//! them, and the extractor that finds a request's user, are in `crate::http`.

pub(crate) mod bearer;
pub mod claims_map;
pub(crate) mod csrf;
pub mod idp_token;
pub mod jwks;
pub mod oidc;
pub mod redis_store;
pub(crate) mod session;
pub mod session_store;
pub mod store;
pub mod users;
