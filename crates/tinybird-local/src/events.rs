//! The Events API, `POST /v0/events?name=<datasource>[&wait=true]`: NDJSON rows appended to a
//! data source of the project, as Tinybird answers it (docs/tinybird.md, "Events API").
//!
//! In Tinybird's order: the token (403), `name` (400 when missing, 404 for a data source the
//! project does not declare), the token's `DATASOURCES:APPEND` scope for it (403), the body
//! (413 past `--max-events-body`, Tinybird's per-request limit), then the rows: each read
//! through the schema's JSONPaths and `DEFAULT`s, those that do not fit quarantined (see
//! `project::ingest`). The answer is `{"successful_rows", "quarantined_rows"}`: 200 with
//! `wait=true` (written and acknowledged), else 202. The local endpoint writes before it
//! answers either way, so a read right after a 202 already sees the rows.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::LocalState;
use super::auth::{authenticate, presented_token};
use super::error::{Api, ApiError};
use tinybird_contract::params::Params;

/// The default of `--max-events-body`: Tinybird's per-request limit on its Free plan.
pub const DEFAULT_MAX_EVENTS_BODY: usize = 10 << 20;

/// What is wrong with `--max-events-body bytes`, if anything.
pub fn max_body_problem(bytes: usize) -> Option<String> {
    (bytes < 1024).then(|| {
        format!(
            "--max-events-body {bytes} is too small: use at least 1024 (a few events), e.g. 10MiB"
        )
    })
}

/// `POST /v0/events`.
pub async fn events(
    State(state): State<Arc<LocalState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match append(&state, &uri, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.for_api(Api::Events).into_response(),
    }
}

async fn append(
    state: &Arc<LocalState>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let caller = authenticate(
        presented_token(&params, headers),
        &state.keys(),
        chrono::Utc::now().timestamp(),
    )?;
    let name = params
        .first("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing the name parameter: POST /v0/events?name=<data source>")
        })?;
    if state.db.datasource(name).is_none() {
        return Err(ApiError::not_found(format!(
            "data source {} not found: the local endpoint appends to the data sources its project declares",
            name.chars().take(64).collect::<String>()
        )));
    }
    caller.append_access(name)?;
    let limit = state.max_events_body;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes (--max-events-body): split it into several requests"),
        )
    })?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("the body must be NDJSON in UTF-8"))?;
    let wait = matches!(params.first("wait"), Some("true" | "1"));
    let (db, name, limits) = (Arc::clone(&state.db), name.to_owned(), state.query_limits);
    let done = tokio::task::spawn_blocking(move || db.append(&name, &text, limits))
        .await
        .map_err(|_| internal(String::new()))?
        .map_err(internal)?;
    let status = if wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(done)).into_response())
}

/// The append failed as a whole (a materialization's query, say): nothing was written. The
/// reason names project objects and SQL, never secrets, and is what a developer must fix.
fn internal(why: String) -> ApiError {
    tracing::error!("events append failed: {why}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the append failed and no rows were written: {why}"),
    )
}

/// Any other method on the Events API.
pub async fn post_only(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here: send events with POST"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_limit_refuses_nonsense_and_keeps_tinybirds_default() {
        assert_eq!(max_body_problem(DEFAULT_MAX_EVENTS_BODY), None);
        assert_eq!(DEFAULT_MAX_EVENTS_BODY, 10 * 1024 * 1024);
        assert!(
            max_body_problem(10)
                .unwrap()
                .contains("--max-events-body 10")
        );
    }
}
