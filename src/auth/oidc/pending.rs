//! A login in progress, kept in the browser rather than on the server: a signed cookie that
//! lives ten minutes.
//!
//! `GET /auth/{provider}/login` needs no session, so anyone may call it as often as they
//! like; keeping its `state` and `nonce` server-side would let any client fill the session
//! store. Here nothing is stored: the cookie carries the provider, `state`, `nonce`,
//! `return_to` and the start time, signed with HMAC-SHA256, and the PKCE verifier never leaves
//! the server (it is derived from `state` with the same key). Every instance derives the key
//! from the same secret, so a callback may land on any of them.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// How long a login may take, from the redirect to the provider to the callback.
pub const PENDING_TTL_SECS: i64 = 600;

/// What the cookie says about a login in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The provider's name.
    pub provider: String,
    /// The `state` sent to the provider (CSRF defence of the callback).
    pub state: String,
    /// The `nonce` sent to the provider (binds the ID token to this login).
    pub nonce: String,
    /// Where to go after the login.
    pub return_to: String,
    /// Unix seconds when the login started.
    pub started: i64,
}

/// Why a pending-login cookie cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not made by this deployment, or altered.
    Forged,
    /// Older than [`PENDING_TTL_SECS`].
    Expired,
}

/// Seals and opens pending-login cookies, and derives PKCE verifiers, with one key.
pub struct PendingSeal {
    key: hmac::Key,
}

impl std::fmt::Debug for PendingSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSeal(<key>)")
    }
}

/// Separates this key from any other use of the same secret.
const LABEL: &[u8] = b"tinybird-bff oidc pending login v1";

impl PendingSeal {
    /// A seal keyed by HMAC-SHA256(`secret`, label): the same on every instance that shares
    /// `secret`.
    pub fn derive(secret: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, LABEL);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The cookie value: base64url(JSON) `.` base64url(HMAC).
    pub fn seal(&self, pending: &Pending) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(pending).expect("plain strings"));
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The login `value` describes, if this deployment sealed it less than
    /// [`PENDING_TTL_SECS`] before `now`.
    pub fn open(&self, value: &str, now: i64) -> Result<Pending, Refused> {
        let (body, tag) = value.split_once('.').ok_or(Refused::Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Forged)?;
        hmac::verify(&self.key, body.as_bytes(), &tag).map_err(|_| Refused::Forged)?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| Refused::Forged)?;
        let pending: Pending = serde_json::from_slice(&json).map_err(|_| Refused::Forged)?;
        if now.saturating_sub(pending.started) > PENDING_TTL_SECS || pending.started > now + 60 {
            return Err(Refused::Expired);
        }
        Ok(pending)
    }

    /// The PKCE verifier of the login whose `state` this is (43 base64url characters, as
    /// RFC 7636 asks); never sent to the browser.
    pub fn verifier(&self, state: &str) -> String {
        let mut input = b"pkce ".to_vec();
        input.extend_from_slice(state.as_bytes());
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &input).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(started: i64) -> Pending {
        Pending {
            provider: "dex".into(),
            state: "s".repeat(43),
            nonce: "n".repeat(43),
            return_to: "/dash".into(),
            started,
        }
    }

    #[test]
    fn a_sealed_login_opens_on_any_instance_with_the_same_secret_and_nowhere_else() {
        let (a, b, other) = (
            PendingSeal::derive(b"secret"),
            PendingSeal::derive(b"secret"),
            PendingSeal::derive(b"another"),
        );
        let cookie = a.seal(&pending(1_000));
        assert_eq!(b.open(&cookie, 1_100), Ok(pending(1_000)));
        assert_eq!(other.open(&cookie, 1_100), Err(Refused::Forged));
        assert_eq!(a.verifier("st"), b.verifier("st"));
        assert_ne!(a.verifier("st"), other.verifier("st"));
        assert_eq!(a.verifier("st").len(), 43);
    }

    #[test]
    fn an_altered_or_old_login_is_refused() {
        let seal = PendingSeal::derive(b"secret");
        let cookie = seal.seal(&pending(1_000));
        let (body, tag) = cookie.split_once('.').unwrap();
        let mut forged = pending(1_000);
        forged.return_to = "//evil.example".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            seal.open(&format!("{forged_body}.{tag}"), 1_100),
            Err(Refused::Forged)
        );
        assert_eq!(seal.open(body, 1_100), Err(Refused::Forged));
        assert_eq!(seal.open("", 1_100), Err(Refused::Forged));
        assert_eq!(seal.open(&cookie, 1_000 + 601), Err(Refused::Expired));
    }
}
