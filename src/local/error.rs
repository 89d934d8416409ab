//! The local endpoint's error envelope: Tinybird's `{"error": "..."}` with its status codes.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer: status, message, and any extra headers (429's `Retry-After`).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status, from the contract's list (400, 403, 404, 405, 408, 413, 429, 500).
    pub status: StatusCode,
    /// What the client should know, never internals or secrets.
    pub message: String,
    /// Extra response headers (boxed: most errors have none, and `Result`s stay small).
    pub headers: Box<HeaderMap>,
}

impl ApiError {
    /// An error with no extra headers.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Box::default(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: every auth failure in Tinybird.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.insert(name, v);
        }
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "error": self.message }));
        (self.status, *self.headers, body).into_response()
    }
}
