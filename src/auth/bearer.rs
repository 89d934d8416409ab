//! `Authorization: Bearer <IdP access token>`: SPAs that already hold a token from their
//! identity provider exchange it for a Tinybird JWT, or call the proxy with it, no cookie.
//!
//! The token is routed to a provider by its (unverified) `iss`, then verified against that
//! provider's JWKS with its `bearer_audiences` (see [`crate::auth::idp_token`]), and its claims
//! are mapped exactly like an ID token's at login.
//!
//! CSRF: a cross-site page can make a browser send cookies, never an `Authorization` header,
//! so bearer requests need no CSRF check. The flip side is an invariant every caller relies
//! on: when an `Authorization` header is present, the request is authenticated by it alone
//! (a bad or foreign scheme is a 401, never a fall back to the cookie), because
//! the data routes (`crate::http::context`) skip the CSRF check on the strength of that
//! header.

use axum::http::{HeaderMap, header};

use super::idp_token::peek_issuer;
use super::oidc::OidcProviders;
use crate::error::AppError;
use crate::user::User;

/// The user a bearer token proves, `Ok(None)` when the request has no `Authorization` header.
///
/// With the header present this returns the user or an error, never `None`.
pub async fn user_from_request(
    providers: &OidcProviders,
    headers: &HeaderMap,
) -> Result<Option<User>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthorized(
                "unsupported Authorization header: send `Authorization: Bearer <access token from your identity provider>`, or no header to use the session cookie".into(),
            )
        })?;
    if !providers.accepts_bearer() {
        return Err(AppError::Unauthorized(
            "this BFF accepts no bearer tokens: set bearer_audiences on an [oidc.<name>] provider, or use the session cookie".into(),
        ));
    }
    let issuer = peek_issuer(token)
        .map_err(|e| AppError::Unauthorized(format!("invalid bearer token: {e}")))?
        .ok_or_else(|| {
            AppError::Unauthorized("invalid bearer token: it has no `iss` claim".into())
        })?;
    let provider = providers.bearer_issuer(&issuer).ok_or_else(|| {
        AppError::Unauthorized(format!(
            "invalid bearer token: its issuer {issuer:?} is not a configured provider with bearer_audiences"
        ))
    })?;
    let claims = provider
        .verify(token, &provider.settings.bearer_audiences)
        .await
        .map_err(|e| e.into_app_error("bearer token"))?;
    let mapped = provider.settings.claims.map(&claims)?;
    Ok(Some(mapped.user))
}
