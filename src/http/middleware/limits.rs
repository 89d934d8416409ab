//! The BFF's own limits as one route layer (`/api/token`, `/api/pipes/...`, `/api/sql`): the
//! per-user and per-grant rate limits, then the tenant's usage budgets ([`super::budget`]).
//!
//! It finds the user once (bearer token or session, like the handlers), checks their buckets
//! with `crate::ratelimit::Limiter`, and answers 429 with `Retry-After` and
//! `X-RateLimit-Limit/Remaining/Reset`, or passes the request on and adds the same headers to
//! the answer. A tenant over a budget gets the budget's 429 instead. The user it found is left
//! in the request for the handler's [`CurrentUser`], with the tenant's budget standing.
//!
//! One layer rather than one per check: every layer on a hot route costs a boxed future and
//! a clone of the service per request (see docs/benchmarks.md).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::budget;
use crate::error::AppError;
use crate::http::extract::{CurrentUser, current_user_any};
use crate::http::state::AppState;
use crate::ratelimit::Scope;

/// Route layer: limits `scope` for the request's user, then checks their tenant's budgets.
/// Requests without a user pass untouched: the handler answers them 401.
pub async fn enforce(
    State((state, scope)): State<(AppState, Scope)>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.limits.is_enabled() && state.usage.is_none() {
        return next.run(request).await;
    }
    let user = match current_user_any(&state, &session, request.headers()).await {
        Ok(user) => user,
        Err(AppError::Unauthorized(_)) => return next.run(request).await,
        Err(e) => return e.into_response(),
    };
    let rate = match state.limits.check(scope, &user).await {
        Ok(info) => info,
        Err(limited) => return limited.into_response(),
    };
    if let Some(standing) = budget::standing(&state, &user).await {
        match standing {
            Ok(standing) => request.extensions_mut().insert(standing),
            Err(refused) => return refused,
        };
    }
    // The handler takes the user from here instead of resolving it again.
    request.extensions_mut().insert(CurrentUser(user));
    let mut response = next.run(request).await;
    // A handler's own 429 (Tinybird's, relayed by the proxy) keeps its headers.
    if let Some(info) = rate.filter(|_| response.status() != StatusCode::TOO_MANY_REQUESTS) {
        info.write_headers(response.headers_mut());
    }
    response
}
