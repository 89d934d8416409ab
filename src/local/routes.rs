//! The local endpoint's HTTP handlers: pipe calls and the Token API subset.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::LocalState;
use super::auth::{Caller, authenticate, presented_token};
use super::error::ApiError;
use super::format::{self, Format};
use super::pipes::is_valid_pipe_name;
use super::query::{self, QueryError};
use crate::params::Params;
use crate::tinybird::claims::{Claims, Limits, Scope, sign};

/// `GET`/`POST /v0/pipes/{pipe}.{format}`.
pub async fn pipe(
    State(state): State<Arc<LocalState>>,
    file: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(file) = file.map_err(|_| {
        ApiError::not_found("pipe not found: the pipe name in the path is not valid UTF-8")
    })?;
    let (name, ext) = file.rsplit_once('.').unwrap_or((file.as_str(), "json"));
    let format = Format::from_extension(ext).ok_or_else(|| unsupported_format(ext))?;
    if !is_valid_pipe_name(name) {
        return Err(ApiError::not_found(format!(
            "pipe {:?} not found: pipe names are letters, digits and underscores",
            truncate(name)
        )));
    }
    let mut params = request_params(&state, &method, &uri, &headers, body).await?;
    let caller = authenticate(
        presented_token(&headers, &params)?,
        &state.admin,
        &state.workspace_id,
        now(),
    )?;
    let pipe = state
        .pipes
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("pipe {name} not found")))?;
    let fixed = caller.pipe_access(&pipe.name, &pipe.id)?;
    if params.contains("q") {
        return Err(match caller {
            Caller::Jwt(_) => ApiError::forbidden(
                "the `q` parameter (SQL over the pipe) is not allowed with a JWT",
            ),
            Caller::Admin => {
                ApiError::bad_request("the `q` parameter is not supported by the local endpoint")
            }
        });
    }
    let rate = state.limiter.enforce(&caller)?;
    // Fixed params always win over anything the request sent under the same name.
    params.apply_fixed(&fixed);
    let quote_64bit = params.first("output_format_json_quote_64bit_integers") != Some("0");
    let sql = pipe.prepare(&params, &state.db.translator).map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.to_string())
    })?;
    let conn = state.db.acquire().await;
    let limits = state.query_limits;
    let out = tokio::task::spawn_blocking(move || query::run_prepared(&conn, &sql, limits))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "query task failed"))?
        .map_err(|e| match e {
            QueryError::Timeout(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, e.to_string()),
            QueryError::TooManyRows(_) => ApiError::bad_request(e.to_string()),
            QueryError::Sql(err) => {
                tracing::warn!(pipe = %pipe.name, error = %err, "pipe query failed");
                ApiError::bad_request(format!("pipe {} failed to run: {err}", pipe.name))
            }
        })?;
    let mut response = (
        [(header::CONTENT_TYPE, format.content_type())],
        format::render(&out, format, quote_64bit),
    )
        .into_response();
    if let Some(d) = rate {
        d.apply(response.headers_mut());
    }
    Ok(response)
}

/// Query parameters, plus the form body of a `POST` (bounded, strictly UTF-8).
async fn request_params(
    state: &LocalState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Params, ApiError> {
    let mut params = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if method == Method::POST {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let bytes = read_body(body, state.max_body).await?;
        if !bytes.is_empty() {
            if !content_type.starts_with("application/x-www-form-urlencoded") {
                return Err(ApiError::bad_request(
                    "POST body must be application/x-www-form-urlencoded (pipe parameters as a form)",
                ));
            }
            params.extend(
                Params::parse_bytes(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?,
            );
        }
    }
    Ok(params)
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    })
}

fn unsupported_format(ext: &str) -> ApiError {
    let hint = if format::KNOWN_UNSUPPORTED.contains(&ext) {
        " by the local endpoint"
    } else {
        ""
    };
    ApiError::bad_request(format!(
        "format {:?} is not supported{hint}: use .json, .csv or .ndjson",
        truncate(ext)
    ))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Body of `POST /v0/tokens/`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    name: String,
    scopes: Vec<Scope>,
    #[serde(default)]
    limits: Option<Limits>,
}

/// `POST /v0/tokens/?expiration_time=<unix>`: what the SDKs' `createJWT` calls.
pub async fn create_token(
    State(state): State<Arc<LocalState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = presented_token(&headers, &params)?;
    if !matches!(
        authenticate(token, &state.admin, &state.workspace_id, now())?,
        Caller::Admin
    ) {
        return Err(ApiError::forbidden(
            "creating tokens needs the workspace admin token, not a JWT",
        ));
    }
    let exp = params
        .first("expiration_time")
        .ok_or_else(|| ApiError::bad_request("missing expiration_time (Unix seconds) for a JWT"))?;
    let exp: i64 = exp
        .parse()
        .map_err(|_| ApiError::bad_request("expiration_time must be integer Unix seconds"))?;
    if exp <= now() {
        return Err(ApiError::bad_request("expiration_time is in the past"));
    }
    let bytes = read_body(body, state.max_body).await?;
    let request: TokenRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid token request body: {e}")))?;
    if request.name.trim().is_empty() {
        return Err(ApiError::bad_request("token name must not be empty"));
    }
    let claims = Claims {
        workspace_id: state.workspace_id.clone(),
        name: request.name,
        exp,
        iat: Some(now()),
        scopes: request.scopes,
        limits: request.limits,
    };
    let jwt = sign(&claims, state.admin.secret());
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({ "token": jwt })),
    )
        .into_response())
}

/// Any other method on a route that reads (pipes, SQL).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here: use GET or POST"),
    )
}

/// Any other method on the Token API.
pub async fn post_only(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here: create tokens with POST"),
    )
}

/// Any unknown path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", truncate(uri.path())))
}
