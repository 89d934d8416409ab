//! The Tinybird contract as the BFF uses it: the part shared with the local endpoint (JWT
//! claims and signing, the admin token's shape, pipe names, parameters as Tinybird reads them,
//! the GCRA rate rule) comes from the `tinybird_contract` crate and is re-exported here; this
//! module adds what only the BFF does: minting a user's token, the workspaces and which one is
//! each user's, and the upstream client with retries that proxy mode calls Tinybird through.
//!
//! Everything here follows docs/tinybird.md ("JWTs" to "Retries"); the few undocumented choices are made
//! here once so they are easy to change.

pub mod mint;
pub mod upstream;
pub mod workspaces;

pub use tinybird_contract::{
    AdminToken, AdminTokenError, Claims, Limits, Scope, ScopeType, admin_token, claims, gcra,
    names, params,
};
