//! The session cookie's layer, and the 503 a failing session store answers.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax` (`SameSite=None; Secure` when `[cors]` allows an
//! app on another host, whose fetches would not carry a `Lax` cookie), `Secure` when the public
//! URL is https, scoped to `/`, and expires after `session.ttl` of inactivity. A store failure on *save* happens inside
//! the session layer after the handler, which answers an empty 500; [`unavailable`] (outside
//! that layer) turns it into the same 503 JSON a failure on *load* gets.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::redis_store::watch_failures;
use crate::auth::store::DynStore;
use crate::config::Settings;
use crate::error::AppError;

/// The session layer over `store`, as the settings say.
pub fn layer(store: DynStore, settings: &Settings) -> SessionManagerLayer<DynStore> {
    SessionManagerLayer::new(store)
        .with_name(settings.cookie_name.clone())
        .with_http_only(true)
        .with_same_site(if settings.cors.cross_site {
            SameSite::None
        } else {
            SameSite::Lax
        })
        // `SameSite=None` is kept by browsers only with `Secure` (on http, loopback only:
        // `[cors]` validation refuses the rest).
        .with_secure(settings.public_url.scheme() == "https" || settings.cors.cross_site)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            settings.session_ttl.as_secs() as i64,
        )))
}

/// Middleware outside the session layer: a 500 after a session-store failure becomes the 503
/// JSON of [`AppError::Unavailable`].
pub async fn unavailable(request: Request, next: Next) -> Response {
    let (failed, response) = watch_failures(next.run(request)).await;
    if failed && response.status() == StatusCode::INTERNAL_SERVER_ERROR {
        return AppError::Unavailable("the session store is unavailable; try again shortly".into())
            .into_response();
    }
    response
}
