//! Middleware: the CSRF check of the login routes ([`csrf`]; the data routes check it in
//! `super::context`), the session cookie and its store's failures ([`sessions`]), and the
//! envelope of every API answer: JSON errors and security headers ([`envelope`]), and the CORS
//! layer for apps on other origins ([`cors`]).

pub mod cors;
pub mod csrf;
pub mod envelope;
pub mod sessions;
