//! A request made with an API key, as the request path sees it: who it acts as, what it reads
//! and the token it gets. The HTTP layer's request context asks [`Keys::caller`] in its "who"
//! step when the `Authorization` header holds a key (`Bearer tbk_...`); a key is then the only
//! identity of the request (its session cookie, if any, is not read).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};

use super::Keys;
use super::record::KeyRecord;
use super::secret;
use crate::error::AppError;
use crate::grants::{Access, Grants};
use crate::user::User;

/// The key behind a request.
#[derive(Debug, Clone)]
pub struct KeyCaller {
    /// The key, as the store last confirmed it.
    pub key: Arc<KeyRecord>,
    /// The principal it acts as (`key:<id>` of its tenant, see [`super::rules`]).
    pub user: User,
    /// What it reads now (its scopes of what its tenant's grants give), or the 403 why not.
    pub access: Result<Arc<Access>, String>,
}

impl KeyCaller {
    /// The JWT `name` of its tokens (`key:<id>@<tenant>`): Tinybird's `limits.rps` and
    /// `pipe_stats_rt` count per key.
    pub fn token_name(&self) -> String {
        self.key.token_name()
    }

    /// Its tokens' lifetime (`keys.token_ttl`, short: a JWT cannot be revoked) and
    /// `limits.rps` (the key's own, else `default_rps`).
    pub fn token_limits(&self, keys: &Keys, default_rps: Option<i64>) -> (Duration, Option<i64>) {
        let own = self.key.rps.map(i64::from);
        (keys.settings.token_ttl, own.or(default_rps))
    }
}

/// The key in `Authorization: Bearer tbk_...`, if the header holds one (`None`: no header, or
/// another kind of bearer token).
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && secret::looks_like_key(token)).then_some(token)
}

/// The 401 for a key on a route keys never open (the cookie routes).
pub fn not_here() -> AppError {
    AppError::Unauthorized(
        "API keys work on POST /api/token, /api/pipes/... and /api/sql only; this route needs a signed-in session".into(),
    )
}

impl Keys {
    /// Who the key `presented` acts as and what it reads, or the 401 that says whether it is
    /// unknown, revoked or expired (never whose it was).
    pub async fn caller(
        &self,
        grants: &Grants,
        presented: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyCaller, AppError> {
        let key = self.authenticate(presented, client, now).await?;
        let (user, access) = match self.access(grants, &key) {
            Ok((user, access)) => (user, Ok(access)),
            Err(e) => (
                super::rules::principal(&key, &self.settings.roles),
                Err(e.to_string()),
            ),
        };
        Ok(KeyCaller { key, user, access })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_key_is_a_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer tbk_live_x".parse().unwrap());
        assert_eq!(presented(&h), Some("tbk_live_x"));
        h.insert(
            header::AUTHORIZATION,
            "bearer  tbk_live_x ".parse().unwrap(),
        );
        assert_eq!(presented(&h), Some("tbk_live_x"));
        h.insert(header::AUTHORIZATION, "Bearer eyJhbGciOi".parse().unwrap());
        assert_eq!(presented(&h), None, "an IdP token");
        h.insert(header::AUTHORIZATION, "Basic tbk_live_x".parse().unwrap());
        assert_eq!(presented(&h), None);
    }
}
