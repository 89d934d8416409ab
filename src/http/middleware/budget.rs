//! Usage budgets, checked in the limits layer ([`super::limits`]) on `/api/token`,
//! `/api/pipes/...` and `/api/sql`: a tenant over one of its budgets gets a 429 naming it,
//! with `Retry-After` until the reset (`crate::usage`). The tenant's [`Standing`] is left in
//! the request for the handler (the token route mints shorter, slower tokens near a budget).

use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::http::state::App;
use crate::usage::budget::Standing;
use crate::user::User;

/// The tenant's budget standing, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct BudgetStanding(pub Standing);

/// `None` without usage tracking; else the standing of `user`'s tenant, or the 429 refusing
/// a tenant over budget.
pub async fn standing(app: &App, user: &User) -> Option<Result<BudgetStanding, Response>> {
    let usage = app.usage.as_ref()?;
    Some(match usage.check(user).await {
        Ok(standing) => Ok(BudgetStanding(standing)),
        Err(refusal) => {
            tracing::info!(user = %user.id, "refused over a usage budget");
            Err(AppError::from(refusal).into_response())
        }
    })
}
