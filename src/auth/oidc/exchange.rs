//! The back channel of an OIDC login: code for tokens, the ID token checked, userinfo merged,
//! claims mapped to a user.
//!
//! The ID token is checked beyond its signature as OIDC Core 3.1.3.7 asks: `aud` must name our
//! client, `azp` too when present or when there are several audiences, and `nonce` must be the
//! one this browser's login sent (so a token captured elsewhere cannot be replayed here).
//! Userinfo, when enabled, must be about the same `sub`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{DiscoveryError, Provider};
use crate::auth::jwks::read_json;
use crate::auth::session::SessionUser;
use crate::error::AppError;

/// Exchanges `code`, verifies and maps: the user to log in, and the raw ID token (kept for
/// RP-initiated logout's `id_token_hint`).
pub(super) async fn finish(
    provider: &Provider,
    redirect_uri: &reqwest::Url,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<(SessionUser, String), AppError> {
    let tokens = exchange_code(provider, redirect_uri, code, verifier).await?;
    let mut claims = verify_id_token(provider, &tokens.id_token, nonce).await?;
    if provider
        .settings
        .client
        .as_ref()
        .is_some_and(|c| c.userinfo)
    {
        merge_userinfo(provider, &tokens.access_token, &mut claims).await?;
    }
    let mapped = provider.settings.claims.map(&claims)?;
    let record = SessionUser {
        user: mapped.user,
        display_name: mapped.display_name,
    };
    Ok((record, tokens.id_token))
}

/// What the token endpoint answered.
struct Tokens {
    id_token: String,
    access_token: String,
}

/// `application/x-www-form-urlencoded` escaping, required for client_secret_basic credentials.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

async fn exchange_code(
    provider: &Provider,
    redirect_uri: &reqwest::Url,
    code: &str,
    verifier: &str,
) -> Result<Tokens, AppError> {
    let client = provider.settings.client.as_ref().expect("login provider");
    let metadata = provider.metadata().await.map_err(unavailable)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let mut request = provider.http.post(metadata.token_endpoint.clone());
    match &client.client_secret {
        Some(secret) => {
            let user = utf8_percent_encode(&client.client_id, FORM).to_string();
            let pass = utf8_percent_encode(secret.expose_secret(), FORM).to_string();
            request = request.basic_auth(user, Some(pass));
        }
        None => form.push(("client_id", &client.client_id)),
    }
    let response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            AppError::Unavailable(format!(
                "cannot reach the identity provider's token endpoint: {e}"
            ))
        })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = body["error"].as_str().unwrap_or("unknown error");
        tracing::warn!(provider = %provider.settings.name, %status, %error, "code exchange refused");
        return Err(AppError::Unauthorized(format!(
            "the identity provider refused the login code ({error}): start again at /auth/{}/login",
            provider.settings.name
        )));
    }
    let field = |k: &str| body[k].as_str().map(str::to_owned);
    Ok(Tokens {
        id_token: field("id_token").ok_or_else(|| {
            AppError::Unauthorized(
                "the identity provider sent no ID token: add the `openid` scope".into(),
            )
        })?,
        access_token: field("access_token").unwrap_or_default(),
    })
}

async fn verify_id_token(
    provider: &Provider,
    id_token: &str,
    nonce: &str,
) -> Result<Value, AppError> {
    let client_id = &provider
        .settings
        .client
        .as_ref()
        .expect("login provider")
        .client_id;
    let claims = provider
        .verify(id_token, std::slice::from_ref(client_id))
        .await
        .map_err(|e| e.into_app_error("ID token"))?;
    let nonce_ok = claims["nonce"]
        .as_str()
        .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
    if !nonce_ok {
        return Err(AppError::Unauthorized(
            "the ID token's nonce is missing or not the one this login sent (replayed token?)"
                .into(),
        ));
    }
    // With several audiences, OIDC Core 3.1.3.7 requires `azp` to name us.
    let several = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
    let azp = claims["azp"].as_str();
    if (several || azp.is_some()) && azp != Some(client_id.as_str()) {
        return Err(AppError::Unauthorized(
            "the ID token was issued to another client (azp)".into(),
        ));
    }
    Ok(claims)
}

async fn merge_userinfo(
    provider: &Provider,
    access_token: &str,
    claims: &mut Value,
) -> Result<(), AppError> {
    let metadata = provider.metadata().await.map_err(unavailable)?;
    let Some(url) = &metadata.userinfo_endpoint else {
        return Err(AppError::Unavailable(
            "userinfo = true, but the provider has no userinfo endpoint: set userinfo = false"
                .into(),
        ));
    };
    let request = provider.http.get(url.clone()).bearer_auth(access_token);
    let info = read_json(request, url).await.map_err(|e| {
        tracing::warn!(provider = %provider.settings.name, error = %e, "userinfo failed");
        AppError::Unavailable("the identity provider's userinfo endpoint failed; try again".into())
    })?;
    if info["sub"] != claims["sub"] {
        return Err(AppError::Unauthorized(
            "userinfo is about another user than the ID token (sub)".into(),
        ));
    }
    if let (Some(target), Some(extra)) = (claims.as_object_mut(), info.as_object()) {
        for (k, v) in extra {
            if !matches!(
                k.as_str(),
                "iss" | "aud" | "exp" | "iat" | "nbf" | "nonce" | "azp"
            ) {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

pub(super) fn unavailable(e: DiscoveryError) -> AppError {
    AppError::Unavailable(e.to_string())
}
