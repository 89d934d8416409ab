//! `GET`/`POST /api/sql`: SQL over the user's data sources through the proxy (the service is
//! `crate::proxy`; what is sent upstream is `crate::proxy::sql`). One log line and one metric
//! per call, under the pipe label `(sql)`: a query's text never becomes a label or a log.
//!
//! In request order: the request's [`Ctx`] (the CSRF check for a cookie `POST`, who, limits
//! and budgets: see `super::context`), the credentials mode (501 with a static token, which
//! has no row filter), a data source in the user's grants (403, before any upstream call), the
//! query (`q` in the query string or a form, or the raw `POST` body; 400 when missing), then
//! Tinybird in the user's workspace with their own JWT.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use super::context::Ctx;
use super::state::AppState;
use crate::error::AppError;
use crate::proxy::sql::{SqlBody, sql_params};
use crate::proxy::{MAX_FORM_BYTES, ProxyError};
use crate::tinybird::mint::MintParams;

/// `GET`/`POST /api/sql`.
#[utoipa::path(method(get, post), path = "/api/sql", tag = "proxy",
    params(("q" = Option<String>, Query, description = "GET: the SQL, over the data sources the user's grants give"),
        ("X-BFF-CSRF" = Option<String>, Header, description = "`1`, on a POST with the session cookie")),
    request_body(content = String, content_type = "text/plain", description = "POST: the SQL as the body, or a form with `q`"),
    responses((status = 200, description = "Tinybird's answer as is; each data source read through the user's row filter", body = Object),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 400, description = "A parameter besides `q`: only the query is forwarded", body = crate::error::ErrorBody),
        (status = 403, description = "No data source granted, or one the query reads is not", body = crate::error::ErrorBody),
        (status = 429, description = "A rate limit or the tenant's budget; `Retry-After` says until when", body = crate::error::ErrorBody),
        (status = 501, description = "`[proxy] credentials = \"static\"`: no row filter, so no SQL", body = crate::error::ErrorBody)))]
pub async fn sql(State(state): State<AppState>, ctx: Ctx, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let response = handle(&state, &ctx, method, uri, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    // SQL is counted under one pipe label: its text never becomes a label.
    let seen = super::pipes::observe(&state, &ctx.user, "(sql)", &response, started);
    tracing::info!(
        status = seen.status,
        attempts = seen.attempts,
        elapsed_ms = seen.elapsed_ms,
        "proxied sql call"
    );
    ctx.finish(response)
}

async fn handle(
    state: &AppState,
    ctx: &Ctx,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    if state.proxy.is_static() {
        return Err(ProxyError::SqlNeedsJwt);
    }
    let access = ctx.access()?;
    if access.datasources.is_empty() {
        return Err(AppError::Forbidden(
            "no grant gives you a data source: /api/sql reads data sources through their row filters; ask an admin for a grant with `datasources`".into(),
        )
        .into());
    }
    let bytes = match *method {
        Method::POST => axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ProxyError::BodyTooLarge(MAX_FORM_BYTES))?,
        _ => Default::default(),
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let sql_body = match (bytes.is_empty(), form) {
        (true, _) => SqlBody::None,
        (false, true) => SqlBody::Form(&bytes),
        (false, false) => SqlBody::Raw(&bytes),
    };
    let params = sql_params(uri.query().unwrap_or(""), sql_body)?;
    let workspace = ctx.workspace()?;
    let mint = MintParams {
        workspace_id: &workspace.workspace_id,
        signing_key: workspace.signing_key.secret(),
        plan: ctx.plan()?,
    };
    let bearer = state.proxy.bearer(access, workspace, &mint)?;
    Ok(state
        .proxy
        .sql(workspace, &params, &bearer, method == Method::POST)
        .await)
}
