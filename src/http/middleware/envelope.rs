//! The envelope of every `/api/` and `/auth/` answer: the JSON error shape and the security
//! headers that keep a relayed body from ever running as a page on this origin.

use axum::response::{IntoResponse, Response};

use crate::error::Relayed;

/// Middleware on `/api/` and `/auth/`, which serve data and redirects, never pages:
///
/// - An error the framework answered itself (a body, path or query its extractors rejected,
///   a 405) becomes the JSON envelope. Those answers are `text/plain` or empty and may quote
///   the input (an unknown JSON field's name); clients can rely on `{"error"}` everywhere.
///   Answers relayed from Tinybird (marked [`Relayed`]) keep the body Tinybird
///   sent.
/// - Every answer gets `X-Content-Type-Options: nosniff` and a CSP that runs nothing
///   (`default-src 'none'; frame-ancestors 'none'; sandbox`), so even a body a browser could
///   render (an upstream's HTML or SVG passed through by the proxy) cannot script this
///   origin, where the session lives.
pub async fn api_responses(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let path = request.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/auth/");
    let mut response = next.run(request).await;
    if !api {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; sandbox"),
    );
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    let proxied = response.extensions().get::<Relayed>().is_some();
    if !plain || proxied || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    // Keep what the client needs (`Allow` on a 405, `Retry-After`); the body's type is new.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
