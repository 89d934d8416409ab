//! Usage budgets as a route layer (`/api/token`, `/api/pipes/...`, `/api/sql`): a tenant over
//! one of its budgets gets a 429 naming it, with `Retry-After` until the reset
//! (`crate::usage`). Inside the rate limits, so it takes the user they already found; it
//! leaves the user and the tenant's [`Standing`] in the request for the handler (the token
//! route mints shorter, slower tokens near a budget).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::error::AppError;
use crate::http::extract::{CurrentUser, current_user_any};
use crate::http::state::AppState;
use crate::usage::budget::Standing;

/// The tenant's budget standing, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct BudgetStanding(pub Standing);

/// Route layer: refuses a tenant over budget. Requests without a user pass: the handler
/// answers them 401.
pub async fn enforce(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(usage) = state.usage.clone() else {
        return next.run(request).await;
    };
    let user = match request.extensions().get::<CurrentUser>() {
        Some(known) => known.0.clone(),
        None => match current_user_any(&state, &session, request.headers()).await {
            Ok(user) => user,
            Err(AppError::Unauthorized(_)) => return next.run(request).await,
            Err(e) => return e.into_response(),
        },
    };
    match usage.check(&user).await {
        Ok(standing) => {
            request.extensions_mut().insert(BudgetStanding(standing));
            request.extensions_mut().insert(CurrentUser(user));
            next.run(request).await
        }
        Err(refusal) => {
            tracing::info!(user = %user.id, "refused over a usage budget");
            AppError::from(refusal).into_response()
        }
    }
}
