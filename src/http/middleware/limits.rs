//! The BFF's own rate limits as a route layer (`/api/token`, `/api/pipes/...`, `/api/sql`).
//!
//! It finds the user (bearer token or session, like the handlers), checks their buckets with
//! `crate::ratelimit::Limiter`, and answers 429 with `Retry-After` and
//! `X-RateLimit-Limit/Remaining/Reset`, or passes the request on and adds the same headers to
//! the answer. The user it found is left in the request for the handler's [`CurrentUser`].

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::error::AppError;
use crate::http::extract::{CurrentUser, current_user_any};
use crate::http::state::AppState;
use crate::ratelimit::Scope;

/// Route layer: limits `scope` for the request's user. Requests without a user pass untouched:
/// the handler answers them 401.
pub async fn enforce(
    State((state, scope)): State<(AppState, Scope)>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.limits.is_enabled() {
        return next.run(request).await;
    }
    let user = match current_user_any(&state, &session, request.headers()).await {
        Ok(user) => user,
        Err(AppError::Unauthorized(_)) => return next.run(request).await,
        Err(e) => return e.into_response(),
    };
    let checked = state.limits.check(scope, &user).await;
    // The handler takes the user from here instead of resolving it again.
    request.extensions_mut().insert(CurrentUser(user));
    match checked {
        Ok(None) => next.run(request).await,
        Ok(Some(info)) => {
            let mut response = next.run(request).await;
            // A handler's own 429 (Tinybird's, relayed by the proxy) keeps its headers.
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                info.write_headers(response.headers_mut());
            }
            response
        }
        Err(limited) => limited.into_response(),
    }
}
