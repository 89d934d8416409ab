//! Using a key: from `Authorization: Bearer tbk_live_...` to its record, or a 401 that says
//! which of unknown, revoked or expired it is (never whose it was).
//!
//! Records are cached per instance, each trusted for at most `keys.revocation_delay` after the
//! store last confirmed it; a background task re-reads every cached key in one query twice per
//! delay. So a key revoked on any instance is refused everywhere within the delay (1 s by
//! default), with one query per half-delay per instance instead of one per request. When the
//! store cannot be read, entries run out and key requests fail closed (503): a revocation the
//! instance cannot see is never ignored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Keys;
use super::record::{KeyRecord, Status};
use super::secret;
use crate::error::AppError;

/// A cached record and when the store last confirmed it.
#[derive(Debug, Clone)]
pub(super) struct Cached {
    pub(super) key: Arc<KeyRecord>,
    pub(super) confirmed: Instant,
    pub(super) used: Instant,
}

/// Cached keys unused for this long are dropped (and re-read at their next use).
const IDLE: Duration = Duration::from_secs(60);

/// Why a presented key is refused, for the 401 and the audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a key of this BFF, or a wrong secret.
    Unknown,
    /// Revoked.
    Revoked,
    /// Past its expiry.
    Expired,
    /// A secret replaced by a roll whose grace period is over.
    Rolled,
}

impl Refusal {
    /// For the audit line.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
            Refusal::Rolled => "rolled",
        }
    }

    fn message(self, prefix: &str) -> String {
        match self {
            Refusal::Unknown => "unknown API key: check the key you sent (tbk_live_<id>_<secret>, as shown once at its creation)".into(),
            Refusal::Revoked => format!("API key {prefix}… is revoked: ask a tenant admin for a new key"),
            Refusal::Expired => format!("API key {prefix}… has expired: ask a tenant admin for a new key"),
            Refusal::Rolled => format!("API key {prefix}…: this secret was replaced by a roll and its grace period is over; use the new secret"),
        }
    }
}

/// The pure check of a presented secret's hash against a record at `now`.
pub fn judge(key: &KeyRecord, presented: &secret::SecretHash, now: i64) -> Result<(), Refusal> {
    let current = key.secret_hash.matches(presented);
    let previous = key
        .previous
        .map(|(hash, until)| (hash.matches(presented), until));
    match (current, previous) {
        (false, Some((true, until))) if until <= now => return Err(Refusal::Rolled),
        (false, Some((true, _))) => {}
        (false, _) => return Err(Refusal::Unknown),
        (true, _) => {}
    }
    match key.status(now) {
        Status::Active => Ok(()),
        Status::Revoked => Err(Refusal::Revoked),
        Status::Expired => Err(Refusal::Expired),
    }
}

impl Keys {
    /// The record behind a presented key, or the 401 saying why not (a 503 when the store
    /// cannot be read). Refusals of a key-shaped value are audited with its id and prefix.
    pub async fn authenticate(
        &self,
        presented: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<KeyRecord>, AppError> {
        let refuse = |id: Option<&str>, why: Refusal| {
            let prefix = id.map_or_else(|| "tbk_…".to_owned(), secret::display_prefix);
            self.audit.key_refused(id, &prefix, why.as_str(), client);
            self.metrics.key_refused(why.as_str());
            AppError::Unauthorized(why.message(&prefix))
        };
        let Some((id, secret)) = secret::parse(presented) else {
            return Err(refuse(None, Refusal::Unknown));
        };
        let Some(key) = self.lookup(id).await? else {
            return Err(refuse(Some(id), Refusal::Unknown));
        };
        judge(&key, &secret.hash(), now).map_err(|why| refuse(Some(id), why))?;
        Ok(key)
    }

    /// The record of `id`: cached while confirmed within the revocation delay, else read.
    async fn lookup(&self, id: &str) -> Result<Option<Arc<KeyRecord>>, AppError> {
        let fresh = self.settings.revocation_delay;
        {
            let mut cache = self.cache();
            if let Some(entry) = cache.get_mut(id)
                && entry.confirmed.elapsed() < fresh
            {
                entry.used = Instant::now();
                return Ok(Some(Arc::clone(&entry.key)));
            }
        }
        let asked = Instant::now();
        let found = self.store.get(id).await.map_err(|e| self.store_down(e))?;
        let mut cache = self.cache();
        match found {
            Some(key) => {
                let key = Arc::new(key);
                let entry = Cached {
                    key: Arc::clone(&key),
                    confirmed: asked,
                    used: asked,
                };
                cache.insert(id.to_owned(), entry);
                Ok(Some(key))
            }
            None => {
                cache.remove(id);
                Ok(None)
            }
        }
    }

    /// Puts a record this instance just changed in the cache at once.
    pub(super) fn remember(&self, key: &KeyRecord) {
        let now = Instant::now();
        let entry = Cached {
            key: Arc::new(key.clone()),
            confirmed: now,
            used: now,
        };
        self.cache().insert(key.id.clone(), entry);
    }

    /// Re-reads every cached key in one query; keys gone from the store leave the cache.
    pub(super) async fn refresh(&self) {
        let ids: Vec<String> = {
            let mut cache = self.cache();
            cache.retain(|_, e| e.used.elapsed() < IDLE);
            cache.keys().cloned().collect()
        };
        if ids.is_empty() {
            return;
        }
        let asked = Instant::now();
        match self.store.get_many(&ids).await {
            Ok(found) => {
                self.store_up();
                let mut by_id: HashMap<String, KeyRecord> =
                    found.into_iter().map(|k| (k.id.clone(), k)).collect();
                let mut cache = self.cache();
                cache.retain(|id, entry| match by_id.remove(id) {
                    Some(key) => {
                        entry.key = Arc::new(key);
                        entry.confirmed = entry.confirmed.max(asked);
                        true
                    }
                    None => !ids.contains(id),
                });
            }
            Err(e) => {
                self.store_down(e);
            }
        }
    }

    /// Runs [`Self::refresh`] twice per revocation delay while the service lives.
    pub(super) fn start_refresher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.settings.revocation_delay / 2;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(keys) = weak.upgrade() else { break };
                keys.refresh().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::KeyScopes;

    fn key(now: i64) -> (KeyRecord, secret::NewSecret) {
        let made = secret::new_secret("3f9a1c2b4d5e");
        let key = KeyRecord {
            id: made.id.clone(),
            tenant: "acme".into(),
            name: "export".into(),
            secret_hash: made.hash,
            previous: None,
            scopes: KeyScopes::default(),
            attributes: Default::default(),
            expires_at: None,
            rps: None,
            quota: None,
            created_at: now,
            created_by: "alice".into(),
            last_used_at: None,
            revoked: None,
            rolled_at: None,
        };
        (key, made)
    }

    fn hash_of(made: &secret::NewSecret) -> secret::SecretHash {
        secret::parse(&made.key).unwrap().1.hash()
    }

    #[test]
    fn the_right_secret_passes_until_revoked_or_expired() {
        let (mut key, made) = key(1_000);
        let good = hash_of(&made);
        assert_eq!(judge(&key, &good, 1_000), Ok(()));
        let other = hash_of(&secret::new_secret(&key.id));
        assert_eq!(judge(&key, &other, 1_000), Err(Refusal::Unknown));
        key.expires_at = Some(2_000);
        assert_eq!(judge(&key, &good, 1_999), Ok(()));
        assert_eq!(judge(&key, &good, 2_000), Err(Refusal::Expired));
        key.revoked = Some((1_500, "alice".into()));
        assert_eq!(judge(&key, &good, 1_600), Err(Refusal::Revoked));
        assert_eq!(
            judge(&key, &other, 1_600),
            Err(Refusal::Unknown),
            "a wrong secret learns nothing"
        );
    }

    #[test]
    fn after_a_roll_the_old_secret_works_until_the_grace_ends() {
        let (mut key, old) = key(1_000);
        let new = secret::new_secret(&key.id);
        key.previous = Some((key.secret_hash, 1_600));
        key.secret_hash = new.hash;
        assert_eq!(judge(&key, &hash_of(&new), 1_700), Ok(()));
        assert_eq!(judge(&key, &hash_of(&old), 1_599), Ok(()));
        assert_eq!(judge(&key, &hash_of(&old), 1_600), Err(Refusal::Rolled));
        key.revoked = Some((1_100, "bob".into()));
        assert_eq!(judge(&key, &hash_of(&old), 1_200), Err(Refusal::Revoked));
    }

    #[test]
    fn messages_name_the_key_never_its_tenant() {
        let all = [
            Refusal::Unknown,
            Refusal::Revoked,
            Refusal::Expired,
            Refusal::Rolled,
        ];
        let messages: std::collections::BTreeSet<String> =
            all.iter().map(|why| why.message("tbk_live_3f9a")).collect();
        assert_eq!(messages.len(), all.len(), "each says which: {messages:?}");
        assert!(messages.iter().all(|m| !m.contains("acme")), "{messages:?}");
    }
}
