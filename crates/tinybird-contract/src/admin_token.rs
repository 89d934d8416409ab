//! The workspace admin token: the HS256 signing key, and (in its payload) the workspace id.
//!
//! Its shape is `p.<base64url JSON>.<signature>` with the workspace id as `u`. An explicit
//! workspace id in config wins over the one read here. The demo generates a key of the same
//! shape so that everything that reads real keys also reads demo ones.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The admin token, kept secret; the workspace id is read from it when it has one.
#[derive(Clone)]
pub struct AdminToken {
    secret: SecretString,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a signing key cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminTokenError {
    /// Empty or whitespace.
    #[error("the signing key is empty: set it to the workspace admin token (it starts with `p.`)")]
    Empty,
    /// Leading/trailing whitespace would silently change the HMAC key.
    #[error(
        "the signing key has leading or trailing whitespace (a stray newline in the file?): remove it"
    )]
    Whitespace,
}

#[derive(Deserialize)]
struct Payload {
    u: Option<String>,
}

impl AdminToken {
    /// Wraps a key as given. Any non-empty string is accepted (Tinybird signs with its bytes);
    /// whitespace at either end is refused because it is almost always a copy-paste accident.
    pub fn new(key: impl Into<String>) -> Result<Self, AdminTokenError> {
        let key: String = key.into();
        if key.trim().is_empty() {
            return Err(AdminTokenError::Empty);
        }
        if key.trim() != key {
            return Err(AdminTokenError::Whitespace);
        }
        Ok(Self {
            secret: SecretString::from(key),
        })
    }

    /// Generates a random demo key shaped like a real one, for `workspace_id`.
    pub fn generate(workspace_id: &str) -> Self {
        let payload = serde_json::json!({ "u": workspace_id, "id": uuid::Uuid::new_v4().to_string(), "host": "local" });
        let mut sig = [0u8; 32];
        rand::rng().fill_bytes(&mut sig);
        let key = format!(
            "p.{}.{}",
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        );
        Self {
            secret: SecretString::from(key),
        }
    }

    /// The workspace id carried in the token's payload (`u`), if it has that shape.
    pub fn workspace_id(&self) -> Option<String> {
        let mut parts = self.secret.expose_secret().split('.');
        if parts.next() != Some("p") {
            return None;
        }
        let payload = URL_SAFE_NO_PAD
            .decode(parts.next()?.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice::<Payload>(&payload).ok()?.u
    }

    /// The key as a secret, for signing.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The key's bytes, for verifying (HS256 key material).
    pub fn bytes(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }

    /// Constant-time comparison with a presented token (the admin token reads everything).
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.bytes().ct_eq(presented.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_has_the_real_shape_and_carries_the_workspace() {
        let key = AdminToken::generate("3f1d-ws");
        assert!(key.secret().expose_secret().starts_with("p."));
        assert_eq!(key.workspace_id().as_deref(), Some("3f1d-ws"));
        assert!(key.matches(key.secret().expose_secret()));
        assert!(!key.matches("p.other"));
        assert_eq!(format!("{key:?}"), "AdminToken(<redacted>)");
    }

    #[test]
    fn odd_keys_are_refused_or_have_no_workspace() {
        assert_eq!(AdminToken::new("").unwrap_err(), AdminTokenError::Empty);
        assert_eq!(
            AdminToken::new("p.abc\n").unwrap_err(),
            AdminTokenError::Whitespace
        );
        assert_eq!(
            AdminToken::new("not-a-p-token").unwrap().workspace_id(),
            None
        );
    }
}
