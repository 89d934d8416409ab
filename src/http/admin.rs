//! Admins in the web app: `GET /api/admin/usage`, this instance's last hour of usage per
//! tenant (the ring in `crate::metrics::usage`), for users with the `admin` role only.

use axum::Json;
use axum::extract::State;

use super::extract::CurrentUser;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::metrics::usage::{ADMIN_ROLE, UsageReport};

/// `GET /api/admin/usage`.
pub async fn usage(
    State(metrics): State<Metrics>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<UsageReport>, AppError> {
    if !user.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(AppError::Forbidden(format!(
            "usage is for users with the {ADMIN_ROLE:?} role"
        )));
    }
    Ok(Json(metrics.usage_report()))
}
