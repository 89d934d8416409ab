//! The Tinybird contract: JWT claims and signing, and the admin token's shape.
//!
//! Everything here follows `tinybird-contract.md` §1; the few undocumented choices are made
//! here once so they are easy to change.

pub mod admin_token;
pub mod claims;
pub mod mint;

pub use admin_token::{AdminToken, AdminTokenError};
pub use claims::{Claims, Limits, Scope, ScopeType};
