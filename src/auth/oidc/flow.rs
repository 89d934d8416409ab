//! Browser login through an OIDC provider: authorization code flow with PKCE.
//!
//! `GET /auth/{provider}/login?return_to=/path` keeps a fresh `state`, `nonce` and PKCE
//! verifier in the session and redirects to the provider. `GET /auth/{provider}/callback`
//! takes them back out (once: a replayed callback finds nothing), exchanges the code, verifies
//! the ID token (signature, `iss`, `aud`, `azp`, `exp`, and the `nonce` we sent), optionally
//! merges userinfo, maps the claims to a user, renews the session id and redirects back to
//! the sanitized `return_to`. Logout hands the browser to the provider's end-session endpoint
//! when it has one ([`end_session_url`]).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Redirect;
use base64::Engine;
use rand::RngCore;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::exchange::{self, unavailable};
use super::{Provider, return_to};
use crate::app::AppState;
use crate::auth::login::start_session;
use crate::error::AppError;

/// Session key of a login in progress.
const PENDING_KEY: &str = "oidc_pending";
/// Session key of how the user logged in (for logout).
const LOGIN_KEY: &str = "oidc_login";
/// A login must come back within this many seconds.
const PENDING_TTL_SECS: i64 = 600;

/// A login in progress, kept server-side in the session.
#[derive(Serialize, Deserialize)]
pub(super) struct Pending {
    provider: String,
    state: String,
    pub(super) nonce: String,
    pub(super) verifier: String,
    return_to: String,
    started: i64,
}

/// How an OIDC user logged in: what RP-initiated logout needs.
#[derive(Serialize, Deserialize)]
struct OidcLogin {
    provider: String,
    id_token: String,
}

/// `GET /auth/{provider}/login` query.
#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
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

/// `GET /api/providers`: what the login page offers.
pub async fn providers(State(state): State<AppState>) -> Json<Value> {
    let providers: Vec<Value> = state
        .oidc
        .iter()
        .filter(|p| p.settings.client.is_some())
        .map(|p| {
            json!({
                "name": p.settings.name,
                "display_name": p.settings.display_name,
                "login_url": format!("/auth/{}/login", p.settings.name),
            })
        })
        .collect();
    let local = state.settings.users.ids().next().is_some();
    Json(json!({ "local": local, "providers": providers }))
}

/// `GET /auth/{provider}/login`: start the flow.
pub async fn login(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<LoginQuery>,
    session: Session,
) -> Result<Redirect, AppError> {
    let provider = login_provider(&state, &name)?;
    let client = provider
        .settings
        .client
        .as_ref()
        .expect("login_provider checked");
    let return_to = match query.return_to.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(target) => return_to::sanitize(target).ok_or_else(|| {
            AppError::BadRequest("return_to must be a path on this site, like /dashboard".into())
        })?,
    };
    let metadata = provider.metadata().await.map_err(unavailable)?;
    let pending = Pending {
        provider: name.clone(),
        state: random_token(),
        nonce: random_token(),
        verifier: random_token(),
        return_to,
        started: chrono::Utc::now().timestamp(),
    };
    let mut url = metadata.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", callback_url(&state, &name).as_str())
        .append_pair("scope", &client.scopes.join(" "))
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pkce_challenge(&pending.verifier))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(&client.auth_params);
    session.insert(PENDING_KEY, &pending).await?;
    Ok(Redirect::to(url.as_str()))
}

/// `GET /auth/{provider}/callback`: finish the flow.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    session: Session,
) -> Result<Redirect, AppError> {
    let provider = login_provider(&state, &name)?;
    // Taken out before anything else: whatever happens next, this state is used up.
    let pending: Option<Pending> = session.remove(PENDING_KEY).await?;
    let restart = format!("start again at /auth/{name}/login");
    let Some(pending) = pending else {
        return Err(AppError::BadRequest(format!(
            "no login in progress in this browser (or it was already completed): {restart}"
        )));
    };
    let state_ok = query.state.as_deref().is_some_and(|s| {
        bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())) && pending.provider == name
    });
    if !state_ok {
        return Err(AppError::BadRequest(format!(
            "the login's state does not match this browser's: {restart}"
        )));
    }
    if chrono::Utc::now().timestamp() - pending.started > PENDING_TTL_SECS {
        return Err(AppError::BadRequest(format!(
            "the login took too long: {restart}"
        )));
    }
    if query
        .iss
        .as_ref()
        .is_some_and(|iss| *iss != provider.settings.issuer)
    {
        return Err(AppError::BadRequest(format!(
            "the login response comes from another issuer: {restart}"
        )));
    }
    if let Some(error) = query.error {
        let detail: String = query
            .error_description
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        tracing::warn!(provider = %name, %error, "identity provider refused the login");
        return Err(AppError::Unauthorized(format!(
            "the identity provider refused the login: {error} {detail}"
        )));
    }
    let code = query
        .code
        .ok_or_else(|| AppError::BadRequest("the callback has no code".into()))?;
    let finished = exchange::finish(&state, provider, &name, &code, &pending).await;
    let (record, id_token) = match finished {
        Ok(done) => done,
        Err(e) => {
            state.metrics.login("failed");
            state
                .audit
                .login_failed(&format!("(oidc:{name})"), peer.ip(), "oidc");
            return Err(e);
        }
    };
    start_session(&session, &record).await?;
    let login = OidcLogin {
        provider: name.clone(),
        id_token,
    };
    session.insert(LOGIN_KEY, &login).await?;
    state.metrics.login("ok");
    state.audit.login(&record.user, peer.ip());
    tracing::info!(provider = %name, user = %record.user.id, tenant = record.user.tenant.as_deref().unwrap_or("-"), "oidc login");
    Ok(Redirect::to(&pending.return_to))
}

/// The provider's end-session URL for this session's OIDC login, if any (call before flushing).
pub async fn end_session_url(
    state: &AppState,
    session: &Session,
) -> Result<Option<String>, AppError> {
    let Some(login) = session.get::<OidcLogin>(LOGIN_KEY).await? else {
        return Ok(None);
    };
    let Some(provider) = state.oidc.get(&login.provider) else {
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
        .append_pair("post_logout_redirect_uri", site_root(state).as_str());
    if let Some(client) = &provider.settings.client {
        url.query_pairs_mut()
            .append_pair("client_id", &client.client_id);
    }
    Ok(Some(url.into()))
}

fn login_provider<'a>(state: &'a AppState, name: &str) -> Result<&'a Provider, AppError> {
    state
        .oidc
        .get(name)
        .filter(|p| p.settings.client.is_some())
        .map(|p| p.as_ref())
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no identity provider {name:?} with login is configured"
            ))
        })
}

fn site_root(state: &AppState) -> Url {
    let mut url = state.settings.public_url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// Where the provider sends the browser back: `<public_url>/auth/<name>/callback`.
pub fn callback_url(state: &AppState, name: &str) -> Url {
    site_root(state)
        .join(&format!("auth/{name}/callback"))
        .expect("provider names are URL-safe")
}

/// 32 random bytes, base64url: `state`, `nonce` and the PKCE verifier (43 characters).
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
