//! Verifying a JWT an identity provider signed: ID tokens at login, access tokens as bearers.
//!
//! Only asymmetric signatures verified against the provider's JWKS are accepted. `alg: none`
//! and every HMAC algorithm are refused before any key is looked at: with HS256, a verifier
//! that feeds the provider's *public* key in as the HMAC secret accepts tokens anyone can
//! forge (key confusion), and we never hold a secret an IdP would sign with. Beyond the
//! signature: `iss` must be the configured issuer, `aud` must name us, `exp` and `nbf` hold
//! within a small leeway for clock skew, and an unknown `crit` header is refused (RFC 7515).

use std::time::Duration;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::jwks::{JwksCache, JwksError};

/// Signature algorithms accepted by default: every asymmetric one jsonwebtoken supports.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused. Messages are safe to show: they say what failed, never a key.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error(
        "the token is not a JWT ({0}); an opaque access token cannot be verified here: ask the provider for a JWT access token (Auth0: pass an `audience`)"
    )]
    Malformed(String),
    /// `none`, HS*, or an algorithm not allowed for this provider.
    #[error(
        "the token's algorithm `{0}` is refused: only the provider's asymmetric signatures (RS256, ES256, EdDSA, ...) are accepted"
    )]
    ForbiddenAlgorithm(String),
    /// A `crit` header names extensions we do not implement.
    #[error("the token has critical header extensions {0:?} this server does not understand")]
    CriticalHeader(Vec<String>),
    /// No key to check it with.
    #[error(transparent)]
    Keys(#[from] JwksError),
    /// The signature does not verify with the provider's key.
    #[error("the token's signature does not verify with the provider's key")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("the token was issued by another issuer than {expected}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// `aud` does not name this application.
    #[error("the token is for another audience: expected one of {expected:?}")]
    WrongAudience {
        /// Accepted audiences.
        expected: Vec<String>,
    },
    /// A required claim is absent or malformed.
    #[error("the token lacks a valid `{0}` claim")]
    MissingClaim(String),
}

/// What a valid token must show.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// The exact `iss`.
    pub issuer: &'a str,
    /// `aud` must contain one of these.
    pub audiences: &'a [String],
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// Accepted signature algorithms (never HS* or none).
    pub algorithms: &'a [Algorithm],
}

/// Verifies `token` and returns its claims.
pub async fn verify(
    token: &str,
    jwks: &JwksCache,
    expect: &Expectations<'_>,
) -> Result<Value, TokenError> {
    let header = peek_header(token)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| expect.algorithms.contains(a) && DEFAULT_ALGORITHMS.contains(a))
        .ok_or_else(|| TokenError::ForbiddenAlgorithm(alg_name.to_owned()))?;
    if let Some(crit) = header.get("crit") {
        let names = crit
            .as_array()
            .map(|a| a.iter().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        return Err(TokenError::CriticalHeader(names));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let keys = jwks.keys_for(kid, alg).await?;
    let mut validation = Validation::new(alg);
    validation.leeway = expect.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(expect.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let mut last = TokenError::BadSignature;
    for key in keys {
        match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                last = map_error(e.kind(), expect);
                // Another key of the same kid-less set may still verify it.
                if !matches!(last, TokenError::BadSignature) {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// The unverified `iss` of a token, to pick which provider should verify it.
pub fn peek_issuer(token: &str) -> Result<Option<String>, TokenError> {
    let payload = part(token, 1)?;
    let claims: Value = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("the payload is not JSON".into()))?;
    Ok(claims.get("iss").and_then(Value::as_str).map(str::to_owned))
}

fn peek_header(token: &str) -> Result<Value, TokenError> {
    let header = part(token, 0)?;
    let header: Value = serde_json::from_slice(&header)
        .map_err(|_| TokenError::Malformed("the header is not JSON".into()))?;
    if !header.is_object() {
        return Err(TokenError::Malformed(
            "the header is not a JSON object".into(),
        ));
    }
    Ok(header)
}

fn part(token: &str, index: usize) -> Result<Vec<u8>, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::Malformed(format!(
            "{} parts instead of 3",
            parts.len()
        )));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[index])
        .map_err(|_| TokenError::Malformed("a part is not base64url".into()))
}

fn map_error(kind: &ErrorKind, expect: &Expectations<'_>) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer {
            expected: expect.issuer.to_owned(),
        },
        ErrorKind::InvalidAudience => TokenError::WrongAudience {
            expected: expect.audiences.to_vec(),
        },
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
            TokenError::MissingClaim(c.clone())
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => TokenError::Malformed("cannot decode it".into()),
        _ => TokenError::BadSignature,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::auth::jwks::tests::{KEY_A, KEY_A_X, KEY_B, jwk, serve_jwks, sign};

    const ISS: &str = "https://idp.example.com/";

    fn claims(extra: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut c = json!({"iss": ISS, "aud": "bff", "sub": "u1", "exp": now + 300, "iat": now});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    }

    async fn check(token: &str) -> Result<Value, TokenError> {
        let (url, _) = serve_jwks(json!({"keys": [jwk("a", KEY_A_X)]})).await;
        let jwks = Arc::new(JwksCache::new(
            reqwest::Client::new(),
            Some(url.join("jwks").unwrap()),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ));
        let audiences = ["bff".to_owned()];
        let expect = Expectations {
            issuer: ISS,
            audiences: &audiences,
            leeway: Duration::from_secs(30),
            algorithms: DEFAULT_ALGORITHMS,
        };
        verify(token, &jwks, &expect).await
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[tokio::test]
    async fn a_valid_token_verifies_and_every_tampering_is_refused() {
        let good = sign(KEY_A, "a", &claims(json!({})));
        assert_eq!(check(&good).await.unwrap()["sub"], "u1");
        let now = chrono::Utc::now().timestamp();
        let cases: Vec<(String, &str)> = vec![
            (
                sign(KEY_A, "a", &claims(json!({"aud": "other"}))),
                "another audience",
            ),
            (
                sign(KEY_A, "a", &claims(json!({"iss": "https://evil/"}))),
                "another issuer",
            ),
            (
                sign(KEY_A, "a", &claims(json!({"exp": now - 120}))),
                "expired",
            ),
            (
                sign(KEY_A, "a", &claims(json!({"nbf": now + 120}))),
                "not valid yet",
            ),
            (
                sign(KEY_B, "a", &claims(json!({}))),
                "signature does not verify",
            ),
            (sign(KEY_B, "zzz", &claims(json!({}))), "no signing key"),
        ];
        for (token, want) in cases {
            let err = check(&token).await.unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?}, got {err:?}");
        }
        let (h, _, s) = {
            let p: Vec<&str> = good.split('.').collect();
            (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
        };
        let tampered = format!("{h}.{}.{s}", b64(&claims(json!({"sub": "admin"}))));
        assert!(matches!(
            check(&tampered).await,
            Err(TokenError::BadSignature)
        ));
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none"})),
            b64(&claims(json!({})))
        );
        assert!(
            matches!(check(&none).await, Err(TokenError::ForbiddenAlgorithm(a)) if a == "none")
        );
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                kid: Some("a".into()),
                ..Default::default()
            },
            &claims(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(KEY_A_X.as_bytes()),
        )
        .unwrap();
        assert!(matches!(check(&hs).await, Err(TokenError::ForbiddenAlgorithm(a)) if a == "HS256"));
        let crit = format!(
            "{}.{}.{s}",
            b64(&json!({"alg": "EdDSA", "kid": "a", "crit": ["exp"]})),
            b64(&claims(json!({})))
        );
        assert!(matches!(
            check(&crit).await,
            Err(TokenError::CriticalHeader(_))
        ));
        assert!(matches!(
            check("opaque-token").await,
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn the_issuer_is_read_without_verifying_to_route_the_token() {
        let token = sign(KEY_A, "a", &claims(json!({})));
        assert_eq!(peek_issuer(&token).unwrap().as_deref(), Some(ISS));
    }
}
