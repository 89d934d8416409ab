//! Browsers sent to and back from identity providers: `GET /api/providers` (what the login
//! page offers), `GET /auth/{provider}/login` and `GET /auth/{provider}/callback` (the code
//! flow with PKCE in `crate::auth::oidc::flow`).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Redirect;
use serde_json::{Value, json};
use tower_sessions::Session;

use super::state::AppState;
use crate::auth::oidc::flow::{self, CallbackError, CallbackQuery, LoginQuery};
use crate::error::AppError;

/// `GET /api/providers`: the providers with browser login, and whether local login is on.
pub async fn providers(State(state): State<AppState>) -> Json<Value> {
    let providers: Vec<Value> = state
        .oidc
        .iter()
        .filter(|p| p.settings.client.is_some())
        .map(|p| {
            json!({
                "name": p.settings.name,
                "display_name": p.settings.display_name,
                "login_url": format!("/auth/{}/login", p.settings.name),
            })
        })
        .collect();
    let local = state.settings().users.ids().next().is_some();
    Json(json!({ "local": local, "providers": providers }))
}

/// `GET /auth/{provider}/login`: start the flow.
pub async fn login(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<LoginQuery>,
    session: Session,
) -> Result<Redirect, AppError> {
    let provider = flow::login_provider(&state.oidc, &name)?;
    let public_url = &state.settings().public_url;
    let to = flow::begin(
        provider,
        &name,
        query.return_to.as_deref(),
        public_url,
        &session,
    )
    .await?;
    Ok(Redirect::to(to.as_str()))
}

/// `GET /auth/{provider}/callback`: finish the flow; a failed exchange is a failed login
/// (metrics, audit), a malformed callback is just refused.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    session: Session,
) -> Result<Redirect, AppError> {
    let provider = flow::login_provider(&state.oidc, &name)?;
    let public_url = &state.settings().public_url;
    let done = match flow::complete(provider, &name, query, public_url, &session).await {
        Ok(done) => done,
        Err(CallbackError::Invalid(e)) => return Err(e),
        Err(CallbackError::Failed(e)) => {
            state.metrics.login("failed");
            state
                .audit
                .login_failed(&format!("(oidc:{name})"), peer.ip(), "oidc");
            return Err(e);
        }
    };
    let user = &done.record.user;
    state.metrics.login("ok");
    state.audit.login(user, peer.ip());
    tracing::info!(provider = %name, user = %user.id, tenant = user.tenant.as_deref().unwrap_or("-"), "oidc login");
    Ok(Redirect::to(&done.return_to))
}
