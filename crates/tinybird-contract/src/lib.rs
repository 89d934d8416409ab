//! The Tinybird contract that the BFF and its local endpoint share: JWT claims and how they are
//! signed and checked, the workspace admin token's shape, which names can be pipe names,
//! query parameters as Tinybird reads them, the GCRA rule Tinybird counts `limits.rps` with,
//! and [`serve`], the accept loop (timeouts, a connection cap) every listener of both runs on.
//!
//! Nothing here knows the BFF's server or the local endpoint: both depend on this crate, never
//! the other way round. Everything follows the BFF's docs/tinybird.md ("JWTs" to "Rate
//! limits"); the few undocumented choices are made here once so they are easy to change.

pub mod admin_token;
pub mod claims;
pub mod gcra;
pub mod names;
pub mod params;
pub mod serve;

pub use admin_token::{AdminToken, AdminTokenError};
pub use claims::{Claims, Limits, Scope, ScopeType};
