//! tinybird-bff: a backend-for-frontend for Tinybird.
//!
//! # Layout
//!
//! A request reads top to bottom (see docs/architecture.md for the import rule):
//!
//! - [`http`]: the only code that knows the server: its state ([`http::App`]), the router
//!   (every route, grouped by caller), the extractor of the request's user, the
//!   "CSRF, then grants" access check, the middleware and one file per route group.
//! - [`config`]: the TOML settings, one validator per section.
//! - Services: [`auth`] (users, sessions and their stores, CSRF, login throttling, OIDC,
//!   identity-provider bearer tokens), [`proxy`] (the pass-through that calls Tinybird
//!   server-side), [`ratelimit`] (per-user and per-tenant limits), [`metrics`], [`audit`],
//!   [`health`] (readiness), [`redis`] (the shared store) and [`usage`] (Tinybird's own usage
//!   record, read server-side, and the per-tenant budgets counted from it), [`keys`] (tenant
//!   API keys and their store).
//! - Rules: [`grants`] (which pipes and data sources a user may read, pure), [`tinybird`]
//!   (the Tinybird contract: claims, minting, names, parameters, the GCRA rule, the upstream
//!   client, with the shared part from the `tinybird_contract` crate).
//! - Leaves: [`user`], [`error`] (the JSON error envelope), [`client_ip`], [`redact`]
//!   (credentials out of whatever is relayed or logged).
//!
//! Workspace crates below all of it (crates/): `tinybird_contract` (claims, the admin token,
//! names, parameters, GCRA, and `serve`, the accept loop with timeouts and a connection cap
//! for every listener) and `tinybird_local` (the Tinybird-compatible local endpoint, which
//! depends on the contract alone, so Cargo keeps it from importing the BFF).
//!
//! Around them: [`demo`] (the offline demo), [`run`] (listeners and shutdown), [`cli`],
//! [`keys_cli`] (`tinybird-bff keys ...`) and [`init`] (the files to start a deployment from).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod demo;
pub mod error;
pub mod grants;
pub mod health;
pub mod http;
pub mod init;
pub mod keys;
pub mod keys_cli;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod redact;
pub mod redis;
pub mod run;
pub mod tinybird;
pub mod usage;
pub mod user;
