//! The CORS layer for apps on other origins (`[cors] allowed_origins`, see
//! `crate::config::cors` and docs/cross-origin.md): preflights answered, credentials allowed
//! for exactly the listed origins, and the rate-limit headers exposed so the browser client
//! can honour `Retry-After` on the BFF's 429s. Without allowed origins there is no layer: a
//! browser then refuses every cross-origin read, as before.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::csrf::CSRF_HEADER;
use crate::config::cors::CorsSettings;

/// The layer for `cors`, or `None` when no origin is allowed.
pub fn layer(cors: &CorsSettings) -> Option<CorsLayer> {
    if !cors.enabled() {
        return None;
    }
    let origins: Vec<HeaderValue> = cors
        .allowed_origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("validated: an origin is ASCII"))
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::AUTHORIZATION,
                HeaderName::from_static(CSRF_HEADER),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderName::from_static("x-ratelimit-reset"),
            ])
            .max_age(cors.max_age),
    )
}
