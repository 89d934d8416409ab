//! The headers Tinybird's server puts on every answer, and its `OPTIONS` answer.
//!
//! Read in its request handler (docs/tinybird.md, "CORS and response headers"): CORS for any origin with exactly these
//! allowed headers and methods, `X-Tb-Warning` as the only exposed header (so a browser
//! calling Tinybird directly cannot read `Retry-After` or `X-RateLimit-*`), a day of preflight
//! caching, `X-Frame-Options: sameorigin`, and an `X-Request-ID` (a ULID, also the
//! `request_id` of the request's `pipe_stats_rt` row). `OPTIONS` on any path answers 204
//! without looking at a token.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The request's id, put in its extensions for the handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Tinybird's fixed headers, in the order its handler sets them.
pub const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "sameorigin"),
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-headers",
        "Authorization, Content-Type, X-Requested-With, X-Tb-Warning",
    ),
    ("access-control-expose-headers", "X-Tb-Warning"),
    (
        "access-control-allow-methods",
        "GET, POST, PUT, DELETE, OPTIONS",
    ),
    ("access-control-max-age", "86400"),
];

/// Middleware: `OPTIONS` is a bare 204; every answer gets the default headers and a request id.
pub async fn tinybird_headers(mut request: Request, next: Next) -> Response {
    let id = ulid::Ulid::new().to_string();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        request.extensions_mut().insert(RequestId(id.clone()));
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in DEFAULT_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert("x-request-id", value);
    }
    response
}
