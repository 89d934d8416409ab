//! The HTTP layer: the only code that knows the server's shared state ([`state::App`]) and
//! axum's routing; its API is [`App`], [`router`] and [`serve`], the rest is `pub(crate)`.
//! Below it, services (`auth`, `proxy`, `ratelimit`, `metrics`, `audit`,
//! `health`, `redis`) take the parts they use, never the whole state.
//!
//! [`reload`] puts reloaded settings in force (`crate::run` decides when).
//!
//! A request goes: [`router`] (which route, which layers: [`middleware`]) → [`context`] (the
//! request resolved once: CSRF, who, what, workspace, limits, budget, token plan) → the route
//! group's file ([`login`], [`oidc`], [`token`], [`pipes`], [`sql`], [`admin`], [`keys`], [`ops`],
//! [`web`]) → the services → the response.

pub(crate) mod admin;
pub mod context;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod middleware;
pub(crate) mod oidc;
pub mod openapi;
pub(crate) mod ops;
pub(crate) mod pipes;
pub mod reload;
pub mod router;
pub(crate) mod sql;
pub mod state;
pub(crate) mod token;
pub(crate) mod web;

pub use router::{router, serve};
pub use state::{App, AppState};
