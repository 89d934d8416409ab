//! For operators: `/healthz` (the process answers) and `/readyz` (it can do its job) on the
//! app listener, and the admin listener that serves them with `/metrics`.
//!
//! `/readyz` renders `crate::health`'s report: 200 when every check passes, else 503; the body
//! lists each check. Both sit outside auth and rate limits; failure details go to the log, not
//! the (unauthenticated) response.

use std::future::Future;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, json};
use tokio::net::TcpListener;

use super::state::AppState;
use crate::metrics::Metrics;

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "operators",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "operators",
    responses((status = 200, description = "Ready: each check (Redis, the session store, Tinybird per workspace, the usage record) with its detail", body = Object),
        (status = 503, description = "Not ready: the same report, naming the failing check", body = Object)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let report = state.health.report(state.redis.as_ref()).await;
    let mut checks = Map::new();
    for (name, check) in &report.checks {
        checks.insert(
            (*name).to_owned(),
            json!({ "ok": check.ok, "detail": check.detail }),
        );
    }
    let ready = report.ready();
    // Reported, never counted against readiness: an unreadable usage record must not take
    // instances out of the load balancer (minting goes on; budgets fail open or closed).
    if let Some(usage) = &state.usage {
        let status = usage.status();
        let detail = match (&status.error, usage.stale()) {
            (Some(e), _) => e.clone(),
            (None, true) => "not read yet".to_owned(),
            (None, false) => "reading".to_owned(),
        };
        checks.insert(
            "usage".to_owned(),
            json!({ "ok": status.ok && !usage.stale(), "detail": detail, "required": false }),
        );
    }
    // Reported, not required either: without the key store only API-key requests fail (503),
    // browser users go on; when every instance shares the database, all would leave at once.
    if let Some(keys) = &state.keys {
        let ok = keys.ping().await.is_ok();
        let detail = if ok {
            keys.settings().store_kind()
        } else {
            "unreachable"
        };
        checks.insert(
            "key_store".to_owned(),
            json!({ "ok": ok, "detail": detail, "required": false }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    // Each workspace's key by fingerprint (never the key) and when it was loaded, so a
    // rotation can be seen to have reached every instance.
    let mut workspaces = Map::new();
    for w in state.snapshot().workspaces.iter() {
        let loaded_at = chrono::DateTime::from_timestamp(w.loaded_at, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        workspaces.insert(
            w.name.clone(),
            json!({ "key": w.fingerprint(), "loaded_at": loaded_at }),
        );
    }
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks,
        "workspaces": workspaces,
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics` on the admin listener: this instance's Prometheus (OpenMetrics) text.
pub async fn metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
}

/// The admin listener's routes: `/metrics`, `/healthz`, `/readyz`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves [`admin_router`] until `shutdown` resolves, within `limits` (see `tinybird_contract::serve`).
pub async fn serve_admin(
    state: AppState,
    listener: TcpListener,
    limits: tinybird_contract::serve::ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tinybird_contract::serve::serve(listener, admin_router(state), limits, shutdown).await
}
