//! `POST /api/token`: mint a short-lived Tinybird JWT for the logged-in user.
//!
//! The answer carries the server's clock (`server_time`) beside `expires_at`, so a browser with
//! a skewed clock can still refresh on time.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::context::Ctx;
use super::state::{App, AppState};
use crate::error::AppError;
use crate::tinybird::claims::ScopeType;
use crate::tinybird::mint::{MintParams, Minted, mint};

/// The token endpoint's JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// Seconds from `server_time` to `expires_at`.
    pub expires_in: i64,
    /// The BFF's clock when minting, Unix seconds.
    pub server_time: i64,
    /// The Tinybird base URL to call with it.
    pub host: String,
    /// Pipes the token reads.
    pub pipes: Vec<String>,
    /// Data sources the token reads with SQL (`/v0/sql`), each through its row filter.
    pub datasources: Vec<String>,
    /// The JWT `name` (rate-limit bucket, usage attribution).
    pub name: String,
}

/// `POST /api/token`: for the session's user, or the user an `Authorization: Bearer <IdP
/// access token>` proves (then the session is not consulted at all).
#[utoipa::path(post, path = "/api/token", tag = "tokens",
    params(("X-BFF-CSRF" = Option<String>, Header, description = "`1`, required with the session cookie (not with a bearer token)")),
    responses(
        (status = 200, description = "A short-lived JWT for the user's workspace, with its scopes and the host to call", body = TokenResponse),
        (status = 401, description = "No session and no valid bearer token", body = crate::error::ErrorBody),
        (status = 403, description = "No grant, or a grant needing an attribute the user lacks (names which)", body = crate::error::ErrorBody),
        (status = 429, description = "A rate limit or the tenant's budget; `Retry-After` says until when", body = crate::error::ErrorBody),
    ))]
pub async fn token(State(state): State<AppState>, ctx: Ctx) -> Response {
    let answer = mint_for(&state, &ctx).map(Json);
    ctx.finish(answer.into_response())
}

/// Mints with the key of the caller's workspace, as their plan says; every refusal is a 403
/// that says why (no workspace, no grant, a name that does not render).
fn mint_for(state: &App, ctx: &Ctx) -> Result<TokenResponse, AppError> {
    let workspace = ctx.workspace()?;
    let access = ctx.access()?;
    let plan = ctx.plan()?;
    let now = chrono::Utc::now().timestamp();
    let params = MintParams {
        workspace_id: &workspace.workspace_id,
        signing_key: workspace.signing_key.secret(),
        plan,
    };
    let minted = mint(access, &params, now);
    let user = &ctx.user;
    if let Some(usage) = &state.usage {
        usage.minted(user, &minted.claims.name);
    }
    tracing::info!(user = %user.id, name = %minted.claims.name, exp = minted.claims.exp, "token minted");
    state.metrics.token_minted(user.tenant.as_deref());
    state.audit.token_minted(user, &minted);
    Ok(TokenResponse {
        expires_at: minted.claims.exp,
        expires_in: minted.claims.exp - now,
        server_time: now,
        host: workspace.url.clone(),
        pipes: resources(&minted, ScopeType::PipesRead),
        datasources: resources(&minted, ScopeType::DatasourcesRead),
        name: minted.claims.name.clone(),
        token: minted.token,
    })
}

fn resources(minted: &Minted, scope_type: ScopeType) -> Vec<String> {
    minted
        .claims
        .scopes
        .iter()
        .filter(|s| s.scope_type == scope_type)
        .map(|s| s.resource.clone())
        .collect()
}
