//! Who is calling the local endpoint: the workspace admin token, or a JWT signed with it.
//!
//! As in Tinybird, the token comes from `Authorization: Bearer` or `?token=`, and every failure
//! is a 403 whose message says what was wrong.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::params::Params;
use crate::tinybird::AdminToken;
use crate::tinybird::claims::{self, Claims, ScopeType};

/// A verified caller.
#[derive(Debug)]
pub enum Caller {
    /// The workspace admin token: reads every pipe, may create tokens.
    Admin,
    /// A JWT with its verified claims.
    Jwt(Claims),
}

/// Takes the token from the header (preferred) or the `token` parameter.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    params: &'a Params,
) -> Result<&'a str, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::forbidden("invalid Authorization header: not ASCII"))?;
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::forbidden("invalid Authorization header: expected `Bearer <token>`")
            });
    }
    params
        .first("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::forbidden(
                "no token: send `Authorization: Bearer <token>` or `?token=<token>`",
            )
        })
}

/// Verifies a presented token for `workspace_id` at `now` (Unix seconds).
pub fn authenticate(
    token: &str,
    admin: &AdminToken,
    workspace_id: &str,
    now: i64,
) -> Result<Caller, ApiError> {
    if admin.matches(token) {
        return Ok(Caller::Admin);
    }
    let claims = claims::verify(token, admin.bytes(), now)
        .map_err(|e| ApiError::forbidden(e.to_string()))?;
    if claims.workspace_id != workspace_id {
        return Err(ApiError::forbidden(format!(
            "invalid token: workspace_id {:?} is not this workspace (wrong region or workspace?)",
            claims.workspace_id
        )));
    }
    Ok(Caller::Jwt(claims))
}

impl Caller {
    /// The fixed params this caller must get for the pipe (`name` or `id`), or a 403.
    pub fn pipe_access(&self, name: &str, id: &str) -> Result<Map<String, Value>, ApiError> {
        match self {
            Caller::Admin => Ok(Map::new()),
            Caller::Jwt(claims) => claims
                .scopes
                .iter()
                .find(|s| {
                    s.scope_type == ScopeType::PipesRead && (s.resource == name || s.resource == id)
                })
                .map(|s| s.fixed_params.clone().unwrap_or_default())
                .ok_or_else(|| {
                    ApiError::forbidden(format!(
                        "token has no PIPES:READ scope for pipe {name}: mint one that includes it"
                    ))
                }),
        }
    }
}
