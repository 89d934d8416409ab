//! Health: `/healthz` (the process answers) and `/readyz` (it can do its job), plus the
//! admin listener that serves them with `/metrics`.
//!
//! `/readyz` checks what a request needs: the signing key (loaded at start, so always ok
//! once running), the session store, Redis, and, for a remote Tinybird, that its host
//! answers at all (a `HEAD /` with a short timeout; any HTTP status counts as reachable).
//! The upstream result is kept for a few seconds so a load balancer polling every second
//! does not turn into a stream of requests to Tinybird. Redis is pinged on every call: it is
//! cheap and must reflect an outage at once. Both routes sit outside auth and rate limits.
//! Failure details go to the log, not the (unauthenticated) response.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::Url;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::config::{SessionStoreKind, Settings, TinybirdHost};

/// How long the upstream check may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an upstream check result is reused.
pub const UPSTREAM_CACHE: Duration = Duration::from_secs(5);

/// Readiness checks; one per [`App`](crate::app::App).
pub struct Health {
    /// The remote Tinybird host to probe (`None` with the embedded endpoint).
    upstream: Option<Url>,
    client: reqwest::Client,
    /// The last upstream result and when it was taken.
    last_upstream: Mutex<Option<(Instant, bool)>>,
    /// The file session store's directory, which must stay a directory.
    session_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("upstream", &self.upstream.as_ref().map(Url::as_str))
            .finish()
    }
}

impl Health {
    /// Checks for these settings.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let upstream = match &settings.host {
            TinybirdHost::Remote(url) => Some(url.clone()),
            TinybirdHost::Local(_) => None,
        };
        let session_dir = match &settings.session_store {
            SessionStoreKind::File(dir) => Some(dir.clone()),
            _ => None,
        };
        let client = reqwest::Client::builder()
            .timeout(UPSTREAM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            upstream,
            client,
            last_upstream: Mutex::new(None),
            session_dir,
        })
    }

    /// Whether the upstream host answers (reused for [`UPSTREAM_CACHE`]).
    async fn upstream_ok(&self, url: &Url) -> bool {
        let cached = *self
            .last_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, ok)) = cached {
            if at.elapsed() < UPSTREAM_CACHE {
                return ok;
            }
        }
        let ok = match self.client.head(url.clone()).send().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(upstream = %url, error = %e, "readiness: Tinybird host unreachable");
                false
            }
        };
        *self
            .last_upstream
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), ok));
        ok
    }
}

fn check(ok: bool, detail: &str) -> Value {
    json!({ "ok": ok, "detail": detail })
}

/// `GET /readyz`: 200 when every check passes, else 503; the body lists each check.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = &state.health;
    let mut checks = Map::new();
    checks.insert("signing_key".into(), check(true, "loaded"));
    if let Some(redis) = &state.redis {
        let ok = redis.ping().await.is_ok();
        checks.insert(
            "redis".into(),
            check(ok, if ok { "reachable" } else { "unreachable" }),
        );
    }
    let session = match (&state.settings.session_store, &health.session_dir) {
        (SessionStoreKind::Redis, _) => {
            let ok = checks["redis"]["ok"] == true;
            check(ok, if ok { "redis" } else { "redis unreachable" })
        }
        (_, Some(dir)) => {
            let ok = dir.is_dir();
            if !ok {
                tracing::warn!(dir = %dir.display(), "readiness: session directory missing");
            }
            check(
                ok,
                if ok {
                    "file"
                } else {
                    "session directory missing"
                },
            )
        }
        _ => check(true, "memory"),
    };
    checks.insert("session_store".into(), session);
    if let Some(url) = &health.upstream {
        let ok = health.upstream_ok(url).await;
        checks.insert(
            "upstream".into(),
            check(ok, if ok { "reachable" } else { "unreachable" }),
        );
    }
    let ready = checks.values().all(|c| c["ok"] == true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "checks": checks });
    (status, Json(body)).into_response()
}

/// The admin listener's routes: `/metrics`, `/healthz`, `/readyz`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::scrape))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves [`admin_router`] until `shutdown` resolves.
pub async fn serve_admin(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, admin_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
