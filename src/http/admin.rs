//! Admins in the web app: `GET /api/admin/usage?window=15m|1h|24h|7d`, for users with the
//! `admin` role only: per tenant, user and pipe, both paths (Tinybird's own record, read by
//! `crate::usage`), with budgets; and this instance's own counts of the last hour under
//! `instance` (the ring in `crate::metrics::usage`).
//!
//! `GET /api/usage/budget`: the signed-in user's tenant budget, for their page.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::CurrentUser;
use super::state::AppState;
use crate::error::AppError;
use crate::metrics::usage::ADMIN_ROLE;
use crate::usage::store::Window;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// `15m`, `1h` (default), `24h` or `7d`.
    window: Option<String>,
}

/// `GET /api/admin/usage`.
#[utoipa::path(get, path = "/api/admin/usage", tag = "usage",
    params(("window" = Option<String>, Query, description = "`15m`, `1h` (default), `24h` or `7d`")),
    responses((status = 200, description = "Per tenant, user and pipe over both paths, budgets, chart series and this instance's counts (docs/usage.md)", body = Object),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
pub async fn usage(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Value>, AppError> {
    if !user.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(AppError::Forbidden(format!(
            "usage is for users with the {ADMIN_ROLE:?} role"
        )));
    }
    let text = query.window.as_deref().unwrap_or("1h");
    let window = Window::parse(text).ok_or_else(|| {
        AppError::BadRequest(format!("window {text:?}: write 15m, 1h, 24h or 7d"))
    })?;
    let instance = serde_json::to_value(state.metrics.usage_report()).unwrap_or_default();
    let mut body = match &state.usage {
        Some(usage) => serde_json::to_value(usage.report(window).await).unwrap_or_default(),
        None => json!({
            "window": window.as_str(),
            "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "enabled": false,
            "source": null,
            "steps": [],
            "tenants": [],
        }),
    };
    body["instance"] = instance;
    Ok(Json(body))
}

/// `GET /api/usage/budget`: the caller's tenant budget (`null` without one).
#[utoipa::path(get, path = "/api/usage/budget", tag = "usage",
    responses((status = 200, description = "`{tenant, budget}`: the limits that apply, spent today and this month, and the standing (`within`, `near`, `over` with the line and its reset); `budget` is null without one (docs/usage.md)", body = Object),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody)))]
pub async fn budget(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Json<Value> {
    let view = match &state.usage {
        Some(usage) => usage.budget_view(&user).await,
        None => None,
    };
    Json(json!({ "tenant": user.tenant, "budget": view }))
}
