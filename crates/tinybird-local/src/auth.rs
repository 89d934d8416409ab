//! Who is calling the local endpoint, found and verified as Tinybird's server does it.
//!
//! Read in Tinybird's own request handler (docs/tinybird.md, "Token lookup" to "Error bodies"):
//! - **Lookup.** The `token` parameter first (query string or form body). Only without it,
//!   the `Authorization` header, split on one space into exactly two parts whose first is
//!   `Bearer` (case-sensitive). Anything else is no token.
//! - **Kinds.** The workspace admin token, a static token, or (anything not starting with
//!   `p.`) a JWT: decoded unverified first (it must have `exp`), its `workspace_id` picks the
//!   workspace, then verified with HS256 and that workspace's admin token; `exp` has no
//!   leeway, an `nbf` is enforced, `iat` is not checked.
//! - **Refusals** are 403s reading `invalid authentication token`, then `. ` and the detail.
//!   A token that fails to decode or verify is **echoed whole** in Python's bytes notation:
//!   `Invalid token b'<the token>': Signature has expired`. Tinybird really does that, so
//!   the local endpoint does too: anything relaying its answers must redact (the BFF's
//!   proxy does), and tests against this endpoint see the real shape.
//!
//! Every text Tinybird's server sends here is a constant or a `format!` in this file.

use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::error::ApiError;
use tinybird_contract::AdminToken;
use tinybird_contract::claims::{Claims, ScopeType};
use tinybird_contract::params::Params;

/// Tinybird's prefix of every authentication refusal.
pub const INVALID_AUTH: &str = "invalid authentication token";

/// A static token the local endpoint accepts besides the admin token (Tinybird's workspace
/// tokens: a name and scopes such as `PIPES:READ:top_products`).
#[derive(Debug, Clone)]
pub struct StaticToken {
    /// The token's name (`token_name` in `pipe_stats_rt`).
    pub name: String,
    /// The token itself.
    pub token: secrecy::SecretString,
    /// What it may read.
    pub scopes: Vec<StaticScope>,
}

/// One scope of a static token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticScope {
    /// `PIPES:READ:<pipe>`: read one pipe, no fixed params.
    PipesRead(String),
    /// `DATASOURCES:READ:<datasource>`: read one data source (or service data source such as
    /// `tinybird.pipe_stats_rt`) with SQL, unfiltered.
    DatasourcesRead(String),
    /// `DATASOURCES:APPEND:<datasource>`: append rows to one data source (the Events API).
    DatasourcesAppend(String),
}

impl StaticScope {
    /// Parses Tinybird's scope notation: `PIPES:READ:<name>`, `DATASOURCES:READ:<name>` or
    /// `DATASOURCES:APPEND:<name>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        type Make = fn(String) -> StaticScope;
        let kinds: [(&str, Make); 3] = [
            ("PIPES:READ:", StaticScope::PipesRead),
            ("DATASOURCES:READ:", StaticScope::DatasourcesRead),
            ("DATASOURCES:APPEND:", StaticScope::DatasourcesAppend),
        ];
        let (name, make) = kinds
            .iter()
            .find_map(|(prefix, make)| text.strip_prefix(prefix).map(|n| (n, make)))
            .ok_or_else(|| {
                format!("scope {text:?}: write PIPES:READ:<pipe>, DATASOURCES:READ:<data source> or DATASOURCES:APPEND:<data source>")
            })?;
        if name.is_empty() {
            return Err(format!("scope {text:?} names no resource"));
        }
        Ok(make(name.to_owned()))
    }
}

/// A verified caller.
#[derive(Debug)]
pub enum Caller {
    /// The workspace admin token: reads every pipe and data source, may create tokens.
    Admin,
    /// A static token with its scopes.
    Static(StaticToken),
    /// A JWT with its verified claims.
    Jwt(Claims),
}

/// What verifies tokens: the workspace, its admin token and its static tokens.
pub struct Keys<'a> {
    /// The workspace admin token (also the JWTs' HS256 key).
    pub admin: &'a AdminToken,
    /// The workspace id JWTs must name.
    pub workspace_id: &'a str,
    /// Static tokens.
    pub statics: &'a [StaticToken],
}

/// The presented token: `token` parameter first, then `Authorization: Bearer <token>`
/// exactly (one space, two parts, `Bearer` case-sensitive); `None` when there is neither.
pub fn presented_token<'a>(params: &'a Params, headers: &'a HeaderMap) -> Option<&'a str> {
    if let Some(token) = params.first("token").filter(|t| !t.is_empty()) {
        return Some(token);
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let mut parts = value.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("Bearer"), Some(token), None) if !token.is_empty() => Some(token),
        _ => None,
    }
}

/// Verifies `token` at `now` (Unix seconds) as Tinybird does; every refusal is a 403.
pub fn authenticate(token: Option<&str>, keys: &Keys<'_>, now: i64) -> Result<Caller, ApiError> {
    let Some(token) = token else {
        return Err(ApiError::forbidden(INVALID_AUTH));
    };
    if keys.admin.matches(token) {
        return Ok(Caller::Admin);
    }
    if let Some(found) = keys.statics.iter().find(|s| static_matches(s, token)) {
        return Ok(Caller::Static(found.clone()));
    }
    if token.starts_with("p.") {
        // A static token this workspace does not have: Tinybird fails to verify it.
        return Err(refused(echo(
            "Invalid token",
            token,
            "Signature verification failed",
        )));
    }
    verify_jwt(token, keys, now).map(Caller::Jwt)
}

fn static_matches(candidate: &StaticToken, presented: &str) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    candidate
        .token
        .expose_secret()
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

/// Tinybird's JWT path: unverified decode (`exp` required), workspace, verified decode.
fn verify_jwt(token: &str, keys: &Keys<'_>, now: i64) -> Result<Claims, ApiError> {
    let unverified = decode(token, None).map_err(|e| refused(e.text(token)))?;
    match unverified.get("workspace_id").and_then(Value::as_str) {
        None | Some("") => return Err(refused("Workspace ID missing in JWT token".into())),
        Some(id) if id != keys.workspace_id => {
            return Err(refused(format!("Workspace with ID {id} not found")));
        }
        Some(_) => {}
    }
    let payload = decode(token, Some(keys.admin.bytes())).map_err(|e| refused(e.text(token)))?;
    let exp = match payload.get("exp") {
        Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
        _ => {
            let why = "Expiration Time claim (exp) must be an integer.";
            return Err(refused(echo("Invalid token", token, why)));
        }
    };
    if exp <= now {
        return Err(refused(echo(
            "Invalid token",
            token,
            "Signature has expired",
        )));
    }
    if let Some(nbf) = payload.get("nbf") {
        match nbf.as_i64() {
            Some(nbf) if nbf <= now => {}
            Some(_) => {
                let why = "The token is not yet valid (nbf)";
                return Err(refused(echo(UNEXPECTED, token, why)));
            }
            None => {
                let why = "Not Before claim (nbf) must be an integer.";
                return Err(refused(echo("Invalid token", token, why)));
            }
        }
    }
    claims_of(payload)
}

/// The claims Tinybird needs beyond verification: `name`, and read-only `scopes`.
fn claims_of(payload: Map<String, Value>) -> Result<Claims, ApiError> {
    if !payload.get("name").is_some_and(Value::is_string) {
        return Err(refused(
            "JWT claim `name` is missing or not a string".into(),
        ));
    }
    let Some(scopes) = payload.get("scopes").and_then(Value::as_array) else {
        return Err(refused(
            "JWT claim `scopes` is missing or not an array".into(),
        ));
    };
    for scope in scopes {
        let ty = scope.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "PIPES:READ" && ty != "DATASOURCES:READ" {
            return Err(refused(format!(
                "JWT scope type {ty:?} is not allowed (only PIPES:READ and DATASOURCES:READ)"
            )));
        }
    }
    serde_json::from_value(Value::Object(payload))
        .map_err(|e| refused(format!("JWT claims are not valid: {e}")))
}

/// Tinybird's text for an error its catch-all handler caught (`nbf`, a missing `exp`).
const UNEXPECTED: &str = "Unexpected error decoding / validating token";

/// Why a decode failed, in PyJWT's words.
enum DecodeFailure {
    /// A `DecodeError` or `InvalidSignatureError`: `Invalid token b'...': <why>`.
    Invalid(&'static str),
    /// Anything else PyJWT raises: `Unexpected error ... b'...': <why>`.
    Unexpected(&'static str),
}

impl DecodeFailure {
    fn text(&self, token: &str) -> String {
        match self {
            DecodeFailure::Invalid(why) => echo("Invalid token", token, why),
            DecodeFailure::Unexpected(why) => echo(UNEXPECTED, token, why),
        }
    }
}

/// Decodes the payload, verifying HS256 with `key` when given; no claim is checked except
/// that `exp` is present, as Tinybird's unverified decode requires.
fn decode(token: &str, key: Option<&[u8]>) -> Result<Map<String, Value>, DecodeFailure> {
    use jsonwebtoken::errors::ErrorKind;
    if token.split('.').count() != 3 {
        return Err(DecodeFailure::Invalid("Not enough segments"));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let decoded = match key {
        Some(key) => {
            jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(key), &validation)
        }
        // The first, unverified look: only for the workspace id, as Tinybird's is.
        None => jsonwebtoken::dangerous::insecure_decode::<Value>(token),
    };
    let payload = decoded.map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => DecodeFailure::Invalid("Signature verification failed"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            DecodeFailure::Unexpected("The specified alg value is not allowed")
        }
        ErrorKind::Base64(_) => DecodeFailure::Invalid("Invalid header padding"),
        _ => DecodeFailure::Invalid("Invalid payload string: must be a json object"),
    })?;
    let Value::Object(payload) = payload.claims else {
        return Err(DecodeFailure::Invalid(
            "Invalid payload string: must be a json object",
        ));
    };
    if !payload.contains_key("exp") {
        return Err(DecodeFailure::Unexpected(
            "Token is missing the \"exp\" claim",
        ));
    }
    Ok(payload)
}

/// `<what> b'<token>': <why>`: Tinybird's message, with the token in Python's bytes notation.
fn echo(what: &str, token: &str, why: &str) -> String {
    format!("{what} {}: {why}", python_bytes_repr(token))
}

/// A 403 `invalid authentication token. <detail>`.
fn refused(detail: String) -> ApiError {
    ApiError::forbidden(format!("{INVALID_AUTH}. {detail}"))
}

/// How Python's `repr` prints `token.encode()`: `b'...'` (or `b"..."` when the text holds a
/// `'` and no `"`), with `\\`, the quote, `\t`, `\n`, `\r` and non-printable bytes escaped.
pub fn python_bytes_repr(text: &str) -> String {
    let bytes = text.as_bytes();
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(text.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

impl Caller {
    /// The fixed params this caller gets for the pipe (`name` or `id`), or a 403.
    pub fn pipe_access(&self, name: &str, id: &str) -> Result<Map<String, Value>, ApiError> {
        let allowed = |resource: &str| resource == name || resource == id;
        match self {
            Caller::Admin => Ok(Map::new()),
            Caller::Static(token) => token
                .scopes
                .iter()
                .any(|s| matches!(s, StaticScope::PipesRead(p) if allowed(p)))
                .then(Map::new)
                .ok_or_else(|| no_pipe_scope(name)),
            Caller::Jwt(claims) => claims
                .scopes
                .iter()
                .find(|s| s.scope_type == ScopeType::PipesRead && allowed(&s.resource))
                .map(|s| s.fixed_params.clone().unwrap_or_default())
                .ok_or_else(|| no_pipe_scope(name)),
        }
    }

    /// Whether this caller may append to the data source `name` (the Events API): the admin
    /// token, or a static token scoped `DATASOURCES:APPEND:<name>`; never a JWT, which
    /// Tinybird only takes on reads. Else a 403.
    pub fn append_access(&self, name: &str) -> Result<(), ApiError> {
        let allowed = match self {
            Caller::Admin => true,
            Caller::Static(token) => token
                .scopes
                .iter()
                .any(|s| matches!(s, StaticScope::DatasourcesAppend(d) if d == name)),
            Caller::Jwt(_) => false,
        };
        allowed.then_some(()).ok_or_else(|| {
            ApiError::forbidden(format!(
                "token has no DATASOURCES:APPEND scope for data source {name}: use the admin token or a token scoped DATASOURCES:APPEND:{name}"
            ))
        })
    }

    /// `pipe_stats_rt`'s `token` (a static token's name; empty for a JWT, which Tinybird does
    /// not store) and `token_name` (the JWT's `name`).
    pub fn stats_identity(&self) -> (String, String) {
        match self {
            Caller::Admin => ("admin token".into(), "admin token".into()),
            Caller::Static(token) => (token.name.clone(), token.name.clone()),
            Caller::Jwt(claims) => (String::new(), claims.name.clone()),
        }
    }
}

fn no_pipe_scope(pipe: &str) -> ApiError {
    ApiError::forbidden(format!(
        "token has no PIPES:READ scope for pipe {pipe}: mint one that includes it"
    ))
}

#[cfg(test)]
mod tests;
