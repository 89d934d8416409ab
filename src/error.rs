//! The BFF's one error envelope: `{"error": "..."}` with a status that keeps its meaning.
//!
//! Internals never reach the client: an [`AppError::Internal`] answers "internal error" and
//! logs the real cause. Messages of the other variants are written for the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything a BFF handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 401: not logged in (or the session ended).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: logged in, but not allowed (no grant, CSRF check failed, ...).
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 429 with the seconds to wait.
    #[error("{message}")]
    TooManyRequests {
        /// What is limited.
        message: String,
        /// `Retry-After` seconds.
        retry_after: u64,
    },
    /// 503: a dependency (session store, ...) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged, never shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tower_sessions::session::Error> for AppError {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %e, "session store failed");
        AppError::Unavailable("the session store is unavailable; try again shortly".into())
    }
}

/// Middleware on `/api/` and `/auth/`, which serve data and redirects, never pages:
///
/// - An error the framework answered itself (a body, path or query its extractors rejected,
///   a 405) becomes the JSON envelope. Those answers are `text/plain` or empty and may quote
///   the input (an unknown JSON field's name); clients can rely on `{"error"}` everywhere.
///   Proxied answers (marked with [`Attempts`](crate::proxy::respond::Attempts)) keep the
///   body Tinybird sent.
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
    let proxied = response
        .extensions()
        .get::<crate::proxy::respond::Attempts>()
        .is_some();
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

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let status = self.status();
        let body = axum::Json(serde_json::json!({ "error": self.to_string() }));
        let mut response = (status, body).into_response();
        if let AppError::TooManyRequests { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}
