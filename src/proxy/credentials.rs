//! Upstream JWTs for proxy mode, minted per user and kept until shortly before they expire.
//!
//! Minting costs microseconds, but re-minting on every call would give Tinybird a new token per
//! request for nothing; keeping one per user also keeps its `name` (rate-limit bucket) stable.
//! A token is replaced once less than a fifth of its lifetime is left, measured on the BFF's
//! clock. Minting happens under the lock, so concurrent requests of one user mint once. The map
//! is bounded: when full, tokens due for refresh go first, then the soonest to expire.
//!
//! Each credential travels with the [`Redactor`] that removes it (and the other secrets the
//! BFF holds) from whatever Tinybird answers: Tinybird echoes a refused token in its 403.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use crate::redact::Redactor;

/// A credential to call Tinybird with, and the redactor for the answers to that call.
pub struct Bearer {
    /// Sent as `Authorization: Bearer`.
    pub token: SecretString,
    /// Removes this token, and the BFF's other secrets, from what Tinybird sends back.
    pub redactor: Redactor,
}

impl Bearer {
    /// `token`, redacted together with `also` (the admin token, a static token).
    pub fn new(token: SecretString, also: &[&SecretString]) -> Self {
        let secrets = std::iter::once(&token)
            .chain(also.iter().copied())
            .map(|s| s.expose_secret());
        let redactor = Redactor::new(secrets);
        Self { token, redactor }
    }
}

/// A kept token.
struct Kept {
    bearer: Arc<Bearer>,
    iat: i64,
    exp: i64,
}

/// Whether a token issued at `iat` and expiring at `exp` should be replaced at `now`: less than
/// 20% of its lifetime left (or already expired).
pub fn needs_refresh(iat: i64, exp: i64, now: i64) -> bool {
    let lifetime = (exp - iat).max(1);
    (exp - now) * 5 < lifetime
}

/// A freshly minted token: the JWT and its `iat`/`exp` (Unix seconds).
pub struct Fresh {
    /// The JWT, with its redactor.
    pub bearer: Bearer,
    /// Issued at.
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
}

/// Upstream tokens by user key; bounded.
pub struct TokenCache {
    kept: Mutex<HashMap<String, Kept>>,
    capacity: usize,
}

impl TokenCache {
    /// An empty cache for at most `capacity` users.
    pub fn new(capacity: usize) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The kept token for `key`, or a fresh one from `mint` when none is kept or it is due.
    pub fn get_or_mint<E>(
        &self,
        key: &str,
        now: i64,
        mint: impl FnOnce() -> Result<Fresh, E>,
    ) -> Result<Arc<Bearer>, E> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.get(key).filter(|k| !needs_refresh(k.iat, k.exp, now)) {
            return Ok(Arc::clone(&k.bearer));
        }
        let fresh = mint()?;
        if kept.len() >= self.capacity && !kept.contains_key(key) {
            kept.retain(|_, k| !needs_refresh(k.iat, k.exp, now));
            if kept.len() >= self.capacity {
                let soonest = kept
                    .iter()
                    .min_by_key(|(_, k)| k.exp)
                    .map(|(key, _)| key.clone());
                if let Some(soonest) = soonest {
                    kept.remove(&soonest);
                }
            }
        }
        let bearer = Arc::new(fresh.bearer);
        kept.insert(
            key.to_owned(),
            Kept {
                bearer: Arc::clone(&bearer),
                iat: fresh.iat,
                exp: fresh.exp,
            },
        );
        Ok(bearer)
    }

    /// Forgets every kept token.
    pub fn clear(&self) {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Users with a kept token.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::convert::Infallible;

    use super::*;

    fn minter<'a>(
        count: &'a Cell<u32>,
        now: i64,
        ttl: i64,
    ) -> impl FnOnce() -> Result<Fresh, Infallible> + 'a {
        move || {
            count.set(count.get() + 1);
            Ok(Fresh {
                bearer: Bearer::new(SecretString::from(format!("jwt-{}", count.get())), &[]),
                iat: now,
                exp: now + ttl,
            })
        }
    }

    #[test]
    fn refresh_starts_when_less_than_a_fifth_of_the_lifetime_is_left() {
        assert!(!needs_refresh(1000, 1600, 1000));
        assert!(
            !needs_refresh(1000, 1600, 1480),
            "120s of 600s left is exactly 20%"
        );
        assert!(needs_refresh(1000, 1600, 1481));
        assert!(needs_refresh(1000, 1600, 1700), "expired");
    }

    #[test]
    fn a_user_keeps_one_token_until_it_is_due() {
        let cache = TokenCache::new(10);
        let count = Cell::new(0);
        let get = |now| {
            cache
                .get_or_mint("alice", now, minter(&count, now, 600))
                .unwrap()
        };
        assert_eq!(get(1000).token.expose_secret(), "jwt-1");
        assert_eq!(get(1400).token.expose_secret(), "jwt-1");
        assert_eq!(
            get(1500).token.expose_secret(),
            "jwt-2",
            "re-minted with 100s of 600s left"
        );
        assert_eq!(get(1600).token.expose_secret(), "jwt-2");
        assert_eq!(count.get(), 2);
    }

    #[test]
    fn users_do_not_share_tokens_and_the_cache_stays_bounded() {
        let cache = TokenCache::new(2);
        let count = Cell::new(0);
        let a = cache
            .get_or_mint("alice", 1000, minter(&count, 1000, 600))
            .unwrap();
        let b = cache
            .get_or_mint("bob", 1001, minter(&count, 1001, 600))
            .unwrap();
        assert_ne!(a.token.expose_secret(), b.token.expose_secret());
        cache
            .get_or_mint("carol", 1002, minter(&count, 1002, 600))
            .unwrap();
        assert_eq!(cache.len(), 2);
        // alice's token expired soonest, so she was the one dropped.
        assert_eq!(
            cache
                .get_or_mint("bob", 1003, minter(&count, 1003, 600))
                .unwrap()
                .token
                .expose_secret(),
            "jwt-2"
        );
        assert_eq!(
            cache
                .get_or_mint("alice", 1004, minter(&count, 1004, 600))
                .unwrap()
                .token
                .expose_secret(),
            "jwt-4"
        );
    }

    #[test]
    fn a_failed_mint_keeps_nothing() {
        let cache = TokenCache::new(2);
        let r: Result<_, &str> = cache.get_or_mint("alice", 1000, || Err("no grant"));
        assert!(r.is_err());
        assert!(cache.is_empty());
    }
}
