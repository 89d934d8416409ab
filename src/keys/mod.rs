//! Tenant API keys: programmatic access for the app's customers, from their own servers and
//! scripts, where there is no browser session (docs/api-keys.md).
//!
//! - [`secret`]: the key's shape, its random secret, SHA-256 and the constant-time check (pure);
//! - [`record`]: a key as stored and as shown;
//! - [`rules`]: who manages which keys, what a key may be given, who a key acts as (pure);
//! - [`store`]: the durable store, SQLite or PostgreSQL, with its migrations;
//! - [`verify`]: from a presented key to its record, cached within the revocation delay;
//! - [`meter`]: rps limit, quota, usage and last use, written down in batches;
//! - [`caller`]: a request made with a key (who, what it reads, its token);
//! - [`audit`]: the audit lines; [`config`]: `[keys]`.
//!
//! [`Keys`] is the service: the HTTP layer and the CLI manage keys through it, and the
//! request path asks it who a key is ([`Keys::authenticate`]), whether it may go on
//! ([`Keys::admit`]) and what it reads ([`Keys::access`]).

pub mod audit;
pub mod caller;
pub mod config;
pub mod meter;
pub mod record;
pub mod rules;
pub mod secret;
pub mod store;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::AppError;
use crate::grants::{Access, Grants};
use crate::metrics::Metrics;
use crate::tinybird::gcra::MemoryBuckets;
use crate::user::User;
pub use audit::Actor;
pub use config::{KeysConfig, KeysSettings, StoreSettings};
use record::{KeyRecord, KeyScopes, KeyView, Quota};
use rules::Authority;
use store::{KeyStore, StoreError};

/// What a new key should be.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Its name.
    pub name: String,
    /// Its tenant (default: the creator's; required from the CLI).
    pub tenant: Option<String>,
    /// What it may read.
    pub scopes: KeyScopes,
    /// When it stops working (Unix seconds).
    pub expires_at: Option<i64>,
    /// Requests per second.
    pub rps: Option<u32>,
    /// Its quota.
    pub quota: Option<Quota>,
    /// The attributes it acts with (platform admins and the operator only; default: the
    /// creator's).
    pub attributes: Option<BTreeMap<String, String>>,
}

/// A key just created or rolled: its view and the full key, shown this once.
#[derive(Debug)]
pub struct Issued {
    /// The key.
    pub view: KeyView,
    /// `tbk_live_...`.
    pub secret: String,
}

/// The key service; one per running BFF (or CLI command).
pub struct Keys {
    settings: KeysSettings,
    store: Arc<dyn KeyStore>,
    audit: Arc<crate::audit::Audit>,
    metrics: Metrics,
    cache: Mutex<HashMap<String, verify::Cached>>,
    meter: Mutex<meter::Meter>,
    /// Per-key rps buckets (this instance).
    buckets: MemoryBuckets,
    /// Whether the last store call failed (logged once per outage, not per request).
    down: AtomicBool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("store", &self.store.kind())
            .finish()
    }
}

impl Keys {
    /// The service over the configured store (a SQLite file is opened now, PostgreSQL at
    /// first use); [`Keys::migrate`] must run before anything else touches the store.
    pub fn new(
        settings: KeysSettings,
        audit: Arc<crate::audit::Audit>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, StoreError> {
        let store: Arc<dyn KeyStore> = match &settings.store {
            StoreSettings::Sqlite(path) => Arc::new(store::sqlite::Sqlite::open(path)?),
            StoreSettings::Postgres { url, pool } => Arc::new(
                store::postgres::Postgres::new(
                    secrecy::ExposeSecret::expose_secret(url),
                    *pool,
                    settings.timeout,
                )
                .map_err(StoreError::Unavailable)?,
            ),
        };
        Ok(Arc::new(Self {
            settings,
            store,
            audit,
            metrics,
            cache: Mutex::new(HashMap::new()),
            meter: Mutex::new(meter::Meter::default()),
            buckets: MemoryBuckets::new(),
            down: AtomicBool::new(false),
        }))
    }

    /// Applies the store's pending migrations (at start: the BFF does not serve without them).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let applied = self.store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(store = self.store.kind(), versions = ?applied, "key store migrated");
        }
        Ok(())
    }

    /// [`Keys::new`], then [`Keys::migrate`]: what the CLI uses.
    pub async fn open(
        settings: KeysSettings,
        audit: Arc<crate::audit::Audit>,
        metrics: Metrics,
    ) -> Result<Arc<Self>, StoreError> {
        let keys = Self::new(settings, audit, metrics)?;
        keys.migrate().await?;
        Ok(keys)
    }

    /// Starts re-reading cached keys and writing usage down; both end with the service.
    pub fn start(self: &Arc<Self>) {
        self.start_refresher();
        self.start_flusher();
    }

    /// Writes the last counts down (on shutdown).
    pub async fn close(&self) {
        self.flush(chrono::Utc::now().timestamp()).await;
    }

    /// The settings.
    pub fn settings(&self) -> &KeysSettings {
        &self.settings
    }

    /// Whether the store answers (`check`, `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, verify::Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn meter(&self) -> MutexGuard<'_, meter::Meter> {
        self.meter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A store failure as the caller sees it (503, or a clear 4xx), logged once per outage.
    fn store_down(&self, e: StoreError) -> AppError {
        match e {
            StoreError::TooManyKeys { .. } => AppError::Forbidden(e.to_string()),
            e => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(store = self.store.kind(), error = %e, "key store unavailable");
                }
                AppError::Unavailable(
                    "the key store is unavailable; API keys cannot be checked or changed now, try again shortly".into(),
                )
            }
        }
    }

    fn store_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(store = self.store.kind(), "key store reachable again");
        }
    }

    /// Who a key acts as and what it reads now (see [`rules`]).
    pub fn access(
        &self,
        grants: &Grants,
        key: &KeyRecord,
    ) -> Result<(User, Arc<Access>), AppError> {
        let user = rules::principal(key, &self.settings.roles);
        let granted = grants
            .evaluate_cached(&user)
            .map_err(|e| rules::no_grant(&key.tenant, &self.settings.roles, &e))?;
        let access = rules::narrowed(&granted, &key.scopes)?;
        Ok((user, Arc::new(access)))
    }

    /// What `user` may give a key of their own tenant (the page's create form); empty when
    /// they have no tenant or the grants give its keys nothing.
    pub fn grantable(&self, grants: &Grants, user: &User) -> KeyScopes {
        let Some(tenant) = &user.tenant else {
            return KeyScopes::default();
        };
        let principal = User {
            id: record::principal_id("000000000000"),
            tenant: Some(tenant.clone()),
            roles: self.settings.roles.clone(),
            attributes: user.attributes.clone(),
        };
        match (grants.evaluate(&principal), grants.evaluate_cached(user)) {
            (Ok(key), Ok(own)) => rules::grantable(&key, &own),
            _ => KeyScopes::default(),
        }
    }

    /// Creates a key for `by` (see [`rules`] for what it may be given). `grants` are the
    /// grants in force.
    pub async fn create(
        &self,
        grants: &Grants,
        by: Actor<'_>,
        new: NewKey,
        now: i64,
    ) -> Result<Issued, AppError> {
        let name = rules::check_name(&new.name)?;
        let scopes = new.scopes.normalized();
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::BadRequest(
                "expires_at is in the past: give a future time".into(),
            ));
        }
        if new.rps == Some(0) || new.quota.is_some_and(|q| q.requests == 0) {
            return Err(AppError::BadRequest(
                "rps and quota.requests are at least 1 (leave them out for no limit)".into(),
            ));
        }
        let (authority, creator) = match by {
            Actor::User(u) => (rules::authority(u, &self.settings.admin_role)?, Some(u)),
            Actor::Operator(_) => (Authority::Platform, None),
        };
        let tenant = new
            .tenant
            .clone()
            .or_else(|| creator.and_then(|u| u.tenant.clone()))
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| AppError::BadRequest("name the key's tenant".into()))?;
        if !authority.covers(&tenant) {
            return Err(AppError::Forbidden(format!(
                "you manage the keys of your own tenant only, not {tenant}"
            )));
        }
        if new.attributes.is_some() && authority != Authority::Platform {
            return Err(AppError::Forbidden("only platform admins and the operator set a key's attributes; your key takes yours".into()));
        }
        let attributes = new
            .attributes
            .or_else(|| creator.map(|u| u.attributes.clone()))
            .unwrap_or_default();
        let made = secret::new_secret(&secret::new_id());
        let key = KeyRecord {
            id: made.id.clone(),
            tenant,
            name,
            secret_hash: made.hash,
            previous: None,
            scopes,
            attributes,
            expires_at: new.expires_at,
            rps: new.rps,
            quota: new.quota,
            created_at: now,
            created_by: by.name(),
            last_used_at: None,
            revoked: None,
            rolled_at: None,
        };
        let principal = rules::principal(&key, &self.settings.roles);
        let granted = grants
            .evaluate(&principal)
            .map_err(|e| rules::no_grant(&key.tenant, &self.settings.roles, &e))?;
        let own = match creator {
            Some(u) => Some(grants.evaluate_cached(u).map_err(AppError::from)?),
            None => None,
        };
        let same_tenant = creator.is_some_and(|u| u.tenant.as_deref() == Some(key.tenant.as_str()));
        rules::check_scopes(
            &key.scopes,
            &granted,
            own.as_deref().map(|a| (a, same_tenant)),
        )?;
        self.store
            .insert(&key, self.settings.max_keys_per_tenant)
            .await
            .map_err(|e| self.store_down(e))?;
        self.audit.key_created(&by, &key);
        self.metrics.key_changed("created");
        Ok(Issued {
            view: key.view(now),
            secret: made.key,
        })
    }

    /// The key `id` if `authority` covers its tenant; else the same 404 as a missing key, so a
    /// tenant admin cannot learn that another tenant's key exists.
    async fn owned(&self, authority: &Authority, id: &str) -> Result<KeyRecord, AppError> {
        let missing = || AppError::NotFound(format!("no API key {id} among the keys you manage"));
        if !secret::is_id(id) {
            return Err(missing());
        }
        match self.store.get(id).await.map_err(|e| self.store_down(e))? {
            Some(key) if authority.covers(&key.tenant) => Ok(key),
            _ => Err(missing()),
        }
    }

    fn authority_of(&self, by: &Actor<'_>) -> Result<Authority, AppError> {
        match by {
            Actor::User(u) => rules::authority(u, &self.settings.admin_role),
            Actor::Operator(_) => Ok(Authority::Platform),
        }
    }

    /// Keys `by` manages: their tenant's (a platform admin's: `tenant`, or every tenant's).
    pub async fn list(
        &self,
        by: &Actor<'_>,
        tenant: Option<&str>,
        now: i64,
    ) -> Result<Vec<(KeyView, meter::KeyUsage)>, AppError> {
        let tenant = self.authority_of(by)?.tenant_to_list(tenant)?;
        let keys = self
            .store
            .list(tenant.as_deref())
            .await
            .map_err(|e| self.store_down(e))?;
        let mut usage = self.usage_of(&keys, now).await?;
        Ok(keys
            .iter()
            .map(|k| {
                let mut view = k.view(now);
                view.last_used_at = view.last_used_at.max(self.unwritten_last_use(&k.id));
                (view, usage.remove(&k.id).unwrap_or_default())
            })
            .collect())
    }

    /// Revokes key `id`: refused everywhere within `keys.revocation_delay`.
    pub async fn revoke(&self, by: Actor<'_>, id: &str, now: i64) -> Result<KeyView, AppError> {
        let authority = self.authority_of(&by)?;
        let key = self.owned(&authority, id).await?;
        if key.revoked.is_some() {
            return Ok(key.view(now));
        }
        let key = self
            .store
            .revoke(id, now, &by.name())
            .await
            .map_err(|e| self.store_down(e))?
            .ok_or_else(|| AppError::NotFound(format!("no API key {id}")))?;
        self.remember(&key);
        self.audit.key_revoked(&by, &key);
        self.metrics.key_changed("revoked");
        Ok(key.view(now))
    }

    /// Gives key `id` a new secret; the current one keeps working for `grace`.
    pub async fn roll(
        &self,
        by: Actor<'_>,
        id: &str,
        grace: Duration,
        now: i64,
    ) -> Result<Issued, AppError> {
        if grace > self.settings.max_grace {
            return Err(AppError::BadRequest(format!(
                "grace {} is longer than keys.max_grace ({})",
                humantime::format_duration(grace),
                humantime::format_duration(self.settings.max_grace)
            )));
        }
        let authority = self.authority_of(&by)?;
        let key = self.owned(&authority, id).await?;
        if key.status(now) != record::Status::Active {
            return Err(AppError::BadRequest(format!(
                "key {id} is {}: only an active key can be rolled",
                serde_json::to_value(key.status(now))
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            )));
        }
        let made = secret::new_secret(id);
        let until = now + grace.as_secs() as i64;
        let key = self
            .store
            .roll(id, made.hash, until, now)
            .await
            .map_err(|e| self.store_down(e))?
            .ok_or_else(|| AppError::BadRequest(format!("key {id} was revoked meanwhile")))?;
        self.remember(&key);
        self.audit.key_rolled(&by, &key);
        self.metrics.key_changed("rolled");
        Ok(Issued {
            view: key.view(now),
            secret: made.key,
        })
    }
}
