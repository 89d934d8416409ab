//! Middleware: the CSRF check ([`csrf`]), the BFF's rate limits and usage budgets as one layer
//! ([`limits`], with the budget check in [`budget`]), the session cookie and its store's
//! failures ([`sessions`]), and the envelope of every API answer: JSON errors and security
//! headers ([`envelope`]).

pub mod budget;
pub mod csrf;
pub mod envelope;
pub mod limits;
pub mod sessions;
