//! The Tinybird contract: JWT claims, signing and minting, the admin token's shape, and the
//! upstream client with retries that proxy mode calls Tinybird through.
//!
//! Everything here follows `tinybird-contract.md` §1; the few undocumented choices are made
//! here once so they are easy to change.

pub mod admin_token;
pub mod claims;
pub mod mint;
pub mod upstream;

pub use admin_token::{AdminToken, AdminTokenError};
pub use claims::{Claims, Limits, Scope, ScopeType};
