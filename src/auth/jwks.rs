//! An identity provider's signing keys (its JWKS), cached by `kid`.
//!
//! Why a cache with rules rather than a fetch per token: tokens arrive on every request, keys
//! change rarely. The rules:
//! - a token whose `kid` is not cached triggers one refetch, so a provider's key rotation works
//!   without a restart; but at most one fetch starts per cool-down (and concurrent callers wait
//!   for it rather than fetching again), so a flood of tokens with bogus `kid`s cannot make us
//!   hammer the provider;
//! - keys older than `max_age` are refetched too, so a key the provider withdrew stops working;
//! - a failed fetch keeps the last good keys, is logged, and shows in [`JwksCache::health`]
//!   for readiness checks.
//!
//! Only asymmetric keys are kept: a shared-secret (`oct`) key in a JWKS would let anyone who
//! can read the JWKS sign tokens, and encryption keys (`use: enc`) never verify signatures.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;
use serde::Serialize;

/// Largest JWKS or discovery document accepted (real ones are a few KB).
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// No cached key has this `kid`, and refetching (now or within the cool-down) did not help.
    #[error(
        "no signing key {kid:?} in the provider's JWKS (checked {url}); the token was not signed by this provider"
    )]
    UnknownKey {
        /// The token's `kid` (`None` when it had none).
        kid: Option<String>,
        /// Where the keys come from.
        url: String,
    },
    /// There are no keys at all: the provider's JWKS could not be fetched.
    #[error("the provider's signing keys are unavailable ({0}); try again shortly")]
    Unavailable(String),
}

/// One verification key, ready to use.
#[derive(Debug)]
pub struct VerificationKey {
    /// The JWK `kid`.
    pub kid: Option<String>,
    /// Algorithms this key may verify (from its `alg`, or its type and curve).
    pub algorithms: Vec<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

/// How fresh the keys are, for readiness checks and operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksStatus {
    /// Nothing fetched yet (keys load on first use).
    NotLoaded,
    /// The last fetch worked.
    Ok,
    /// The last fetch failed; the last good keys are still used.
    Stale,
    /// The last fetch failed and there are no keys: tokens cannot be verified.
    Down,
}

/// Health of one JWKS cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwksHealth {
    /// Summary for readiness.
    pub status: JwksStatus,
    /// The JWKS URL, once known.
    pub url: Option<String>,
    /// Keys cached.
    pub keys: usize,
    /// Fetches attempted since start.
    pub fetches: u64,
    /// Unix seconds of the last successful fetch.
    pub last_success: Option<i64>,
    /// The last fetch's error, if it failed.
    pub last_error: Option<String>,
}

/// Mutable part, behind a short-lived lock (never held across an await).
#[derive(Default)]
struct KeyState {
    url: Option<Url>,
    keys: Vec<Arc<VerificationKey>>,
    last_attempt: Option<Instant>,
    loaded_at: Option<Instant>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    fetches: u64,
}

/// A provider's keys; share it behind an `Arc`.
pub struct JwksCache {
    http: reqwest::Client,
    /// Minimum time between two fetches, whatever triggers them.
    cooldown: Duration,
    /// Keys older than this are refetched before use.
    max_age: Duration,
    state: RwLock<KeyState>,
    /// Single flight: one fetch at a time; waiters re-check the cache after it.
    refresh: tokio::sync::Mutex<()>,
}

impl JwksCache {
    /// A cache fetching with `http`; the URL comes now or later through [`JwksCache::set_url`].
    pub fn new(
        http: reqwest::Client,
        url: Option<Url>,
        cooldown: Duration,
        max_age: Duration,
    ) -> Self {
        Self {
            http,
            cooldown,
            max_age,
            state: RwLock::new(KeyState {
                url,
                ..KeyState::default()
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Sets the JWKS URL (from discovery) unless one is set.
    pub fn set_url(&self, url: &Url) {
        let mut state = self.state.write().expect("jwks lock");
        if state.url.is_none() {
            state.url = Some(url.clone());
        }
    }

    /// Records a failure that happened before any fetch (e.g. discovery), for [`Self::health`].
    pub fn note_failure(&self, error: String) {
        self.state.write().expect("jwks lock").last_error = Some(error);
    }

    /// Keys that may verify a token with this `kid` and `alg`, refetching when allowed.
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<VerificationKey>>, JwksError> {
        if !self.is_expired() {
            let found = self.find(kid, alg);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        self.refresh_if_due().await;
        let found = self.find(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        let state = self.state.read().expect("jwks lock");
        match (&state.last_error, state.keys.is_empty()) {
            (Some(e), true) => Err(JwksError::Unavailable(e.clone())),
            _ => Err(JwksError::UnknownKey {
                kid: kid.map(str::to_owned),
                url: state.url.as_ref().map(Url::to_string).unwrap_or_default(),
            }),
        }
    }

    /// The cache's health (cheap: no I/O).
    pub fn health(&self) -> JwksHealth {
        let state = self.state.read().expect("jwks lock");
        let status = match (&state.last_error, state.keys.is_empty()) {
            (None, true) => JwksStatus::NotLoaded,
            (None, false) => JwksStatus::Ok,
            (Some(_), false) => JwksStatus::Stale,
            (Some(_), true) => JwksStatus::Down,
        };
        JwksHealth {
            status,
            url: state.url.as_ref().map(Url::to_string),
            keys: state.keys.len(),
            fetches: state.fetches,
            last_success: state.last_success.map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64)
            }),
            last_error: state.last_error.clone(),
        }
    }

    fn is_expired(&self) -> bool {
        let state = self.state.read().expect("jwks lock");
        state.loaded_at.is_some_and(|t| t.elapsed() > self.max_age)
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<VerificationKey>> {
        let state = self.state.read().expect("jwks lock");
        state
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&alg))
            // A token without `kid` may be checked against every key of its algorithm.
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .cloned()
            .collect()
    }

    /// Fetches unless another fetch started within the cool-down; failures keep the old keys.
    async fn refresh_if_due(&self) {
        let _flight = self.refresh.lock().await;
        let url = {
            let mut state = self.state.write().expect("jwks lock");
            if state
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.cooldown)
            {
                return;
            }
            let Some(url) = state.url.clone() else { return };
            state.last_attempt = Some(Instant::now());
            state.fetches += 1;
            url
        };
        let result = fetch_keys(&self.http, &url).await;
        let mut state = self.state.write().expect("jwks lock");
        match result {
            Ok(keys) => {
                tracing::info!(%url, keys = keys.len(), "fetched identity provider keys");
                state.keys = keys;
                state.loaded_at = Some(Instant::now());
                state.last_success = Some(SystemTime::now());
                state.last_error = None;
            }
            Err(e) => {
                tracing::warn!(%url, error = %e, kept = state.keys.len(), "cannot fetch identity provider keys; keeping the last good ones");
                state.last_error = Some(e);
            }
        }
    }
}

/// GETs a JSON document of bounded size; errors are messages for logs and health.
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &Url,
) -> Result<serde_json::Value, String> {
    read_json(http.get(url.clone()), url).await
}

/// Sends `request` (to `url`) and reads a JSON answer of bounded size.
pub(crate) async fn read_json(
    request: reqwest::RequestBuilder,
    url: &Url,
) -> Result<serde_json::Value, String> {
    let mut response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: reading the body failed: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "GET {url}: the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

async fn fetch_keys(
    http: &reqwest::Client,
    url: &Url,
) -> Result<Vec<Arc<VerificationKey>>, String> {
    let doc = get_json(http, url).await?;
    let Some(entries) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Err(format!("{url} is not a JWKS (no \"keys\" array)"));
    };
    // Keys are parsed one by one: one exotic key must not hide the others.
    let keys: Vec<_> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter_map(|jwk| verification_key(&jwk).map(Arc::new))
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "{url} has no usable signing key (RSA, EC P-256/P-384 or Ed25519)"
        ));
    }
    Ok(keys)
}

/// A verification key from a JWK, or `None` for keys we never verify with.
pub fn verification_key(jwk: &Jwk) -> Option<VerificationKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // Shared secrets and other curves: never.
        _ => return None,
    };
    // A key that names its algorithm may verify only that one.
    let algorithms = match jwk.common.key_algorithm {
        Some(alg) => {
            let named: Algorithm = alg.to_string().parse().ok()?;
            by_type.into_iter().filter(|a| *a == named).collect()
        }
        None => by_type,
    };
    if algorithms.is_empty() {
        return None;
    }
    Some(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
pub(crate) mod tests;
