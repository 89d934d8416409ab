//! `GET`/`POST /api/pipes/{pipe}.{format}`: proxy mode's route (the service is
//! `crate::proxy`). One log line and one metric per call, never the query or a token.
//!
//! In request order: the request's [`Ctx`] (the CSRF check for a cookie `POST`, who, limits
//! and budgets: see `super::context`), the pipe name and format, the caller's workspace, a
//! pipe that exists there (404), a grant for it (403), the parameters (query string plus a
//! form `POST`; bounded, strictly UTF-8), the user's fixed params over them, the credential,
//! then Tinybird, through the response cache when the pipe has one.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use super::context::Ctx;
use super::state::{App, AppState};
use crate::error::AppError;
use crate::proxy::cache::CacheStatus;
use crate::proxy::respond::UpstreamRequestId;
use crate::proxy::{Attempts, Call, MAX_FORM_BYTES, MAX_QUERY_BYTES, ProxyError, rewrite};
use crate::tinybird::mint::MintParams;
use crate::tinybird::params::Params;
use crate::user::User;

/// `GET`/`POST /api/pipes/{pipe}.{format}`.
#[utoipa::path(method(get, post), path = "/api/pipes/{file}", tag = "proxy",
    params(("file" = String, Path, description = "`<pipe>.json`, `.csv` or `.ndjson`"),
        ("X-BFF-CSRF" = Option<String>, Header, description = "`1`, on a POST with the session cookie")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "POST: the pipe's parameters as a form (long parameter lists)"),
    responses((status = 200, description = "Tinybird's answer as is (`meta`, `data`, `rows`, `statistics` in JSON); the user's fixed params won over any given", body = Object),
        (status = 400, description = "A parameter Tinybird reserves (`debug`, `template_parameters`, `__tb__*`...): named in the error", body = crate::error::ErrorBody),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 403, description = "No grant for this pipe", body = crate::error::ErrorBody),
        (status = 404, description = "No such pipe", body = crate::error::ErrorBody),
        (status = 429, description = "A rate limit or the tenant's budget; `Retry-After`", body = crate::error::ErrorBody),
        (status = 502, description = "Tinybird could not be reached", body = crate::error::ErrorBody)))]
pub async fn pipe(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(file): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    // Borrowed from the request, not copied out of it by extractors.
    let (parts, body) = request.into_parts();
    let request = (&parts.method, &parts.uri, &parts.headers);
    let (mut response, cache) = match handle(&state, &ctx, &file, request, body).await {
        Ok(done) => done,
        Err(e) => (e.into_response(), None),
    };
    if let Some(status) = cache {
        let value = HeaderValue::from_static(status.as_str());
        response.headers_mut().insert("x-bff-cache", value);
    }
    let pipe = rewrite::parse_file(&file).map_or_else(|_| "-".to_owned(), |t| t.pipe);
    let seen = observe(&state, &ctx.user, &pipe, &response, started);
    tracing::info!(
        pipe = %pipe,
        status = seen.status,
        attempts = seen.attempts,
        cache = cache.map_or("-", CacheStatus::as_str),
        elapsed_ms = seen.elapsed_ms,
        "proxied pipe call"
    );
    ctx.finish(response)
}

/// What a proxied call did, for its log line.
pub(super) struct Observed {
    /// Upstream attempts (0: refused before any).
    pub attempts: u32,
    /// The status answered.
    pub status: u16,
    /// Time spent, in milliseconds.
    pub elapsed_ms: u64,
}

/// Counts a proxied call (pipe label `label`, `(sql)` for SQL) for `caller` in the metrics,
/// and tells usage which of Tinybird's rows was the proxy's.
pub(super) fn observe(
    app: &App,
    caller: &User,
    label: &str,
    response: &Response,
    started: Instant,
) -> Observed {
    let attempts = response.extensions().get::<Attempts>().map_or(0, |a| a.0);
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics
        .proxy_request(caller.tenant.as_deref(), label, status, attempts, elapsed);
    if let (Some(usage), Some(id)) = (&app.usage, response.extensions().get::<UpstreamRequestId>())
    {
        usage.proxied(caller, &id.0);
    }
    Observed {
        attempts,
        status,
        elapsed_ms: elapsed.as_millis() as u64,
    }
}

/// What to send, with which credential; then the call (through the cache or not).
async fn handle(
    state: &AppState,
    ctx: &Ctx,
    file: &str,
    (method, uri, headers): (&Method, &Uri, &HeaderMap),
    body: Body,
) -> Result<(Response, Option<CacheStatus>), ProxyError> {
    let target = rewrite::parse_file(file)?;
    let workspace = ctx.workspace()?;
    let known = workspace.known_pipes.as_ref();
    if known.is_some_and(|pipes| !pipes.contains(&target.pipe)) {
        return Err(AppError::NotFound(format!("pipe {} not found", target.pipe)).into());
    }
    let access = ctx.access()?;
    let pipe_access = access.pipe(&target.pipe).ok_or_else(|| {
        AppError::Forbidden(format!(
            "no grant gives you pipe {}: ask an admin for one",
            target.pipe
        ))
    })?;
    let params = read_params(method, uri, headers, body).await?;
    let plan = ctx.plan()?;
    let mint = MintParams {
        workspace_id: &workspace.workspace_id,
        signing_key: workspace.signing_key.secret(),
        plan,
    };
    let call = Call {
        params: rewrite::effective_params(params, pipe_access)?,
        bearer: state.proxy.bearer(access, workspace, &mint)?,
        form: method == Method::POST,
        target,
        workspace: Arc::clone(workspace),
    };
    match state.proxy.cache_ttl(&call.target) {
        None => Ok((state.proxy.fetch(&call).await, None)),
        Some(ttl) => {
            // Keyed by the workspace and the JWT `name`: the identity whose rows it holds.
            let identity = format!("{}/{}", workspace.name, plan.name);
            let (response, status) = state.proxy.fetch_cached(call, &identity, ttl).await;
            Ok((response, Some(status)))
        }
    }
}

/// The query string, plus the form body of a `POST`; both bounded and strictly UTF-8.
async fn read_params(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Params, ProxyError> {
    let query = uri.query().unwrap_or("");
    if query.len() > MAX_QUERY_BYTES {
        return Err(ProxyError::UriTooLong(MAX_QUERY_BYTES));
    }
    let bad = |e: crate::tinybird::params::ParamsError| AppError::BadRequest(e.to_string());
    let mut params = Params::parse(query).map_err(bad)?;
    if method == Method::POST {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ProxyError::BodyTooLarge(MAX_FORM_BYTES))?;
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !bytes.is_empty() && !form {
            return Err(AppError::BadRequest(
                "POST body must be application/x-www-form-urlencoded (pipe parameters as a form)"
                    .into(),
            )
            .into());
        }
        params.extend(Params::parse_bytes(&bytes).map_err(bad)?);
    }
    Ok(params)
}
