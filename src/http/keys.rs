//! Tenant admins and platform admins in the web app: API keys (docs/api-keys.md).
//!
//! - `GET /api/keys[?tenant=T]`: the keys they manage, with usage, and what a new key may read;
//! - `POST /api/keys`: a new key; the answer holds its secret, shown this once;
//! - `POST /api/keys/{id}/roll`: a new secret, the old one valid for `grace`;
//! - `POST /api/keys/{id}/revoke`.
//!
//! The session cookie only, with the CSRF check on every POST: an `Authorization` header (an
//! API key, or an identity provider's token) is refused here, so a leaked key can never mint
//! or revoke keys. Another tenant's key answers 404, as a missing one does.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_sessions::Session;

use super::state::AppState;
use crate::error::AppError;
use crate::keys::record::{KeyScopes, Period, Quota};
use crate::keys::{Actor, Keys, NewKey};
use crate::user::User;

/// The largest request body on these routes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The signed-in user and the key service; an `Authorization` header is refused.
async fn admin(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(User, std::sync::Arc<Keys>), AppError> {
    let keys = state.keys.clone().ok_or_else(|| {
        AppError::NotFound("API keys are off: add a [keys] section to the config".into())
    })?;
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(AppError::Unauthorized(
            "API keys are managed from a signed-in session (the cookie), never with an Authorization header".into(),
        ));
    }
    let user = super::context::who(state, &state.snapshot(), session, headers).await?;
    Ok((user, keys))
}

/// `?tenant=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A platform admin's choice of tenant (all when absent).
    tenant: Option<String>,
}

/// `GET /api/keys`.
#[utoipa::path(get, path = "/api/keys", tag = "keys",
    params(("tenant" = Option<String>, Query, description = "A platform admin's choice of tenant (all when absent)")),
    responses(
        (status = 200, description = "The keys the caller manages, with usage, and what a new key may read", body = Object),
        (status = 401, description = "Not signed in, or an Authorization header", body = crate::error::ErrorBody),
        (status = 403, description = "Not a tenant admin or platform admin", body = crate::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let (user, keys) = admin(&state, &session, &headers).await?;
    let now = chrono::Utc::now().timestamp();
    let listed = keys
        .list(&Actor::User(&user), query.tenant.as_deref(), now)
        .await?;
    let tinybird = tinybird_usage(&state).await;
    let list: Vec<Value> = listed
        .into_iter()
        .map(|(view, usage)| {
            let both_paths = tinybird
                .get(&(
                    view.tenant.clone(),
                    crate::keys::record::principal_id(&view.id),
                ))
                .cloned();
            let mut v = serde_json::to_value(&view).unwrap_or_default();
            v["usage"] = serde_json::to_value(usage).unwrap_or_default();
            v["tinybird_usage_24h"] = both_paths.unwrap_or(Value::Null);
            v
        })
        .collect();
    let snapshot = state.snapshot();
    Ok(Json(json!({
        "keys": list,
        "tenant": user.tenant,
        "platform_admin": user.roles.iter().any(|r| r == crate::metrics::usage::ADMIN_ROLE),
        "grantable": keys.grantable(&snapshot.settings.grants, &user),
        "token_ttl_seconds": keys.settings().token_ttl.as_secs(),
        "usage_enabled": state.usage.is_some(),
    })))
}

/// Each key's line in Tinybird's usage record over the last 24 hours, by (tenant, `key:<id>`):
/// both paths, with rows and bytes read (empty without `[usage]`).
async fn tinybird_usage(state: &AppState) -> BTreeMap<(String, String), Value> {
    let Some(usage) = &state.usage else {
        return BTreeMap::new();
    };
    let report = usage.report(crate::usage::store::Window::H24).await;
    let mut out = BTreeMap::new();
    for tenant in report.tenants {
        for user in tenant
            .users
            .into_iter()
            .filter(|u| u.user.starts_with("key:"))
        {
            let totals = serde_json::to_value(&user.totals).unwrap_or_default();
            out.insert((tenant.tenant.clone(), user.user), totals);
        }
    }
    out
}

/// `POST /api/keys`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// A name for people.
    name: String,
    /// Platform admins: the tenant (default: theirs).
    tenant: Option<String>,
    /// Pipes it reads.
    #[serde(default)]
    pipes: Vec<String>,
    /// Data sources it reads with SQL.
    #[serde(default)]
    datasources: Vec<String>,
    /// `"30d"`, `"12h"`: when it stops working.
    expires_in: Option<String>,
    /// Requests per second.
    rps: Option<u32>,
    /// At most this many requests per `period`.
    quota: Option<QuotaBody>,
    /// Platform admins: the attributes it acts with (default: theirs).
    attributes: Option<BTreeMap<String, String>>,
}

/// A quota as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// Requests per period.
    requests: u64,
    /// `day` or `month`.
    period: String,
}

/// `POST /api/keys`: 201 with `{key, secret}`.
#[utoipa::path(post, path = "/api/keys", tag = "keys",
    request_body(content = Object, description = "{name, pipes?, datasources?, expires_in?, rps?, quota? {requests, period}, tenant?, attributes?}"),
    responses(
        (status = 201, description = "The key and its secret, shown this once", body = Object),
        (status = 400, description = "A field to fix", body = crate::error::ErrorBody),
        (status = 403, description = "A scope the creator or the tenant's grants do not give, or another tenant", body = crate::error::ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let (user, keys) = admin(&state, &session, &headers).await?;
    let now = chrono::Utc::now().timestamp();
    let expires_at = match body.expires_in.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|_| {
                AppError::BadRequest(format!(
                    "expires_in {text:?}: write e.g. \"30d\" or \"12h\""
                ))
            })?;
            Some(now.saturating_add(d.as_secs().min(i64::MAX as u64) as i64))
        }
    };
    let quota = match body.quota {
        None => None,
        Some(q) => Some(Quota {
            requests: q.requests,
            period: Period::parse(&q.period).ok_or_else(|| {
                AppError::BadRequest("quota.period: write \"day\" or \"month\"".into())
            })?,
        }),
    };
    let new = NewKey {
        name: body.name,
        tenant: body.tenant,
        scopes: KeyScopes {
            pipes: body.pipes,
            datasources: body.datasources,
        },
        expires_at,
        rps: body.rps,
        quota,
        attributes: body.attributes,
    };
    let snapshot = state.snapshot();
    let issued = keys
        .create(&snapshot.settings.grants, Actor::User(&user), new, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": issued.view, "secret": issued.secret })),
    ))
}

/// `POST /api/keys/{id}/roll`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    /// How long the old secret keeps working: `"1h"`, `"0s"` (default `"1h"`).
    grace: Option<String>,
}

/// `POST /api/keys/{id}/roll`: `{key, secret}`.
#[utoipa::path(post, path = "/api/keys/{id}/roll", tag = "keys",
    params(("id" = String, Path, description = "The key id")),
    request_body(content = Option<Object>, description = "{grace?: \"1h\"}"),
    responses(
        (status = 200, description = "The key and its new secret, shown this once", body = Object),
        (status = 404, description = "No such key among those the caller manages", body = crate::error::ErrorBody),
    ))]
pub async fn roll(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<RollBody>>,
) -> Result<Json<Value>, AppError> {
    let (user, keys) = admin(&state, &session, &headers).await?;
    let text = body.and_then(|b| b.0.grace).unwrap_or_else(|| "1h".into());
    let grace = humantime::parse_duration(&text).map_err(|_| {
        AppError::BadRequest(format!(
            "grace {text:?}: write e.g. \"1h\", \"15m\" or \"0s\""
        ))
    })?;
    let now = chrono::Utc::now().timestamp();
    let issued = keys.roll(Actor::User(&user), &id, grace, now).await?;
    Ok(Json(json!({ "key": issued.view, "secret": issued.secret })))
}

/// `POST /api/keys/{id}/revoke`: `{key}`.
#[utoipa::path(post, path = "/api/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "The revoked key", body = Object),
        (status = 404, description = "No such key among those the caller manages", body = crate::error::ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (user, keys) = admin(&state, &session, &headers).await?;
    let now = chrono::Utc::now().timestamp();
    let view = keys.revoke(Actor::User(&user), &id, now).await?;
    Ok(Json(json!({ "key": view })))
}
