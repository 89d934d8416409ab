//! The Tinybird contract: JWT claims, signing and minting, the admin token's shape, pipe
//! names, parameters as Tinybird reads them, the workspaces and which one is each user's, the GCRA rate rule, and the upstream client with
//! retries that proxy mode calls Tinybird through. Nothing here knows the BFF's server: the
//! local endpoint (`crate::local`) builds on this module alone.
//!
//! Everything here follows docs/tinybird.md ("JWTs" to "Retries"); the few undocumented choices are made
//! here once so they are easy to change.

pub mod admin_token;
pub mod claims;
pub mod gcra;
pub mod mint;
pub mod names;
pub mod params;
pub mod upstream;
pub mod workspaces;

pub use admin_token::{AdminToken, AdminTokenError};
pub use claims::{Claims, Limits, Scope, ScopeType};
