//! Browser login through an OIDC provider: authorization code flow with PKCE (the routes are
//! in `crate::http::oidc`).
//!
//! [`begin`] (`GET /auth/{provider}/login?return_to=/path`) makes a fresh `state` and
//! `nonce`, seals them in a short-lived cookie (nothing is stored server-side before login:
//! see [`super::pending`]) and returns the provider URL. [`complete`]
//! (`GET /auth/{provider}/callback`) opens that cookie (the route then deletes it), exchanges
//! the code, verifies the ID token (signature, `iss`, `aud`, `azp`, `exp`, and the `nonce` we
//! sent), optionally merges userinfo, maps the claims to a user, starts a fresh session and
//! redirects back to the sanitized `return_to`. Logout hands the browser to the provider's
//! end-session endpoint when it has one ([`end_session_url`]).

use base64::Engine;
use rand::RngCore;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::exchange::{self, unavailable};
pub use super::pending::PENDING_TTL_SECS;
use super::pending::{Pending, Refused};
use super::{OidcProviders, Provider, return_to};
use crate::auth::session::{Login, SessionUser, start_session};
use crate::error::AppError;

/// Session key of how the user logged in (for logout).
const LOGIN_KEY: &str = "oidc_login";

/// How an OIDC user logged in: what RP-initiated logout needs.
#[derive(Serialize, Deserialize)]
struct OidcLogin {
    provider: String,
    id_token: String,
}

/// `GET /auth/{provider}/login` query.
#[derive(Deserialize)]
pub struct LoginQuery {
    /// Where to go after the login (a path on this site).
    pub return_to: Option<String>,
}

/// `GET /auth/{provider}/callback` query (success or error response).
#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the issuer of this response, when the provider says (mix-up defence).
    iss: Option<String>,
}

/// The provider `name` if it is configured for browser login, else 404.
pub fn login_provider<'a>(
    providers: &'a OidcProviders,
    name: &str,
) -> Result<&'a Provider, AppError> {
    providers
        .get(name)
        .filter(|p| p.settings.client.is_some())
        .map(|p| p.as_ref())
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no identity provider {name:?} with login is configured"
            ))
        })
}

/// Starts a login at `provider` (named `name`): the provider URL to send the browser to, and
/// the sealed pending login for the browser to keep in a cookie until the callback.
pub async fn begin(
    providers: &OidcProviders,
    provider: &Provider,
    name: &str,
    return_to: Option<&str>,
    public_url: &Url,
) -> Result<(Url, String), AppError> {
    let client = provider
        .settings
        .client
        .as_ref()
        .expect("login_provider checked");
    let return_to = match return_to {
        None | Some("") => "/".to_owned(),
        Some(target) => return_to::sanitize(target).ok_or_else(|| {
            AppError::BadRequest("return_to must be a path on this site, like /dashboard".into())
        })?,
    };
    let metadata = provider.metadata().await.map_err(unavailable)?;
    let pending = Pending {
        provider: name.to_owned(),
        state: random_token(),
        nonce: random_token(),
        return_to,
        started: chrono::Utc::now().timestamp(),
    };
    let verifier = providers.seal.verifier(&pending.state);
    let mut url = metadata.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", callback_url(public_url, name).as_str())
        .append_pair("scope", &client.scopes.join(" "))
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(&client.auth_params);
    Ok((url, providers.seal.seal(&pending)))
}

/// Why a callback did not log anyone in.
#[derive(Debug)]
pub enum CallbackError {
    /// The callback itself is wrong (no login in progress, wrong state, too late, another
    /// issuer, the provider's own refusal): nothing was exchanged.
    Invalid(AppError),
    /// The code exchange, the ID token or the claims mapping failed: a failed login.
    Failed(AppError),
}

/// A finished login: who, and where to send the browser.
pub struct Completed {
    /// The session's user.
    pub record: SessionUser,
    /// The sanitized path the login started from.
    pub return_to: String,
}

/// Finishes the login at `provider`: opens the browser's pending login (`cookie`, which the
/// route deletes whatever happens, so a replayed callback finds nothing), checks it against
/// `query`, exchanges the code, and starts the logged-in session.
pub async fn complete(
    providers: &OidcProviders,
    provider: &Provider,
    name: &str,
    (query, cookie): (CallbackQuery, Option<&str>),
    public_url: &Url,
    session: &Session,
) -> Result<Completed, CallbackError> {
    let invalid = CallbackError::Invalid;
    let restart = format!("start again at /auth/{name}/login");
    let now = chrono::Utc::now().timestamp();
    let pending = match cookie.map(|c| providers.seal.open(c, now)) {
        Some(Ok(pending)) => pending,
        Some(Err(Refused::Expired)) => {
            return Err(invalid(AppError::BadRequest(format!(
                "the login took too long: {restart}"
            ))));
        }
        None | Some(Err(Refused::Forged)) => {
            return Err(invalid(AppError::BadRequest(format!(
                "no login in progress in this browser (or it was already completed): {restart}"
            ))));
        }
    };
    let state_ok = query.state.as_deref().is_some_and(|s| {
        bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())) && pending.provider == name
    });
    if !state_ok {
        return Err(invalid(AppError::BadRequest(format!(
            "the login's state does not match this browser's: {restart}"
        ))));
    }
    if query
        .iss
        .as_ref()
        .is_some_and(|iss| *iss != provider.settings.issuer)
    {
        return Err(invalid(AppError::BadRequest(format!(
            "the login response comes from another issuer: {restart}"
        ))));
    }
    if let Some(error) = query.error {
        let detail: String = query
            .error_description
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        tracing::warn!(provider = %name, %error, "identity provider refused the login");
        return Err(invalid(AppError::Unauthorized(format!(
            "the identity provider refused the login: {error} {detail}"
        ))));
    }
    let code = query
        .code
        .ok_or_else(|| invalid(AppError::BadRequest("the callback has no code".into())))?;
    let redirect_uri = callback_url(public_url, name);
    let verifier = providers.seal.verifier(&pending.state);
    let (record, id_token) =
        exchange::finish(provider, &redirect_uri, &code, &verifier, &pending.nonce)
            .await
            .map_err(CallbackError::Failed)?;
    let login = OidcLogin {
        provider: name.to_owned(),
        id_token,
    };
    let started = async {
        let session_login = Login::Oidc {
            provider: name.to_owned(),
            user: record.user.clone(),
            display_name: record.display_name.clone(),
        };
        start_session(session, session_login).await?;
        session.insert(LOGIN_KEY, &login).await?;
        Ok::<_, AppError>(())
    };
    started.await.map_err(invalid)?;
    Ok(Completed {
        record,
        return_to: pending.return_to,
    })
}

/// The provider's end-session URL for this session's OIDC login, if any (call before flushing).
pub async fn end_session_url(
    providers: &OidcProviders,
    public_url: &Url,
    session: &Session,
) -> Result<Option<String>, AppError> {
    let Some(login) = session.get::<OidcLogin>(LOGIN_KEY).await? else {
        return Ok(None);
    };
    let Some(provider) = providers.get(&login.provider) else {
        return Ok(None);
    };
    // Logout must work even when the provider is down: then it is local only.
    let Ok(metadata) = provider.metadata().await else {
        return Ok(None);
    };
    let Some(mut url) = metadata.end_session_endpoint.clone() else {
        return Ok(None);
    };
    url.query_pairs_mut()
        .append_pair("id_token_hint", &login.id_token)
        .append_pair("post_logout_redirect_uri", site_root(public_url).as_str());
    if let Some(client) = &provider.settings.client {
        url.query_pairs_mut()
            .append_pair("client_id", &client.client_id);
    }
    Ok(Some(url.into()))
}

fn site_root(public_url: &Url) -> Url {
    let mut url = public_url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// Where the provider sends the browser back: `<public_url>/auth/<name>/callback`.
pub fn callback_url(public_url: &Url, name: &str) -> Url {
    site_root(public_url)
        .join(&format!("auth/{name}/callback"))
        .expect("provider names are URL-safe")
}

/// 32 random bytes, base64url: `state` and `nonce` (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_base64url_of_sha256() {
        // Expected value from Python: urlsafe_b64encode(sha256(verifier)) without padding.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mA92tZiAoOfsYFZYPiXI4LhkUc4FYk"),
            "2mGhC7FzQ_5T5Q1Q4Ku1liAZkWuSeJLnyLaGK0rtk-Y"
        );
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }
}
