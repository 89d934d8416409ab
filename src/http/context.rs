//! One request, resolved once (the model is pingora's per-request `CTX`): who the caller
//! is, what they may read, their workspace, their tenant's budget and the token they get,
//! worked out from one snapshot of the settings and handed to the handler as a [`Ctx`].
//! Nothing downstream derives any of them again.
//!
//! The token route and the proxy routes (pipes, SQL) take a `Ctx`. Resolving it is also
//! where the request is refused before any work: the CSRF check for a cookie `POST` and the
//! cross-site read check for a cookie `GET` (403), no
//! user (401), the caller's rate limits (429 with `Retry-After` and `X-RateLimit-*`) and
//! their tenant's budgets (429 until the reset). Each route says what its requests count as
//! with a [`Scope`] extension (`router.rs`). What may still fail later (no grant, no
//! workspace, a name that does not render) is kept in the `Ctx` and answered where the route
//! reads it, so every route answers its refusals in the same order.
//!
//! Other routes (`/api/me`, the admin pages) only need the caller: [`CurrentUser`].
//!
//! **Who** is one of three: an API key (`Authorization: Bearer tbk_...`, `crate::keys`: the
//! key's principal, its scopes of its tenant's grants, its own rps limit and quota, and a
//! token named after the key), else an identity provider's bearer token, else the session
//! cookie. A key is accepted here only: [`who`], which the cookie routes use, refuses one.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use super::middleware::sessions;
use super::state::{App, AppState, Snapshot};
use crate::auth::session::{self, Lifetime};
use crate::auth::{bearer, csrf};
use crate::config::Settings;
use crate::error::AppError;
use crate::grants::Access;
use crate::keys::Keys;
use crate::keys::caller::{self, KeyCaller};
use crate::ratelimit::{RateInfo, Scope};
use crate::tinybird::mint::{NameError, TokenPlan};
use crate::tinybird::workspaces::{Workspace, WorkspaceError};
use crate::usage::{Budget, Usage};
use crate::user::User;

/// Everything a data route needs about its request.
pub struct Ctx {
    /// The settings, workspaces and grants this request was resolved against.
    pub snapshot: Arc<Snapshot>,
    /// Who is calling.
    pub user: User,
    /// What they may read, or why nothing.
    access: Result<Arc<Access>, String>,
    /// Their workspace, or why none.
    workspace: Result<Arc<Workspace>, WorkspaceError>,
    /// Their tenant's budget standing (what the token plan was adjusted by).
    pub budget: Budget,
    /// Their token's name, lifetime and `limits.rps`, for both paths.
    plan: Result<TokenPlan, NameError>,
    /// The bucket that counted this request, for the answer's `X-RateLimit-*` headers.
    rate: Option<RateInfo>,
    /// The API key the request came with, and the service counting its answers.
    pub key: Option<(Arc<Keys>, KeyCaller)>,
    /// The refreshed session cookie, when resolving the caller re-saved their session.
    cookie: Option<HeaderValue>,
}

impl Ctx {
    /// The settings in force for this request.
    pub fn settings(&self) -> &Settings {
        &self.snapshot.settings
    }

    /// What the caller may read, or the 403 that says why nothing.
    pub fn access(&self) -> Result<&Arc<Access>, AppError> {
        self.access
            .as_ref()
            .map_err(|e| AppError::Forbidden(e.clone()))
    }

    /// The caller's workspace, or the 403 naming the rule.
    pub fn workspace(&self) -> Result<&Arc<Workspace>, AppError> {
        self.workspace
            .as_ref()
            .map_err(|e| AppError::Forbidden(e.to_string()))
    }

    /// The caller's token plan, or the 403 saying which part of the name failed.
    pub fn plan(&self) -> Result<&TokenPlan, AppError> {
        self.plan
            .as_ref()
            .map_err(|e| AppError::Forbidden(e.to_string()))
    }

    /// `response` with the rate-limit headers of the bucket that counted the request (a
    /// relayed 429 keeps Tinybird's own).
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some((keys, caller)) = &self.key {
            keys.answered(&caller.key, response.status().as_u16());
        }
        if let Some(info) = self
            .rate
            .filter(|_| response.status() != StatusCode::TOO_MANY_REQUESTS)
        {
            info.write_headers(response.headers_mut());
        }
        if let Some(cookie) = &self.cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let scope = *parts
            .extensions
            .get::<Scope>()
            .expect("every route taking a Ctx declares its Scope (router.rs)");
        let snapshot = app.snapshot();
        let settings = &snapshot.settings;
        // A cookie can ride on a cross-site request, an Authorization header cannot: a POST
        // needs the CSRF check, a GET must not be another site's subresource.
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            let origins = csrf::Origins {
                public_url: &settings.public_url,
                allowed: &settings.cors.allowed_origins,
            };
            let checked = if parts.method == Method::POST {
                csrf::check(&parts.headers, origins)
            } else {
                csrf::check_read(&parts.headers, origins)
            };
            checked.map_err(IntoResponse::into_response)?;
        }
        let key = key_caller(app, &snapshot, parts)
            .await
            .map_err(IntoResponse::into_response)?;
        let (user, access, cookie) = match &key {
            Some((_, caller)) => (caller.user.clone(), caller.access.clone(), None),
            None => {
                let (user, cookie) = cookie_user(app, &snapshot, &parts.headers).await?;
                let access = settings.grants.evaluate_cached(&user);
                (user, access.map_err(|e| e.to_string()), cookie)
            }
        };
        let grant_names = access.as_ref().map_or(&[][..], |a| a.grant_names());
        let rate = app
            .limits
            .check(scope, &user, grant_names)
            .await
            .map_err(IntoResponse::into_response)?;
        let budget = match &app.usage {
            None => Budget::NONE,
            Some(usage) => usage.check(&user).await.map_err(|refused| {
                tracing::info!(user = %user.id, "refused over a usage budget");
                AppError::from(refused).into_response()
            })?,
        };
        // Last, so only requests every other check let through count against its quota.
        if let Some((keys, caller)) = &key {
            let now = chrono::Utc::now().timestamp();
            keys.admit(&caller.key, now)
                .await
                .map_err(IntoResponse::into_response)?;
        }
        Ok(Ctx {
            workspace: snapshot.workspaces.for_user(&user),
            plan: token_plan(settings, app.usage.as_deref(), &user, &budget, key.as_ref()),
            access,
            budget,
            rate,
            user,
            snapshot,
            key,
            cookie,
        })
    }
}

/// The token `user` gets on either path: the configured name, lifetime and `limits.rps`,
/// with their plan's `rps` and, near a budget, the shorter and slower ones (`crate::usage`),
/// so a JWT that cannot be revoked overshoots the budget by less.
/// A key's tokens are named after the key and live `keys.token_ttl`, with its own rps.
fn token_plan(
    settings: &Settings,
    usage: Option<&Usage>,
    user: &User,
    budget: &Budget,
    key: Option<&(Arc<Keys>, KeyCaller)>,
) -> Result<TokenPlan, NameError> {
    let (name, ttl, rps) = match key {
        Some((keys, caller)) => {
            let (ttl, rps) = caller.token_limits(keys, settings.token_rps);
            (caller.token_name(), ttl, rps)
        }
        None => (
            settings.token_name.render(user)?,
            settings.token_ttl,
            settings.token_rps,
        ),
    };
    let (ttl, rps) = match usage {
        Some(usage) => usage.mint_adjust(budget, ttl, rps),
        None => (ttl, rps),
    };
    Ok(TokenPlan { name, ttl, rps })
}

/// The API key the request presents, resolved (`None` without one): a 401 for an unknown,
/// revoked or expired key, and for any key when `[keys]` is off.
async fn key_caller(
    app: &App,
    snapshot: &Snapshot,
    parts: &Parts,
) -> Result<Option<(Arc<Keys>, KeyCaller)>, AppError> {
    let Some(presented) = caller::presented(&parts.headers) else {
        return Ok(None);
    };
    let keys = app.keys.clone().ok_or_else(|| {
        AppError::Unauthorized("this BFF accepts no API keys (no [keys] section)".into())
    })?;
    let settings = &snapshot.settings;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| crate::client_ip::client_ip(c.0.ip(), &parts.headers, &settings.trusted_proxies));
    let now = chrono::Utc::now().timestamp();
    let caller = keys.caller(&settings.grants, presented, peer, now).await?;
    Ok(Some((keys, caller)))
}

/// Who is calling, for a data route, which runs outside the session layer: the session is
/// read from the request's cookie here, and the answer says what the layer would have said
/// back: the refreshed cookie when resolving the user re-saved the session (returned, for
/// [`Ctx::finish`]), the cookie's removal when the session ended or is unknown.
async fn cookie_user(
    app: &App,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<(User, Option<HeaderValue>), Response> {
    let settings = &snapshot.settings;
    let id = sessions::cookie_id(settings, headers);
    let session = Session::new(
        id,
        Arc::clone(&app.sessions),
        Some(sessions::expiry(settings)),
    );
    match who(app, snapshot, &session, headers).await {
        Ok(user) if session.is_modified() => {
            session
                .save()
                .await
                .map_err(|e| AppError::from(e).into_response())?;
            let cookie = session.id().map(|id| sessions::set_cookie(settings, id));
            Ok((user, cookie))
        }
        Ok(user) => Ok((user, None)),
        Err(refused) => {
            let mut response = refused.into_response();
            // Flushed (ended) or never found in the store: the browser should forget it.
            if id.is_some() && session.id().is_none() {
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, sessions::clear_cookie(settings));
            }
            Err(response)
        }
    }
}

/// The request's session handle (the session layer puts it there).
async fn session_of(parts: &mut Parts, app: &AppState) -> Result<Session, AppError> {
    Session::from_request_parts(parts, app)
        .await
        .map_err(|(_, why)| AppError::Internal(anyhow::anyhow!("no session layer: {why}")))
}

/// Who is calling: the user their bearer token proves when the request has an
/// `Authorization` header (and then only that), else their session's, as the users in force
/// in `snapshot` say. 401 when neither proves a user.
pub async fn who(
    app: &App,
    snapshot: &Snapshot,
    session: &Session,
    headers: &HeaderMap,
) -> Result<User, AppError> {
    if caller::presented(headers).is_some() {
        return Err(caller::not_here());
    }
    if let Some(user) = bearer::user_from_request(&app.oidc, headers).await? {
        return Ok(user);
    }
    let settings = &snapshot.settings;
    let lifetime = Lifetime {
        absolute: settings.session_absolute_ttl,
    };
    let current =
        session::current_user(session, &settings.users, lifetime, app.logins.as_deref()).await?;
    Ok(current.user)
}

/// The caller, for routes that need nothing else (`/api/me`, the admin pages). Take it as
/// `Result<CurrentUser, AppError>` to answer a missing user yourself.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let session = session_of(parts, app).await?;
        who(app, &app.snapshot(), &session, &parts.headers)
            .await
            .map(CurrentUser)
    }
}
