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

/// The JSON body of every error the BFF answers itself: `{"error": "what is wrong and how to fix
/// it"}`. (Answers relayed from Tinybird keep Tinybird's body.)
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, and how to fix it. Never an internal detail or a secret.
    pub error: String,
}

/// Response extension marking an answer relayed from Tinybird (set by the proxy): its body
/// and status are Tinybird's and pass through the JSON envelope untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let status = self.status();
        let body = axum::Json(ErrorBody {
            error: self.to_string(),
        });
        let mut response = (status, body).into_response();
        if let AppError::TooManyRequests { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}
