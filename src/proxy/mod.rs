//! Proxy mode: `GET`/`POST /api/pipes/{pipe}.{format}` on the BFF, with the session cookie,
//! answered by calling Tinybird server-side. No token ever reaches the browser.
//!
//! It takes the same parameters as Tinybird's `/v0/pipes/{pipe}.{format}`, so a client
//! switches between the direct path (a JWT from `/api/token`) and this one by changing only
//! the base URL. The same grants decide: no grant for the pipe is a 403 before any upstream
//! call, and the user's fixed params overwrite what the client sent (see [`rewrite`]). By
//! default Tinybird is called with a JWT minted for the user ([`credentials`]), so Tinybird
//! enforces the row filter too and counts rate limits and usage per user.
//!
//! Layout, in request order:
//! - [`config`]: `[proxy]` keys and validation;
//! - [`rewrite`]: path and parameter checks (pure);
//! - [`credentials`]: the per-user upstream JWT cache;
//! - [`cache`]: the optional short response cache with single-flight;
//! - `crate::tinybird::upstream`: the pooled client, retries and backoff;
//! - [`respond`]: status, headers and a capped streamed body back to the client;
//! - [`sql`]: `/api/sql`, Tinybird's `/v0/sql` for users whose grants give data sources,
//!   always with the user's JWT (its `DATASOURCES:READ` filters are the row filter).
//!
//! See docs/proxy.md for the settings, the retry policy and the trade-offs against the direct
//! path.

pub mod cache;
pub mod config;
pub mod credentials;
pub mod respond;
pub mod rewrite;
pub mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use crate::app::{App, AppState};
use crate::auth::{CurrentUser, User};
use crate::error::AppError;
use crate::grants::{Access, PipeAccess};
use crate::params::Params;
use crate::tinybird::upstream::{Connection, PipeCall, Upstream};
use cache::{CacheKey, CacheStatus, ResponseCache};
pub use config::{CacheSettings, Credentials, ProxyConfig, ProxySettings, validate};
use credentials::{Bearer, Fresh, TokenCache};
use respond::{Attempts, ProxyError, respond};
use rewrite::Target;

/// Longest query string accepted; clients switch to a form `POST` well before (4-8 KB).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Largest form body accepted on `POST`.
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The proxy's shared state: upstream client, token cache, response cache.
pub struct Proxy {
    /// The pooled client with retries (one per process, so connections are reused).
    upstream: Upstream,
    /// JWT per user, or one static token.
    credentials: Credentials,
    /// The static token with its redactor (`None` with JWT credentials).
    static_bearer: Option<Arc<Bearer>>,
    /// The workspace admin token: redacted from every answer too, whichever credential went.
    signing_key: SecretString,
    /// Upstream JWTs per user (unused with static credentials).
    tokens: TokenCache,
    /// Answers of the pipes named in `[proxy.cache]`.
    cache: ResponseCache,
    /// TTL per cached pipe.
    cache_ttls: BTreeMap<String, Duration>,
    /// Response size cap.
    max_response_bytes: u64,
}

/// One call to make upstream, owned so a cache flight can outlive the request.
struct Call {
    target: Target,
    params: Params,
    bearer: Arc<Bearer>,
    form: bool,
}

impl Proxy {
    /// Builds the upstream client for `tinybird_url`; `signing_key` is the admin token JWTs
    /// are signed with (never sent, but redacted from answers all the same).
    pub fn new(
        settings: &ProxySettings,
        tinybird_url: &str,
        signing_key: &SecretString,
    ) -> anyhow::Result<Self> {
        let connection = Connection {
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            max_in_flight: settings.max_connections,
        };
        let upstream = Upstream::new(tinybird_url, settings.retry, connection)
            .map_err(|e| anyhow::anyhow!("cannot build the proxy's HTTP client: {e}"))?;
        let static_bearer = match &settings.credentials {
            Credentials::Static(token) => {
                Some(Arc::new(Bearer::new(token.clone(), &[signing_key])))
            }
            Credentials::Jwt => None,
        };
        Ok(Proxy {
            upstream,
            credentials: settings.credentials.clone(),
            static_bearer,
            signing_key: signing_key.clone(),
            tokens: TokenCache::new(settings.token_cache_size),
            cache: ResponseCache::new(settings.cache.max_entries, settings.cache.max_entry_bytes),
            cache_ttls: settings.cache.pipes.clone(),
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// The credential to call Tinybird with for `user`: their cached JWT, or the static token.
    fn bearer(&self, app: &App, user: &User, access: &Access) -> Result<Arc<Bearer>, ProxyError> {
        let Some(bearer) = &self.static_bearer else {
            let now = chrono::Utc::now().timestamp();
            // The whole user is the key: grants (and so the token) depend on all of it.
            let key = serde_json::to_string(user).unwrap_or_else(|_| user.id.clone());
            return self.tokens.get_or_mint(&key, now, || {
                let minted = crate::tinybird::mint::mint(user, access, &app.mint_params(), now)
                    .map_err(|e| AppError::Forbidden(e.to_string()))?;
                Ok(Fresh {
                    iat: minted.claims.iat.unwrap_or(now),
                    exp: minted.claims.exp,
                    bearer: Bearer::new(SecretString::from(minted.token), &[&self.signing_key]),
                })
            });
        };
        Ok(Arc::clone(bearer))
    }

    /// Calls upstream and turns the outcome into the client's response.
    async fn fetch(&self, call: &Call) -> Response {
        let pipe_call = PipeCall {
            pipe: &call.target.pipe,
            format: &call.target.format,
            params: &call.params,
            bearer: &call.bearer.token,
            form: call.form,
        };
        let (outcome, attempts) = self.upstream.call(&pipe_call).await;
        let what = format!("pipe {}", call.target.pipe);
        let redactor = &call.bearer.redactor;
        let mut response = respond(outcome, self.max_response_bytes, &what, redactor)
            .unwrap_or_else(IntoResponse::into_response);
        response.extensions_mut().insert(Attempts(attempts));
        response
    }

    /// The cache TTL of a call's pipe, when it is cached and its format can be.
    fn cache_ttl(&self, target: &Target) -> Option<Duration> {
        let cacheable = rewrite::CACHEABLE_FORMATS.contains(&target.format.as_str());
        self.cache_ttls
            .get(&target.pipe)
            .copied()
            .filter(|_| cacheable)
    }
}

/// `GET`/`POST /api/pipes/{pipe}.{format}`: one log line per call, never the query or token.
pub async fn pipe(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    Path(file): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request = (&method, &uri, &headers);
    let (mut response, cache) = match handle(&state, user, &file, request, body).await {
        Ok(done) => done,
        Err(e) => (e.into_response(), None),
    };
    if let Some(status) = cache {
        let value = HeaderValue::from_static(status.as_str());
        response.headers_mut().insert("x-bff-cache", value);
    }
    let pipe = rewrite::parse_file(&file).map_or_else(|_| "-".to_owned(), |t| t.pipe);
    let attempts = response.extensions().get::<Attempts>().map_or(0, |a| a.0);
    let tenant = response
        .extensions()
        .get::<TenantLabel>()
        .and_then(|t| t.0.as_deref());
    let status = response.status().as_u16();
    state
        .metrics
        .proxy_request(tenant, &pipe, status, attempts, started.elapsed());
    tracing::info!(
        pipe = %pipe,
        status,
        attempts,
        cache = cache.map_or("-", CacheStatus::as_str),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proxied pipe call"
    );
    response
}

/// What to send, with which credential; then the call (through the cache or not).
async fn handle(
    state: &AppState,
    user: Result<CurrentUser, AppError>,
    file: &str,
    (method, uri, headers): (&Method, &Uri, &HeaderMap),
    body: Body,
) -> Result<(Response, Option<CacheStatus>), ProxyError> {
    let (user, target, access, pipe_access) = authorize(state, user, file, method, headers)?;
    let params = read_params(method, uri, headers, body).await?;
    let call = Call {
        params: rewrite::effective_params(params, &pipe_access)?,
        bearer: state.proxy.bearer(state, &user, &access)?,
        form: method == Method::POST,
        target,
    };
    let (mut response, status) = match state.proxy.cache_ttl(&call.target) {
        None => (state.proxy.fetch(&call).await, None),
        Some(ttl) => {
            let (response, status) = through_cache(state, &user, call, ttl).await?;
            (response, Some(status))
        }
    };
    response.extensions_mut().insert(TenantLabel(user.tenant));
    Ok((response, status))
}

/// The caller's tenant, carried on the response to the metrics in [`pipe`].
#[derive(Clone)]
struct TenantLabel(Option<String>);

/// Who and what: logged in, the CSRF check for a `POST`, a pipe that exists, a grant for it.
fn authorize(
    state: &AppState,
    user: Result<CurrentUser, AppError>,
    file: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(User, Target, Arc<Access>, PipeAccess), ProxyError> {
    // An `Authorization` header (an IdP bearer token) authenticates on its own and needs no
    // CSRF defence; otherwise it is the session cookie, and a POST must pass the CSRF check.
    let CurrentUser(user) = user?;
    if method == Method::POST && !headers.contains_key(axum::http::header::AUTHORIZATION) {
        crate::auth::csrf::check(headers, &state.settings.public_url)?;
    }
    let target = rewrite::parse_file(file)?;
    let known = state.settings.known_pipes.as_ref();
    if known.is_some_and(|pipes| !pipes.contains(&target.pipe)) {
        return Err(AppError::NotFound(format!("pipe {} not found", target.pipe)).into());
    }
    let access = state
        .settings
        .grants
        .evaluate_cached(&user)
        .map_err(|e| AppError::Forbidden(e.to_string()))?;
    let pipe_access = access.pipe(&target.pipe).cloned().ok_or_else(|| {
        AppError::Forbidden(format!(
            "no grant gives you pipe {}: ask an admin for one",
            target.pipe
        ))
    })?;
    Ok((user, target, access, pipe_access))
}

/// The call through the response cache, keyed by the JWT `name` as the identity.
async fn through_cache(
    state: &AppState,
    user: &User,
    call: Call,
    ttl: Duration,
) -> Result<(Response, CacheStatus), ProxyError> {
    let identity = state
        .settings
        .token_name
        .render(user)
        .map_err(|e| AppError::Forbidden(e.to_string()))?;
    let key = CacheKey::new(
        &call.target.pipe,
        &call.target.format,
        &call.params,
        &identity,
    );
    let (app, call) = (Arc::clone(state), Arc::new(call));
    let fetch = move || {
        let (app, call) = (Arc::clone(&app), Arc::clone(&call));
        async move { app.proxy.fetch(&call).await }
    };
    Ok(state.proxy.cache.get_or_fetch(key, ttl, fetch).await)
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
    let bad = |e: crate::params::ParamsError| ProxyError::App(AppError::BadRequest(e.to_string()));
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
