//! What a cookie session holds about its user, and the session's life: started at login
//! with a new id and nothing of the session before it, kept alive by use, resolved by every
//! cookie-authenticated route against the users in force now.
//!
//! A session keeps how its user logged in ([`Login`]), never a copy of a local user's
//! tenant, roles or attributes: those are read from the users file in force at each request,
//! so a reload that removes a user, moves them to another tenant or changes their roles takes
//! effect at their next request, on every instance. An identity provider's user is kept as
//! the provider described them at login (nothing else can say who they are), and every
//! session, whoever its user, ends `session.absolute_ttl` after its login however active.
//!
//! Reading a session costs a store load, a copy of its record and a JSON decode; with the
//! memory and file stores (this process alone writes them) the decoded login is kept per
//! session id in a [`LoginCache`] that the store forgets on every write and delete (see
//! `redis_store::ObservedStore`). With Redis there is no cache: another instance may end a
//! session, and only the store knows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use tower_sessions::session::Id;

use crate::auth::users::UserDirectory;
use crate::error::AppError;
use crate::user::User;

/// Session key of the login. Sessions written before it existed (they kept a copy of the
/// user under `user`) have none, so they are not signed in: their users log in again once.
const LOGIN_KEY: &str = "login";

/// How the session's user logged in: what a request needs to know who they are now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Login {
    /// A user of the users file: who they are is read from the file at every request.
    Local {
        /// The user's id in the users file.
        id: String,
    },
    /// A user an identity provider logged in, as its claims described them at login.
    Oidc {
        /// The provider's name in the config.
        provider: String,
        /// The user the provider's claims mapped to.
        user: User,
        /// Name to show, if the provider gave one.
        display_name: Option<String>,
    },
}

/// What the session stores: the login and when it happened.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    login: Login,
    /// Unix seconds of the login (for `session.absolute_ttl`).
    at: i64,
}

/// The session's user as the routes see them, resolved for this request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionUser {
    /// The identity grants evaluate.
    #[serde(flatten)]
    pub user: User,
    /// Name to show, if any.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// How long sessions last: inactivity is the session layer's, this is the rest.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    /// A session ends this long after its login, however active.
    pub absolute: Duration,
}

/// Decoded logins by session id (see the module doc).
pub struct LoginCache {
    logins: quick_cache::sync::Cache<Id, Arc<Cached>>,
    /// Bumped by every [`LoginCache::forget`]: a login decoded while a write or delete went by
    /// is not kept, so a logout racing a request cannot leave its session in the cache.
    generation: AtomicU64,
}

/// A session's login as its store last had it.
struct Cached {
    stored: Stored,
    /// When the session was last saved (its expiry is pushed then).
    saved_at: i64,
    /// When the store would stop returning it (Unix seconds).
    expires_at: i64,
}

impl std::fmt::Debug for LoginCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCache")
            .field("sessions", &self.logins.len())
            .finish()
    }
}

impl LoginCache {
    /// A cache of at most `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        Self {
            logins: quick_cache::sync::Cache::new(capacity.max(1)),
            generation: AtomicU64::new(0),
        }
    }

    /// The store wrote or deleted session `id`: what was kept of it is stale.
    pub fn forget(&self, id: &Id) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.logins.remove(id);
    }
}

/// The logged-in user of a session, resolved against `users` (the users file in force), or
/// 401. A session that outlived `lifetime`, or whose local user is gone, is ended (flushed
/// from the store) and answered 401. With a `cache`, a session seen before is read from it
/// instead of the store (see the module doc).
///
/// Also keeps an active session alive: the store only learns of activity when the session is
/// saved, and saving on every request would cost a disk write per request with the file store,
/// so the session is re-saved (its expiry pushed to now + ttl) once a tenth of the inactivity
/// timeout has passed since the last save. A session thus ends between 0.9 and 1 times
/// `session.ttl` after the user's last request.
pub async fn current_user(
    session: &Session,
    users: &UserDirectory,
    lifetime: Lifetime,
    cache: Option<&LoginCache>,
) -> Result<SessionUser, AppError> {
    let now = chrono::Utc::now().timestamp();
    let ttl = match session.expiry() {
        Some(tower_sessions::Expiry::OnInactivity(ttl)) => Some(ttl.whole_seconds()),
        _ => None,
    };
    let id = session
        .id()
        .ok_or_else(|| AppError::Unauthorized("not signed in: log in first".into()))?;
    let known = cache
        .and_then(|c| c.logins.get(&id))
        .filter(|c| c.expires_at > now && ttl.is_none_or(|ttl| now - c.saved_at < ttl / 10));
    let cached = match known {
        Some(cached) => cached,
        None => {
            let generation = cache.map(|c| c.generation.load(Ordering::Acquire));
            let cached = load(session, now, ttl).await?;
            if let (Some(cache), Some(generation)) = (cache, generation)
                && cache.generation.load(Ordering::Acquire) == generation
            {
                cache.logins.insert(id, Arc::clone(&cached));
            }
            cached
        }
    };
    let ended =
        |why: &str| AppError::Unauthorized(format!("your session has ended ({why}): log in again"));
    if now.saturating_sub(cached.stored.at) >= lifetime.absolute.as_secs() as i64 {
        session.flush().await?;
        return Err(ended("it reached its maximum lifetime"));
    }
    let Some(user) = resolve(&cached.stored.login, users) else {
        session.flush().await?;
        return Err(ended("your account changed"));
    };
    Ok(user)
}

/// The session's login from the store, re-saving it (pushing its expiry) once a tenth of the
/// inactivity timeout `ttl` has passed since the last save.
async fn load(session: &Session, now: i64, ttl: Option<i64>) -> Result<Arc<Cached>, AppError> {
    let stored = session
        .get::<Stored>(LOGIN_KEY)
        .await?
        .ok_or_else(|| AppError::Unauthorized("not signed in: log in first".into()))?;
    let mut saved_at = session.get::<i64>(SAVED_AT_KEY).await?.unwrap_or(0);
    if ttl.is_some_and(|ttl| now - saved_at >= ttl / 10) {
        session.insert(SAVED_AT_KEY, now).await?;
        saved_at = now;
    }
    Ok(Arc::new(Cached {
        stored,
        saved_at,
        // The store drops the record `ttl` after its last save; without one, never cached.
        expires_at: ttl.map_or(now, |ttl| saved_at + ttl),
    }))
}

/// Who `login` is now: a local user as the users file has them (`None` once removed), a
/// provider's user as the provider said.
fn resolve(login: &Login, users: &UserDirectory) -> Option<SessionUser> {
    match login {
        Login::Local { id } => users.get(id).map(|record| SessionUser {
            user: record.user.clone(),
            display_name: record.display_name.clone(),
        }),
        Login::Oidc {
            user, display_name, ..
        } => Some(SessionUser {
            user: user.clone(),
            display_name: display_name.clone(),
        }),
    }
}

/// Session key of the Unix time the session was last saved (see [`current_user`]).
const SAVED_AT_KEY: &str = "saved_at";

/// Starts a logged-in session for `login` (a password or OIDC login): drops whatever the
/// session held (a previous user's login, their provider's ID token) and renews its id, so
/// neither a session id planted before login nor anything of an earlier user survives it.
pub async fn start_session(session: &Session, login: Login) -> Result<(), AppError> {
    session.clear().await;
    session.cycle_id().await?;
    let now = chrono::Utc::now().timestamp();
    session.insert(LOGIN_KEY, Stored { login, at: now }).await?;
    session.insert(SAVED_AT_KEY, now).await?;
    Ok(())
}

/// The session's user, if signed in, without touching its expiry (for logout): a local
/// user removed since their login is known by their id alone.
pub async fn signed_in(session: &Session, users: &UserDirectory) -> Result<Option<User>, AppError> {
    let Some(stored) = session.get::<Stored>(LOGIN_KEY).await? else {
        return Ok(None);
    };
    Ok(Some(match resolve(&stored.login, users) {
        Some(found) => found.user,
        None => User {
            id: match stored.login {
                Login::Local { id } => id,
                Login::Oidc { user, .. } => user.id,
            },
            tenant: None,
            roles: Vec::new(),
            attributes: Default::default(),
        },
    }))
}
