//! The local endpoint's HTTP handlers: pipe calls and the Token API subset.
//!
//! A pipe call, in Tinybird's order: the path (404, 400 for a format), the parameters (query
//! string, plus a form or JSON object body on `POST`), the token (403), the pipe (404) and
//! the token's scope for it (403), `limits.rps` (429), then the query with the token's fixed
//! params winning over anything sent. Every call, whatever it answers, is a row of
//! `tinybird.pipe_stats_rt`, and a counted call's `X-RateLimit-*` headers go on its answer.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::LocalState;
use super::auth::{Caller, authenticate, presented_token};
use super::error::{Api, ApiError};
use super::execute;
use super::format::{self, Format};
use super::headers::RequestId;
use super::pipes::PipeError;
use super::query::{self, QueryError};
use super::ratelimit::RateHeaders;
use super::stats::Row;
use tinybird_contract::claims::{Claims, Limits, Scope, sign};
use tinybird_contract::names::is_valid_pipe_name;
use tinybird_contract::params::Params;

/// What a request learnt about itself on the way, for its stats row and headers.
pub struct Trace {
    /// Its `pipe_stats_rt` row.
    pub row: Row,
    /// Its `X-RateLimit-*` headers, once counted.
    pub rate: Option<RateHeaders>,
    /// Whether its token verified: only then is the row recorded (see `stats`).
    pub authenticated: bool,
}

impl Trace {
    /// A trace for the request `id` to `path`, parameters not read yet.
    pub fn new(state: &LocalState, id: &str, path: &str) -> Self {
        Self {
            row: state.stats.row(id, path, &Params::default()),
            rate: None,
            authenticated: false,
        }
    }

    /// Finishes the answer: rate headers on, the row recorded if the caller was known.
    pub fn finish(self, state: &LocalState, mut response: Response, started: Instant) -> Response {
        if let Some(rate) = self.rate {
            rate.apply(response.headers_mut());
        }
        if self.authenticated {
            let status = response.status().as_u16();
            state.stats.record(&self.row, status, started.elapsed());
        }
        response
    }
}

/// `GET`/`POST /v0/pipes/{pipe}.{format}`.
pub async fn pipe(
    State(state): State<Arc<LocalState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    file: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut trace = Trace::new(&state, &id, uri.path());
    let request = (&method, &uri, &headers);
    let response = match run_pipe(&state, &mut trace, (file, started), request, body).await {
        Ok(response) => response,
        Err(e) => e.for_api(Api::Pipes).into_response(),
    };
    trace.finish(&state, response, started)
}

async fn run_pipe(
    state: &LocalState,
    trace: &mut Trace,
    (file, started): (Result<Path<String>, PathRejection>, Instant),
    (method, uri, headers): (&Method, &Uri, &HeaderMap),
    body: Body,
) -> Result<Response, ApiError> {
    let Path(file) = file.map_err(|_| {
        ApiError::not_found("pipe not found: the pipe name in the path is not valid UTF-8")
    })?;
    let (name, ext) = file.rsplit_once('.').unwrap_or((file.as_str(), "json"));
    trace.row.pipe_name = truncate(name);
    let format = Format::from_extension(ext).ok_or_else(|| unsupported_format(ext))?;
    if !is_valid_pipe_name(name) {
        return Err(ApiError::not_found(format!(
            "pipe {:?} not found: pipe names are letters, digits and underscores",
            truncate(name)
        )));
    }
    let (arguments, json) = request_params(state, method, uri, headers, body).await?;
    // Tinybird reads `token` from the query string or a form, never from a JSON body.
    let token = presented_token(&arguments, headers);
    let mut params = arguments.clone();
    params.extend(json);
    let caller = authenticate(token, &state.keys(), now())?;
    trace.row = state.stats.row(&trace.row.request_id, uri.path(), &params);
    trace.row.pipe_name = name.to_owned();
    (trace.row.token, trace.row.token_name) = caller.stats_identity();
    trace.authenticated = true;
    let pipe = state
        .pipes
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("pipe {name} not found")))?;
    (trace.row.pipe_id, trace.row.pipe_name) = (pipe.id.clone(), pipe.name.clone());
    let fixed = caller.pipe_access(&pipe.name, &pipe.id)?;
    if params.contains("q") {
        return Err(match caller {
            Caller::Jwt(_) => ApiError::forbidden(
                "the `q` parameter (SQL over the pipe) is not allowed with a JWT",
            ),
            _ => ApiError::bad_request("the `q` parameter is not supported by the local endpoint"),
        });
    }
    // Tinybird keys the bucket on the pipe as the URL names it (name or id).
    trace.rate = match state.limiter.enforce(&caller, &state.workspace_id, name) {
        Ok(rate) => rate,
        Err((refusal, rate)) => {
            trace.rate = Some(rate);
            return Err(refusal);
        }
    };
    // Fixed params always win over anything the request sent under the same name.
    params.apply_fixed(&fixed);
    let quote_64bit = params.first("output_format_json_quote_64bit_integers") != Some("0");
    let pipe_error = |e: PipeError| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.to_string())
    };
    let deadline = execute::deadline(state, started);
    let rendered = pipe.render(&params).map_err(pipe_error)?;
    let sql = execute::translate_pipe(state, rendered, deadline)
        .await?
        .map_err(pipe_error)?;
    let conn = execute::connection(state, deadline).await?;
    let limits = state.query_limits;
    let pipe_name = pipe.name.clone();
    let out = execute::blocking(move || query::run_prepared_until(&conn, &sql, limits, deadline))
        .await?
        .map_err(|e| match e {
            QueryError::Timeout(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, e.to_string()),
            QueryError::Sql(err) => {
                tracing::warn!(pipe = %pipe_name, error = %err, "pipe query failed");
                ApiError::bad_request(format!("pipe {pipe_name} failed to run: {err}"))
            }
            other => ApiError::bad_request(other.to_string()),
        })?;
    trace.row.read_rows = out.rows_read;
    trace.row.read_bytes = out.bytes_read;
    trace.row.result_rows = out.rows.len() as u64;
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        format::render(&out, format, quote_64bit),
    )
        .into_response())
}

/// Query parameters plus a form body (Tinybird's "arguments"), and a JSON object body's
/// parameters (Tinybird also takes those). Bounded, strictly UTF-8.
async fn request_params(
    state: &LocalState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Params, Params), ApiError> {
    let mut arguments = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if method != Method::POST {
        return Ok((arguments, Params::default()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bytes = read_body(body, state.max_body).await?;
    if bytes.is_empty() {
        return Ok((arguments, Params::default()));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let form = Params::parse_bytes(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
        arguments.extend(form);
        Ok((arguments, Params::default()))
    } else if content_type.starts_with("application/json") {
        Ok((arguments, json_params(&bytes)?))
    } else {
        Err(ApiError::bad_request(
            "POST body must be a form (application/x-www-form-urlencoded) or a JSON object of parameters (application/json)",
        ))
    }
}

/// A JSON object body as parameters: strings as they are, numbers and booleans as their JSON
/// text, arrays as repeated values, `null` as absent; nested objects are refused.
pub fn json_params(bytes: &[u8]) -> Result<Params, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(object) = value else {
        return Err(ApiError::bad_request(
            "the JSON body must be an object of parameters, e.g. {\"limit\": 10}",
        ));
    };
    let mut params = Params::default();
    for (name, value) in object {
        let values = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for value in values {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(text) => params.push(name.clone(), text),
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    return Err(ApiError::bad_request(format!(
                        "parameter {name}: nested objects and arrays are not supported; send strings, numbers, booleans or an array of them"
                    )));
                }
                other => params.push(name.clone(), other.to_string()),
            }
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
    create_token_inner(&state, &uri, &headers, body)
        .await
        .map_err(|e| e.for_api(Api::Tokens))
}

async fn create_token_inner(
    state: &LocalState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let token = presented_token(&params, headers);
    if !matches!(authenticate(token, &state.keys(), now())?, Caller::Admin) {
        return Err(ApiError::forbidden("token needs scope admin"));
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
    // Tinybird's Token API JWTs carry no `iat`.
    let claims = Claims {
        workspace_id: state.workspace_id.clone(),
        name: request.name,
        exp,
        iat: None,
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
