//! OpenID Connect identity providers: discovery, keys, and token verification per provider.
//!
//! Written on `jsonwebtoken` (already used for minting, with the aws-lc backend) and our one
//! `reqwest` client rather than the `openidconnect` crate, which brings its own RSA, P-256 and
//! Ed25519 stacks and a second `rand`; the flow itself is small (see [`flow`]).
//!
//! - [`config`]: `[oidc.<name>]` tables and their validation.
//! - [`OidcProviders`]: the configured providers, built once into the app state.
//! - [`flow`]: the browser routes (login, callback, provider list) and the logout hand-off;
//!   `exchange`: the callback's back channel (code exchange, ID token checks, userinfo).
//! - [`return_to`]: where a login may send the user back to (no open redirects).
//!
//! Discovery and keys load lazily on first use and are cached; a provider that is down at
//! start-up does not stop the BFF, and shows in [`OidcProviders::health`].

pub mod config;
mod exchange;
pub mod flow;
pub mod pending;
pub mod return_to;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::idp_token::{self, Expectations, TokenError};
use crate::auth::jwks::{JwksCache, JwksError, JwksHealth, get_json};
use crate::error::AppError;
pub use config::OidcProviderSettings;

/// The part of a provider's discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where browsers go to log in.
    #[serde(deserialize_with = "url")]
    pub authorization_endpoint: Url,
    /// Where codes become tokens.
    #[serde(deserialize_with = "url")]
    pub token_endpoint: Url,
    /// The signing keys.
    #[serde(deserialize_with = "url")]
    pub jwks_uri: Url,
    /// Optional profile endpoint.
    #[serde(default, deserialize_with = "optional_url")]
    pub userinfo_endpoint: Option<Url>,
    /// RP-initiated logout, when the provider has it.
    #[serde(default, deserialize_with = "optional_url")]
    pub end_session_endpoint: Option<Url>,
    /// PKCE methods; we only speak S256.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

fn url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let text = String::deserialize(d)?;
    Url::parse(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

fn optional_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(text) => Url::parse(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}"))),
        None => Ok(None),
    }
}

/// Why a provider cannot be used right now.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Fetch or parse failure (the message names the URL).
    #[error("cannot read the identity provider's discovery document: {0}")]
    Fetch(String),
    /// A failure happened within the cool-down; we do not retry yet.
    #[error("the identity provider is unavailable (last error: {0}); try again shortly")]
    CoolingDown(String),
}

/// One configured provider with its cached discovery document and keys.
pub struct Provider {
    /// Its validated settings.
    pub settings: OidcProviderSettings,
    http: reqwest::Client,
    metadata: RwLock<Option<Arc<Metadata>>>,
    /// Last failed discovery (when, why): retries wait for the JWKS cool-down.
    failure: RwLock<Option<(Instant, String)>>,
    discovery_flight: tokio::sync::Mutex<()>,
    /// The provider's signing keys.
    pub jwks: JwksCache,
}

impl Provider {
    fn new(settings: OidcProviderSettings, http: reqwest::Client) -> Self {
        let jwks = JwksCache::new(
            http.clone(),
            None,
            settings.jwks_cooldown,
            settings.jwks_max_age,
        );
        Self {
            settings,
            http,
            metadata: RwLock::new(None),
            failure: RwLock::new(None),
            discovery_flight: tokio::sync::Mutex::new(()),
            jwks,
        }
    }

    /// The discovery document, fetched once (failures retried after the cool-down).
    pub async fn metadata(&self) -> Result<Arc<Metadata>, DiscoveryError> {
        if let Some(m) = self.metadata.read().expect("metadata lock").clone() {
            return Ok(m);
        }
        let _flight = self.discovery_flight.lock().await;
        if let Some(m) = self.metadata.read().expect("metadata lock").clone() {
            return Ok(m);
        }
        if let Some((at, why)) = self.failure.read().expect("failure lock").clone()
            && at.elapsed() < self.settings.jwks_cooldown
        {
            return Err(DiscoveryError::CoolingDown(why));
        }
        match self.discover().await {
            Ok(m) => {
                let m = Arc::new(m);
                self.jwks.set_url(&m.jwks_uri);
                *self.metadata.write().expect("metadata lock") = Some(Arc::clone(&m));
                *self.failure.write().expect("failure lock") = None;
                Ok(m)
            }
            Err(why) => {
                tracing::warn!(provider = %self.settings.name, error = %why, "OIDC discovery failed");
                self.jwks.note_failure(format!("discovery: {why}"));
                *self.failure.write().expect("failure lock") = Some((Instant::now(), why.clone()));
                Err(DiscoveryError::Fetch(why))
            }
        }
    }

    async fn discover(&self) -> Result<Metadata, String> {
        let issuer = &self.settings.issuer;
        let url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
        .map_err(|e| format!("bad issuer URL: {e}"))?;
        let doc = get_json(&self.http, &url).await?;
        let m: Metadata = serde_json::from_value(doc)
            .map_err(|e| format!("{url} is not an OpenID discovery document: {e}"))?;
        if m.issuer != *issuer {
            return Err(format!(
                "the provider says its issuer is {:?}, the config says {issuer:?}: copy its value into `issuer` exactly (trailing slash included)",
                m.issuer
            ));
        }
        // Endpoints must be as safe as the issuer: no https issuer handing out http endpoints.
        let secure = issuer.starts_with("https:");
        let endpoints = [
            Some(&m.authorization_endpoint),
            Some(&m.token_endpoint),
            Some(&m.jwks_uri),
            m.userinfo_endpoint.as_ref(),
            m.end_session_endpoint.as_ref(),
        ];
        if secure
            && endpoints
                .into_iter()
                .flatten()
                .any(|u| u.scheme() != "https")
        {
            return Err(format!("{url} lists a non-https endpoint"));
        }
        if let Some(methods) = &m.code_challenge_methods_supported
            && !methods.iter().any(|x| x == "S256")
        {
            return Err("the provider does not support PKCE with S256".into());
        }
        Ok(m)
    }

    /// Verifies a token this provider signed, for one of `audiences`.
    pub async fn verify(&self, token: &str, audiences: &[String]) -> Result<Value, VerifyError> {
        self.metadata().await?;
        let expect = Expectations {
            issuer: &self.settings.issuer,
            audiences,
            leeway: self.settings.leeway,
            algorithms: &self.settings.algorithms,
        };
        Ok(idp_token::verify(token, &self.jwks, &expect).await?)
    }

    /// Key cache health (discovery failures included).
    pub fn health(&self) -> JwksHealth {
        self.jwks.health()
    }
}

/// Verification failed: either the provider is unreachable or the token is bad.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Discovery failed.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The token is refused (or no keys).
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl VerifyError {
    /// The response for a failed verification of `what`: 503 when the provider (or its keys)
    /// cannot be reached, so clients retry; 401 when the token itself is refused.
    pub fn into_app_error(self, what: &str) -> AppError {
        match self {
            VerifyError::Discovery(d) => AppError::Unavailable(d.to_string()),
            VerifyError::Token(TokenError::Keys(JwksError::Unavailable(m))) => {
                AppError::Unavailable(format!(
                    "cannot verify the {what}: the provider's keys are unavailable ({m})"
                ))
            }
            VerifyError::Token(t) => AppError::Unauthorized(format!("invalid {what}: {t}")),
        }
    }
}

/// One provider's health, for readiness.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderHealth {
    /// The `[oidc.<name>]` name.
    pub name: String,
    /// Its keys (and discovery) status.
    pub jwks: JwksHealth,
}

/// All configured providers, in config order.
pub struct OidcProviders {
    providers: Vec<Arc<Provider>>,
    /// Seals the browser's pending-login cookie (shared by every instance with the same
    /// `secret`).
    pub seal: pending::PendingSeal,
}

impl OidcProviders {
    /// Builds the providers (no I/O: discovery and keys load on first use); pending logins
    /// are sealed with a key derived from `secret`, which every instance shares.
    pub fn new(settings: &[OidcProviderSettings], secret: &[u8]) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("tinybird-bff/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            providers: settings
                .iter()
                .map(|s| Arc::new(Provider::new(s.clone(), http.clone())))
                .collect(),
            seal: pending::PendingSeal::derive(secret),
        })
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.settings.name == name)
    }

    /// Every provider.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.iter()
    }

    /// The provider accepting bearer tokens from `issuer`.
    pub fn bearer_issuer(&self, issuer: &str) -> Option<&Arc<Provider>> {
        self.providers
            .iter()
            .find(|p| p.settings.issuer == issuer && !p.settings.bearer_audiences.is_empty())
    }

    /// Whether any provider accepts bearer tokens.
    pub fn accepts_bearer(&self) -> bool {
        self.providers
            .iter()
            .any(|p| !p.settings.bearer_audiences.is_empty())
    }

    /// Health of every provider's keys: `Down` means its tokens cannot be verified.
    pub fn health(&self) -> Vec<ProviderHealth> {
        self.providers
            .iter()
            .map(|p| ProviderHealth {
                name: p.settings.name.clone(),
                jwks: p.health(),
            })
            .collect()
    }
}
