//! Proxy mode: `GET`/`POST /api/pipes/{pipe}.{format}` on the BFF, with the session cookie,
//! answered by calling Tinybird server-side. No token ever reaches the browser. This is the
//! service; its routes are `crate::http::pipes` and `crate::http::sql`.
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
//! - [`sql`]: the parameters of `/api/sql`, Tinybird's `/v0/sql` for users whose grants give
//!   data sources, always with the user's JWT (its `DATASOURCES:READ` filters are the row
//!   filter).
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
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use secrecy::SecretString;

use crate::error::Relayed;
use crate::grants::Access;
use crate::tinybird::mint::{MintParams, TokenPlan};
use crate::tinybird::params::Params;
use crate::tinybird::upstream::{Connection, PipeCall, Upstream};
use crate::tinybird::workspaces::Workspace;
use cache::{CacheKey, CacheStatus, ResponseCache};
pub use config::{CacheSettings, Credentials, ProxyConfig, ProxySettings, validate};
pub use credentials::Bearer;
use credentials::{Fresh, TokenCache};
use respond::respond;
pub use respond::{Attempts, ProxyError};
use rewrite::Target;

/// Longest query string accepted; clients switch to a form `POST` well before (4-8 KB).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Largest form body accepted on `POST`.
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The proxy's shared state: upstream clients, token cache, response cache.
pub struct Proxy {
    /// A pooled client with retries per workspace, by name (one per process, so connections
    /// are reused; a workspace's calls never go to another's host).
    upstreams: BTreeMap<String, Upstream>,
    /// The static token with its redactor (`None` with JWT credentials; one workspace only).
    static_bearer: Option<Arc<Bearer>>,
    /// Upstream JWTs per workspace, key and user (unused with static credentials).
    tokens: TokenCache,
    /// Answers of the pipes named in `[proxy.cache]`.
    cache: ResponseCache,
    /// TTL per cached pipe.
    cache_ttls: BTreeMap<String, Duration>,
    /// Response size cap.
    max_response_bytes: u64,
}

/// The key of a cached upstream JWT: everything the token says but its times (the
/// workspace and its key, the name, the scopes through the access fingerprint, the lifetime
/// and `limits.rps`), so a token is never reused for another caller, after a reload changes
/// their access, plan or key, or near a budget where tokens are shorter and slower.
pub fn token_key(workspace: &Workspace, access: &Access, plan: &TokenPlan) -> String {
    format!(
        "{}|{}|{}|{}|{}|{:?}",
        workspace.name,
        workspace.fingerprint(),
        plan.name,
        access.fingerprint(),
        plan.ttl.as_secs(),
        plan.rps
    )
}

/// One call to make upstream, owned so a cache flight can outlive the request.
pub struct Call {
    /// The pipe and format.
    pub target: Target,
    /// The effective parameters (fixed params applied, `token` removed).
    pub params: Params,
    /// The credential, with its redactor.
    pub bearer: Arc<Bearer>,
    /// The workspace called (its host, with its pooled client).
    pub workspace: Arc<Workspace>,
    /// Send the parameters as a form `POST`.
    pub form: bool,
}

impl Proxy {
    /// Builds an upstream client per workspace (`(name, base URL)`); `signing_key` is the
    /// admin token static credentials are redacted with (the workspace's, never sent).
    pub fn new(
        settings: &ProxySettings,
        workspaces: &[(String, String)],
        signing_key: &SecretString,
    ) -> anyhow::Result<Self> {
        let connection = Connection {
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            max_in_flight: settings.max_connections,
        };
        let mut upstreams = BTreeMap::new();
        for (name, url) in workspaces {
            let upstream = Upstream::new(url, settings.retry, connection)
                .map_err(|e| anyhow::anyhow!("cannot build the proxy's HTTP client: {e}"))?;
            upstreams.insert(name.clone(), upstream);
        }
        let static_bearer = match &settings.credentials {
            Credentials::Static(token) => {
                Some(Arc::new(Bearer::new(token.clone(), &[signing_key])))
            }
            Credentials::Jwt => None,
        };
        Ok(Proxy {
            upstreams,
            static_bearer,
            tokens: TokenCache::new(settings.token_cache_size),
            cache: ResponseCache::new(settings.cache.max_entries, settings.cache.max_entry_bytes),
            cache_ttls: settings.cache.pipes.clone(),
            max_response_bytes: settings.max_response_bytes,
        })
    }

    /// Whether the proxy calls Tinybird with one static token (then `/api/sql` is off).
    pub fn is_static(&self) -> bool {
        self.static_bearer.is_some()
    }

    /// The credential to call `workspace` with: the caller's cached JWT for `access` (minted
    /// with `mint` when none is kept under [`token_key`] or it is due), or the static token.
    pub fn bearer(
        &self,
        access: &Access,
        workspace: &Workspace,
        mint: &MintParams<'_>,
    ) -> Result<Arc<Bearer>, ProxyError> {
        let Some(bearer) = &self.static_bearer else {
            let now = chrono::Utc::now().timestamp();
            let signing_key = workspace.signing_key.secret();
            let key = token_key(workspace, access, mint.plan);
            return self.tokens.get_or_mint::<ProxyError>(&key, now, || {
                let minted = crate::tinybird::mint::mint(access, mint, now);
                Ok(Fresh {
                    iat: minted.claims.iat.unwrap_or(now),
                    exp: minted.claims.exp,
                    bearer: Bearer::new(SecretString::from(minted.token), &[signing_key]),
                })
            });
        };
        Ok(Arc::clone(bearer))
    }

    /// Forgets every cached upstream JWT (a signing key changed: they would all be 403s).
    pub fn drop_tokens(&self) {
        self.tokens.clear();
    }

    fn upstream(&self, workspace: &Workspace) -> &Upstream {
        // Built from the same workspaces at start; a reload cannot add one (see run.rs).
        self.upstreams
            .get(&workspace.name)
            .expect("every workspace has its upstream client")
    }

    /// Calls upstream and turns the outcome into the client's response (marked [`Relayed`],
    /// with its [`Attempts`]).
    pub async fn fetch(&self, call: &Call) -> Response {
        let pipe_call = PipeCall {
            pipe: &call.target.pipe,
            format: &call.target.format,
            params: &call.params,
            bearer: &call.bearer.token,
            form: call.form,
        };
        let (outcome, attempts) = self.upstream(&call.workspace).call(&pipe_call).await;
        let what = format!("pipe {}", call.target.pipe);
        let redactor = &call.bearer.redactor;
        let mut response = respond(outcome, self.max_response_bytes, &what, redactor)
            .unwrap_or_else(IntoResponse::into_response);
        response.extensions_mut().insert(Attempts(attempts));
        response.extensions_mut().insert(Relayed);
        response
    }

    /// The call through the response cache, keyed by `identity` (the workspace and JWT `name`): kept for
    /// `ttl`, and shared by identical calls in flight.
    pub async fn fetch_cached(
        self: &Arc<Self>,
        call: Call,
        identity: &str,
        ttl: Duration,
    ) -> (Response, CacheStatus) {
        let key = CacheKey::new(
            &call.target.pipe,
            &call.target.format,
            &call.params,
            identity,
        );
        let (proxy, call) = (Arc::clone(self), Arc::new(call));
        let fetch = move || {
            let (proxy, call) = (Arc::clone(&proxy), Arc::clone(&call));
            async move { proxy.fetch(&call).await }
        };
        self.cache.get_or_fetch(key, ttl, fetch).await
    }

    /// `{tinybird}/v0/sql` with `params` (`q` among them) and `bearer`, answered like a pipe
    /// call (retries, deadline, redaction, streamed capped body).
    pub async fn sql(
        &self,
        workspace: &Workspace,
        params: &Params,
        bearer: &Bearer,
        form: bool,
    ) -> Response {
        let (outcome, attempts) = self
            .upstream(workspace)
            .sql(params, &bearer.token, form)
            .await;
        let mut response = respond(outcome, self.max_response_bytes, "SQL", &bearer.redactor)
            .unwrap_or_else(IntoResponse::into_response);
        response.extensions_mut().insert(Attempts(attempts));
        response.extensions_mut().insert(Relayed);
        response
    }

    /// The cache TTL of a call's pipe, when it is cached and its format can be.
    pub fn cache_ttl(&self, target: &Target) -> Option<Duration> {
        let cacheable = rewrite::CACHEABLE_FORMATS.contains(&target.format.as_str());
        self.cache_ttls
            .get(&target.pipe)
            .copied()
            .filter(|_| cacheable)
    }
}
