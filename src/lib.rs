//! tinybird-bff: a backend-for-frontend for Tinybird.
//!
//! # Layout
//!
//! A request reads top to bottom through these modules:
//!
//! - [`app`]: the BFF's state, its router (every route, grouped by caller) and `serve`.
//! - [`auth`]: who the user is: local users, sessions, CSRF, login throttling, OIDC login
//!   and identity-provider bearer tokens (`auth::oidc`, `auth::bearer`).
//! - [`grants`]: which pipes a user may read, with which fixed params (pure, no I/O).
//! - [`ratelimit`]: per-user and per-tenant limits on minting and proxy calls, in memory or
//!   shared by every instance through [`redis`] (which also holds sessions when configured).
//! - [`token`]: `POST /api/token`, minting through [`tinybird::mint`].
//! - [`proxy`]: `/api/pipes/...`, the pass-through that calls Tinybird server-side.
//! - [`tinybird`]: the Tinybird contract: claims, signing, the admin token's shape.
//! - [`web`]: the browser page and client, embedded from `web/`.
//! - [`error`]: the one JSON error envelope.
//!
//! Around them: [`config`] (the TOML settings and their validation), [`params`] (query and
//! form parameters as Tinybird reads them), [`local`] (the Tinybird-compatible local
//! endpoint), [`demo`] (the offline demo), [`run`] (listeners and shutdown) and [`cli`];
//! for operators, [`metrics`] (Prometheus, per-tenant usage), [`audit`] (the audit log) and
//! [`health`] (readiness, the admin listener).

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod client_ip;
pub mod config;
pub mod demo;
pub mod error;
pub mod grants;
pub mod health;
pub mod local;
pub mod metrics;
pub mod params;
pub mod proxy;
pub mod ratelimit;
pub mod redact;
pub mod redis;
pub mod run;
pub mod tinybird;
pub mod token;
pub mod web;
