//! The local endpoint's error envelope, as Tinybird's server writes it:
//! `{"error": "...", "documentation": "https://docs.tinybird.co/..."}` with its status codes.
//!
//! Tinybird picks the documentation link by status: 403 the authentication page; 408, 413 and
//! 429 the limits page; 405 the API reference; 400 and 404 the page of the API that answered
//! (pipes, query, tokens, events). The handlers name their API with [`ApiError::for_api`].

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Which API answered, for the documentation link of a 400 or 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v0/pipes/...`.
    Pipes,
    /// `/v0/sql`.
    Query,
    /// `/v0/tokens`.
    Tokens,
    /// `/v0/events`.
    Events,
}

impl Api {
    fn docs(self) -> &'static str {
        match self {
            Api::Pipes => "https://docs.tinybird.co/api-reference/pipe-api.html",
            Api::Query => "https://docs.tinybird.co/api-reference/query-api.html",
            Api::Tokens => "https://docs.tinybird.co/api-reference/token-api.html",
            Api::Events => "https://docs.tinybird.co/api-reference/events-api.html",
        }
    }
}

/// An error answer: status, message, documentation link and any extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status, from Tinybird's list in docs/tinybird.md (400, 403, 404, 405, 408, 413, 429, 500).
    pub status: StatusCode,
    /// What the client should know, never internals.
    pub message: String,
    /// The `documentation` link; by status when not set.
    pub documentation: Option<&'static str>,
    /// Extra response headers (boxed: most errors have none, and `Result`s stay small).
    pub headers: Box<HeaderMap>,
}

impl ApiError {
    /// An error with no extra headers.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            documentation: None,
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

    /// Names the API that answered: a 400 or 404 then links to its documentation.
    pub fn for_api(mut self, api: Api) -> Self {
        if self.documentation.is_none()
            && matches!(self.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND)
        {
            self.documentation = Some(api.docs());
        }
        self
    }

    /// The link Tinybird sends with this status.
    fn documentation(&self) -> &'static str {
        if let Some(link) = self.documentation {
            return link;
        }
        match self.status.as_u16() {
            403 => "https://docs.tinybird.co/api-reference/overview#authentication",
            408 | 411 | 413 | 429 => {
                "https://docs.tinybird.co/api-reference/api-reference.html#limits"
            }
            _ => "https://docs.tinybird.co/api-reference/api-reference.html",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({
            "error": self.message,
            "documentation": self.documentation(),
        }));
        (self.status, *self.headers, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: ApiError) -> (u16, serde_json::Value) {
        let r = e.into_response();
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_error_links_the_documentation_tinybird_links() {
        let (status, json) = body(ApiError::forbidden("invalid authentication token")).await;
        assert_eq!(status, 403);
        assert_eq!(
            json,
            serde_json::json!({
                "error": "invalid authentication token",
                "documentation": "https://docs.tinybird.co/api-reference/overview#authentication"
            })
        );
        let (_, json) = body(ApiError::bad_request("x").for_api(Api::Pipes)).await;
        assert_eq!(json["documentation"], Api::Pipes.docs());
        let (_, json) =
            body(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "x").for_api(Api::Query)).await;
        assert!(json["documentation"].as_str().unwrap().ends_with("#limits"));
        let (_, json) = body(ApiError::not_found("x").for_api(Api::Query)).await;
        assert_eq!(json["documentation"], Api::Query.docs());
    }
}
