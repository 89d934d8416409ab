//! From a request's SQL to its rows, within one deadline: translation (cached, or on a
//! translation thread, see [`super::offload`]), a pooled connection (waited for until the
//! deadline, never longer), and the query itself on a blocking thread with the query's
//! budget ([`super::budget`]). The pipe and `/v0/sql` handlers share it, so neither can hold
//! an async worker or wait without bound.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;

use super::LocalState;
use super::clickhouse::{TranslateError, TranslateLimits, Translated};
use super::data::PooledConnection;
use super::error::ApiError;
use super::offload::OffloadError;
use super::pipes::{PipeError, Prepared, RenderedPipe};
use super::query::QueryError;

/// The deadline of a request that started at `started`.
pub fn deadline(state: &LocalState, started: Instant) -> Instant {
    started + state.query_limits.timeout
}

fn limits(state: &LocalState, deadline: Instant) -> TranslateLimits {
    TranslateLimits {
        deadline: Some(deadline),
        ..state.translate_limits
    }
}

/// The 408 Tinybird answers a query past its time limit with.
pub fn timeout(state: &LocalState) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        QueryError::Timeout(state.query_limits.timeout).to_string(),
    )
}

fn offload_error(state: &LocalState, e: OffloadError) -> ApiError {
    match e {
        OffloadError::Timeout => timeout(state),
        OffloadError::Spawn(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        OffloadError::Panicked => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Translates a `/v0/sql` query.
pub async fn translate_query(
    state: &LocalState,
    sql: &str,
    deadline: Instant,
) -> Result<Result<Arc<Translated>, TranslateError>, ApiError> {
    if let Some(hit) = state.db.translator.cached_query(sql) {
        return Ok(hit);
    }
    let db = Arc::clone(&state.db);
    let (sql, limits) = (sql.to_owned(), limits(state, deadline));
    state
        .offload
        .run(deadline, move || db.translator.query_within(&sql, &limits))
        .await
        .map_err(|e| offload_error(state, e))
}

/// Translates a rendered pipe call.
pub async fn translate_pipe(
    state: &LocalState,
    rendered: RenderedPipe,
    deadline: Instant,
) -> Result<Result<Prepared, PipeError>, ApiError> {
    if let Some(hit) = rendered.cached(&state.db.translator) {
        return Ok(hit);
    }
    let db = Arc::clone(&state.db);
    let limits = limits(state, deadline);
    state
        .offload
        .run(deadline, move || {
            rendered.translate(&db.translator, &limits)
        })
        .await
        .map_err(|e| offload_error(state, e))
}

/// A pooled connection, waited for until the deadline (four slow queries must not queue
/// every other request forever).
pub async fn connection(
    state: &LocalState,
    deadline: Instant,
) -> Result<PooledConnection, ApiError> {
    tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), state.db.acquire())
        .await
        .map_err(|_| timeout(state))
}

/// Runs blocking `work` (a query on a pooled connection) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "query task failed"))
}
