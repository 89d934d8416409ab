//! The HTTP layer: the only code that knows the server's shared state ([`state::App`]) and
//! axum's routing. Below it, services (`auth`, `proxy`, `ratelimit`, `metrics`, `audit`,
//! `health`, `redis`) take the parts they use, never the whole state.
//!
//! A request goes: [`router`] (which route, which layers: [`middleware`]) → the route group's
//! file ([`login`], [`oidc`], [`token`], [`pipes`], [`sql`], [`admin`], [`ops`], [`web`]) →
//! [`extract`] (who) and [`access`] (CSRF, grants) → the services → the response.

pub mod access;
pub mod admin;
pub mod extract;
pub mod login;
pub mod middleware;
pub mod oidc;
pub mod ops;
pub mod pipes;
pub mod router;
pub mod sql;
pub mod state;
pub mod token;
pub mod web;

pub use router::{router, serve};
pub use state::{App, AppState};
