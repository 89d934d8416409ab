//! The claims of a Tinybird JWT, how they are signed, and how they are checked.
//!
//! Tinybird verifies HS256 with the raw bytes of the workspace admin token and ignores the
//! header's `alg`; we always emit `{"alg":"HS256","typ":"JWT"}` and an integer `exp`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only scope types a JWT may carry (nothing that writes, nothing admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeType {
    /// Read one pipe (by name or id), with optional fixed params.
    #[serde(rename = "PIPES:READ")]
    PipesRead,
    /// Read one data source through an SQL filter.
    #[serde(rename = "DATASOURCES:READ")]
    DatasourcesRead,
}

/// One entry of `scopes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// What the scope allows.
    #[serde(rename = "type")]
    pub scope_type: ScopeType,
    /// The pipe or data source name (or id).
    pub resource: String,
    /// Parameters that override any same-named request parameter (row filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_params: Option<Map<String, Value>>,
    /// For `DATASOURCES:READ`: the SQL boolean expression appended to every read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl Scope {
    /// A `PIPES:READ` scope with the given fixed params (omitted when empty).
    pub fn pipe(resource: impl Into<String>, fixed_params: Map<String, Value>) -> Self {
        Self {
            scope_type: ScopeType::PipesRead,
            resource: resource.into(),
            fixed_params: (!fixed_params.is_empty()).then_some(fixed_params),
            filter: None,
        }
    }
}

/// `limits` claim: Tinybird counts `rps` per JWT `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per second shared by every token with the same `name`; `<= 0` means none.
    pub rps: i64,
}

/// The claims Tinybird reads. Extra claims are tolerated by Tinybird; we add only `iat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The workspace UUID (from config, or the admin token's `u`).
    pub workspace_id: String,
    /// The label rate limits and `pipe_stats_rt` attribute usage to.
    pub name: String,
    /// Expiry, integer Unix seconds (UTC).
    pub exp: i64,
    /// Issued at, integer Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// What the token may read.
    pub scopes: Vec<Scope>,
    /// Optional per-`name` rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// Signs claims with the workspace admin token's bytes (HS256, no `kid`).
pub fn sign(claims: &Claims, signing_key: &SecretString) -> String {
    let key = EncodingKey::from_secret(signing_key.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        .expect("serialising claims and HMAC signing cannot fail")
}

/// Why a token was refused; the message is what the 403 body says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not three base64url segments, or not JSON.
    #[error("invalid token: not a JWT ({0})")]
    Malformed(String),
    /// HMAC did not match the workspace's admin token.
    #[error("invalid token: bad signature (was it signed with this workspace's admin token?)")]
    BadSignature,
    /// A required claim is absent or of the wrong type.
    #[error("invalid token: claim `{0}` is missing or has the wrong type ({1})")]
    Claim(&'static str, &'static str),
    /// `exp` is in the past.
    #[error("token expired at {0} (server time {1}): fetch a new one")]
    Expired(i64, i64),
    /// A scope of a type a JWT may not carry.
    #[error(
        "invalid token: scope type {0:?} is not allowed in a JWT (only PIPES:READ and DATASOURCES:READ)"
    )]
    ScopeType(String),
}

/// Verifies signature and the required claims (docs/tinybird.md, "JWTs") at `now` (Unix seconds).
///
/// jsonwebtoken checks only the signature here; every claim is checked by hand so that each
/// failure gets its own message (Tinybird answers all of them with a 403).
pub fn verify(token: &str, signing_key: &[u8], now: i64) -> Result<Claims, VerifyError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(signing_key), &validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed(e.to_string()),
        })?;
    let claims = data.claims;
    let Some(obj) = claims.as_object() else {
        return Err(VerifyError::Malformed(
            "payload is not a JSON object".into(),
        ));
    };
    let exp = match obj.get("exp") {
        None => return Err(VerifyError::Claim("exp", "required")),
        Some(v) => v
            .as_i64()
            .ok_or(VerifyError::Claim("exp", "must be integer Unix seconds"))?,
    };
    for (claim, what) in [("workspace_id", "string"), ("name", "string")] {
        if !obj.get(claim).is_some_and(Value::is_string) {
            return Err(VerifyError::Claim(claim, what));
        }
    }
    let Some(scopes) = obj.get("scopes").and_then(Value::as_array) else {
        return Err(VerifyError::Claim("scopes", "array of scope objects"));
    };
    for scope in scopes {
        let ty = scope.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "PIPES:READ" && ty != "DATASOURCES:READ" {
            return Err(VerifyError::ScopeType(ty.to_owned()));
        }
    }
    if exp <= now {
        return Err(VerifyError::Expired(exp, now));
    }
    serde_json::from_value(claims).map_err(|e| VerifyError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> SecretString {
        SecretString::from("p.test-admin-token")
    }

    fn claims(exp: i64) -> Claims {
        let mut fixed = Map::new();
        fixed.insert("org_id".into(), json!("acme"));
        Claims {
            workspace_id: "ws-1".into(),
            name: "alice@acme".into(),
            exp,
            iat: Some(exp - 600),
            scopes: vec![Scope::pipe("top_products", fixed)],
            limits: Some(Limits { rps: 5 }),
        }
    }

    #[test]
    fn sign_then_verify_round_trips_with_the_contract_shape() {
        let token = sign(&claims(2_000), &key());
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        let back = verify(&token, b"p.test-admin-token", 1_000).unwrap();
        assert_eq!(back, claims(2_000));
        let raw: Value = serde_json::to_value(&back).unwrap();
        assert_eq!(
            raw["scopes"][0],
            json!({"type": "PIPES:READ", "resource": "top_products", "fixed_params": {"org_id": "acme"}})
        );
        assert!(raw["exp"].is_i64());
    }

    #[test]
    fn each_failure_has_its_own_message() {
        let token = sign(&claims(2_000), &key());
        assert_eq!(
            verify(&token, b"other", 1_000),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&token, b"p.test-admin-token", 2_000),
            Err(VerifyError::Expired(2_000, 2_000))
        );
        assert!(matches!(
            verify("abc", b"k", 0),
            Err(VerifyError::Malformed(_))
        ));
        let enc = |v: Value| {
            jsonwebtoken::encode(&Header::default(), &v, &EncodingKey::from_secret(b"k")).unwrap()
        };
        let no_exp = enc(json!({"workspace_id": "w", "name": "n", "scopes": []}));
        assert_eq!(
            verify(&no_exp, b"k", 0),
            Err(VerifyError::Claim("exp", "required"))
        );
        let float_exp = enc(json!({"workspace_id": "w", "name": "n", "scopes": [], "exp": 10.5}));
        assert!(matches!(
            verify(&float_exp, b"k", 0),
            Err(VerifyError::Claim("exp", _))
        ));
        let admin_scope = enc(
            json!({"workspace_id": "w", "name": "n", "exp": 10, "scopes": [{"type": "ADMIN", "resource": "x"}]}),
        );
        assert_eq!(
            verify(&admin_scope, b"k", 0),
            Err(VerifyError::ScopeType("ADMIN".into()))
        );
        let no_name = enc(json!({"workspace_id": "w", "exp": 10, "scopes": []}));
        assert!(matches!(
            verify(&no_name, b"k", 0),
            Err(VerifyError::Claim("name", _))
        ));
    }
}
