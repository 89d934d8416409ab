//! The session cookie: the layer that reads and writes it on the cookie routes, the same
//! cookie read and written by the data routes themselves, and the 503 a failing session
//! store answers.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax` (`SameSite=None; Secure` when `[cors]` allows an
//! app on another host, whose fetches would not carry a `Lax` cookie), `Secure` when the public
//! URL is https, scoped to `/`, and expires after `session.ttl` of inactivity.
//!
//! The data routes (token, pipes, SQL) run outside the session layer, which costs a boxed
//! future, a parsed cookie jar and a span per request: `super::super::context` reads the
//! session id with [`cookie_id`] and answers what the layer would have (a [`set_cookie`] when
//! the session was re-saved, a [`clear_cookie`] when it ended or is unknown).
//!
//! A store failure on *save* happens inside the session layer after the handler, which answers
//! an empty 500; [`unavailable`] (outside that layer) turns it into the same 503 JSON a failure
//! on *load* gets.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::Id;
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
        .with_same_site(same_site(settings))
        .with_secure(secure(settings))
        .with_path("/")
        .with_expiry(expiry(settings))
}

/// How long a session lives without use.
pub fn expiry(settings: &Settings) -> Expiry {
    Expiry::OnInactivity(time::Duration::seconds(
        settings.session_ttl.as_secs() as i64
    ))
}

fn same_site(settings: &Settings) -> SameSite {
    if settings.cors.cross_site {
        SameSite::None
    } else {
        SameSite::Lax
    }
}

/// `SameSite=None` is kept by browsers only with `Secure` (on http, loopback only: `[cors]`
/// validation refuses the rest).
fn secure(settings: &Settings) -> bool {
    settings.public_url.scheme() == "https" || settings.cors.cross_site
}

/// The session id the request's cookie names, if it has a well-formed one.
pub fn cookie_id(settings: &Settings, headers: &HeaderMap) -> Option<Id> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == settings.cookie_name)
        .and_then(|cookie| cookie.value().parse().ok())
}

/// The `Set-Cookie` that keeps session `id` alive for another `session.ttl` (what the
/// layer sends when it saves a session).
pub fn set_cookie(settings: &Settings, id: Id) -> HeaderValue {
    let ttl = time::Duration::seconds(settings.session_ttl.as_secs() as i64);
    header_value(base(settings, id.to_string()).max_age(ttl))
}

/// The `Set-Cookie` that removes the session cookie (what the layer sends when a session
/// ended or its id is unknown).
pub fn clear_cookie(settings: &Settings) -> HeaderValue {
    header_value(
        base(settings, String::new())
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn base(settings: &Settings, value: String) -> tower_sessions::cookie::CookieBuilder<'static> {
    Cookie::build((settings.cookie_name.clone(), value))
        .http_only(true)
        .same_site(same_site(settings))
        .secure(secure(settings))
        .path("/")
}

fn header_value(cookie: tower_sessions::cookie::CookieBuilder<'static>) -> HeaderValue {
    HeaderValue::try_from(cookie.build().to_string())
        .expect("a cookie of a validated name and a session id is a valid header value")
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
