//! The audit lines of keys: `key.created`, `key.rolled`, `key.revoked` (who did it, the key's
//! id, prefix and tenant) and `key.refused` (a failed use: the id and prefix when the value was
//! shaped like a key, the reason, the client). Never a secret, nor its hash.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::json;

use super::record::KeyRecord;
use super::secret::display_prefix;
use crate::audit::Audit;
use crate::user::User;

/// Who changed a key.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in user (a tenant or platform admin).
    User(&'a User),
    /// The operator, from the CLI, with the name they gave (`--by`).
    Operator(&'a str),
}

impl Actor<'_> {
    /// How the key records them: a user id, or `operator:<name>`.
    pub fn name(&self) -> String {
        match self {
            Actor::User(u) => u.id.clone(),
            Actor::Operator(name) => format!("operator:{name}"),
        }
    }

    fn user(&self) -> Option<&User> {
        match self {
            Actor::User(u) => Some(u),
            Actor::Operator(_) => None,
        }
    }
}

#[derive(Serialize)]
struct KeyFields<'a> {
    /// Set for the operator (a user's id is the line's `user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
    key_id: &'a str,
    prefix: String,
    key_tenant: &'a str,
    #[serde(flatten)]
    more: serde_json::Value,
}

fn fields<'a>(by: &Actor<'_>, key: &'a KeyRecord, more: serde_json::Value) -> KeyFields<'a> {
    KeyFields {
        operator: matches!(by, Actor::Operator(_)).then(|| by.name()),
        key_id: &key.id,
        prefix: display_prefix(&key.id),
        key_tenant: &key.tenant,
        more,
    }
}

impl Audit {
    /// `key.created`: its name, scopes and limits.
    pub fn key_created(&self, by: &Actor<'_>, key: &KeyRecord) {
        let more = json!({
            "name": key.name,
            "pipes": key.scopes.pipes,
            "datasources": key.scopes.datasources,
            "expires_at": key.expires_at,
            "rps": key.rps,
            "quota": key.quota,
        });
        self.event("key.created", by.user(), fields(by, key, more));
    }

    /// `key.rolled`: until when the previous secret still works.
    pub fn key_rolled(&self, by: &Actor<'_>, key: &KeyRecord) {
        let until = key.previous.map(|p| p.1);
        let more = json!({ "previous_valid_until": until });
        self.event("key.rolled", by.user(), fields(by, key, more));
    }

    /// `key.revoked`.
    pub fn key_revoked(&self, by: &Actor<'_>, key: &KeyRecord) {
        self.event("key.revoked", by.user(), fields(by, key, json!({})));
    }

    /// `key.refused`: a request with a key that did not pass (`reason`: unknown, revoked,
    /// expired, rolled). `id` is the id it named, when it was shaped like a key.
    pub fn key_refused(
        &self,
        id: Option<&str>,
        prefix: &str,
        reason: &str,
        client: Option<IpAddr>,
    ) {
        let line = json!({
            "key_id": id,
            "prefix": prefix,
            "reason": reason,
            "client": client.map(|c| c.to_string()),
        });
        self.event("key.refused", None, line);
    }
}
