//! What a cookie session holds about its user, and the session's life: started at login
//! with a new id (no fixation), kept alive by use, read by every cookie-authenticated route.

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::error::AppError;
use crate::user::User;

/// Session key of the logged-in user.
const USER_KEY: &str = "user";

/// What the session keeps about the user.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionUser {
    /// The identity grants evaluate.
    #[serde(flatten)]
    pub user: User,
    /// Name to show, if any.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The logged-in user of a session, or 401.
///
/// Also keeps an active session alive: the store only learns of activity when the session is
/// saved, and saving on every request would cost a disk write per request with the file store,
/// so the session is re-saved (its expiry pushed to now + ttl) once a tenth of the inactivity
/// timeout has passed since the last save. A session thus ends between 0.9 and 1 times
/// `session.ttl` after the user's last request.
pub async fn current_user(session: &Session) -> Result<SessionUser, AppError> {
    let user = session
        .get::<SessionUser>(USER_KEY)
        .await?
        .ok_or_else(|| AppError::Unauthorized("not signed in: log in first".into()))?;
    if let Some(tower_sessions::Expiry::OnInactivity(ttl)) = session.expiry() {
        let now = chrono::Utc::now().timestamp();
        let saved_at = session.get::<i64>(SAVED_AT_KEY).await?.unwrap_or(0);
        if now - saved_at >= ttl.whole_seconds() / 10 {
            session.insert(SAVED_AT_KEY, now).await?;
        }
    }
    Ok(user)
}

/// Session key of the Unix time the session was last saved (see [`current_user`]).
const SAVED_AT_KEY: &str = "saved_at";

/// Starts a logged-in session for `record` (a password or OIDC login): renews the session id
/// first, so a session id planted before login is worthless after it.
pub async fn start_session(session: &Session, record: &SessionUser) -> Result<(), AppError> {
    session.cycle_id().await?;
    session.insert(USER_KEY, record).await?;
    session
        .insert(SAVED_AT_KEY, chrono::Utc::now().timestamp())
        .await?;
    Ok(())
}

/// The logged-in user of a session, if any, without touching its expiry (for logout).
pub async fn signed_in(session: &Session) -> Result<Option<SessionUser>, AppError> {
    Ok(session.get::<SessionUser>(USER_KEY).await?)
}
