//! What an API key looks like on the wire, and how it is checked (pure, no I/O).
//!
//! A key is `tbk_live_<id>_<secret>`: `<id>` is 12 lowercase hex characters, public (it names
//! the key in lists, audit lines and URLs, like an AWS access key id); `<secret>` is 256 random
//! bits from the operating system's CSPRNG, base64url without padding (43 characters). Only
//! SHA-256 of the secret is stored. Checking a key finds the record by its id and compares the
//! SHA-256 of the presented secret with the stored one in constant time
//! ([`subtle::ConstantTimeEq`]), so neither the database lookup nor the comparison depends on
//! how much of the secret an attacker guessed right. SHA-256 (not a slow password hash) fits:
//! the secret is 256 random bits, so there is nothing to brute-force offline.
//!
//! [`Secret`] holds a presented or new secret; it has no `Debug` or `Display` that shows it.

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with: `tbk_` (a Tinybird BFF key) and `live_`.
pub const PREFIX: &str = "tbk_live_";
/// Hex characters of a key id.
pub const ID_LEN: usize = 12;
/// Characters of the base64url secret (32 bytes).
const SECRET_LEN: usize = 43;

/// SHA-256 of a secret: what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

impl SecretHash {
    /// Hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// From stored hex; `None` when it is not 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }

    /// Whether `other` is this hash, in time independent of where they differ.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A key's secret part (never printed).
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// SHA-256 of the secret.
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// A freshly made key: its id, and the full key text shown once to whoever created it.
pub struct NewSecret {
    /// The key id.
    pub id: String,
    /// `tbk_live_<id>_<secret>`: the only time it exists outside the caller's hands.
    pub key: String,
    /// SHA-256 of the secret part.
    pub hash: SecretHash,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

/// A new random key id.
pub fn new_id() -> String {
    hex::encode(random::<{ ID_LEN / 2 }>())
}

/// A new secret for key `id` (a new key, or a roll of an existing one).
pub fn new_secret(id: &str) -> NewSecret {
    let secret = Secret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>()));
    NewSecret {
        id: id.to_owned(),
        key: format!("{PREFIX}{id}_{}", secret.0),
        hash: secret.hash(),
    }
}

/// The part of a key shown in lists: `tbk_live_` and the first 4 characters of the id.
pub fn display_prefix(id: &str) -> String {
    format!("{PREFIX}{}", &id[..id.len().min(4)])
}

/// Whether a bearer token is meant to be an API key of this BFF (it starts with `tbk_`), so it
/// is judged as one (and never sent on to an identity provider).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with("tbk_")
}

/// Splits a presented key into its id and secret; `None` when it is not shaped like one.
pub fn parse(key: &str) -> Option<(&str, Secret)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then(|| (id, Secret(secret.to_owned())))
}

/// Whether `text` is a key id (what routes and the CLI take to name a key).
pub fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_parses_back_to_its_id_and_hash() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        let made = new_secret(&id);
        assert!(made.key.starts_with(&format!("tbk_live_{id}_")));
        assert_eq!(made.key.len(), PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        let (parsed, secret) = parse(&made.key).expect("parses");
        assert_eq!(parsed, id);
        assert!(secret.hash().matches(&made.hash));
        assert!(!format!("{made:?}{secret:?}").contains(&made.key[22..]));
        assert_eq!(display_prefix(&id), format!("tbk_live_{}", &id[..4]));
    }

    #[test]
    fn secrets_are_random_and_another_secret_never_matches() {
        let (a, b) = (new_secret("3f9a00000000"), new_secret("3f9a00000000"));
        assert_ne!(a.key, b.key);
        assert!(!a.hash.matches(&b.hash));
        assert_eq!(SecretHash::from_hex(&a.hash.to_hex()), Some(a.hash));
        assert_eq!(SecretHash::from_hex("zz"), None);
    }

    #[test]
    fn anything_not_shaped_like_a_key_is_refused() {
        let good = new_secret("3f9a1c2b4d5e").key;
        assert!(parse(&good).is_some());
        for bad in [
            "",
            "tbk_live_",
            "tbk_test_3f9a1c2b4d5e_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "tbk_live_3F9A1C2B4D5E_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "tbk_live_3f9a1c2b4d5e-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "tbk_live_3f9a1c2b4d5e_short",
            "tbk_live_3f9a1c2b4d5e_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
            "tbk_live_3f9a1c2b4d5é_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(
            parse(&good[..good.len() - 1]).is_none(),
            "one character short"
        );
        assert!(looks_like_key("tbk_anything") && !looks_like_key("eyJhbGciOi"));
        assert!(!is_id("3f9a") && !is_id("3f9a1c2b4d5g"));
    }
}
