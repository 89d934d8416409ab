//! Proxy mode: a Tinybird-compatible pass-through that never exposes a token (being built).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use crate::app::AppState;
use crate::config::{EnvLookup, Problem};
use crate::error::AppError;

/// `[proxy]` as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {}

/// Validated proxy settings (secrets included).
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {}

/// Validates `[proxy]`; every problem names its key (`proxy.<key>`) and the fix.
pub fn validate(_raw: &ProxyConfig, _env: EnvLookup<'_>) -> Result<ProxySettings, Vec<Problem>> {
    Ok(ProxySettings {})
}

/// The proxy's shared state: upstream client, token cache.
pub struct Proxy {}

impl Proxy {
    /// Builds the upstream client for `tinybird_url`.
    pub fn new(_settings: &ProxySettings, _tinybird_url: &str) -> anyhow::Result<Self> {
        Ok(Proxy {})
    }
}

/// `GET`/`POST /api/pipes/{pipe}.{format}`.
pub async fn pipe(
    State(_state): State<AppState>,
    _session: Session,
    Path(_file): Path<String>,
    _method: Method,
    _uri: Uri,
    _headers: HeaderMap,
    _body: Body,
) -> Result<Response, AppError> {
    Err(AppError::NotFound("proxy mode is not built yet".into()))
}
