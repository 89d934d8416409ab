//! From an identity provider's claims to the [`User`] grants evaluate (pure, no I/O).
//!
//! Providers put the same facts in very different places: Keycloak nests roles under
//! `realm_access.roles`, Auth0 requires custom claims to be namespaced by a URL such as
//! `https://example.com/tenant`, Okta and Clerk use plain names, Entra ID uses `tid`. A
//! [`ClaimPath`] names a claim either way, and a [`ClaimsMapping`] turns a claims object into a
//! user the same way for ID tokens, userinfo answers and bearer access tokens.
//!
//! Path syntax: dots separate nesting levels, but a namespaced claim's own name contains dots
//! too, so at each level the *longest* run of segments that is an existing key wins:
//! `https://example.com/org.id` reads key `id` inside the claim `https://example.com/org`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::AppError;
use crate::user::User;

/// Why claims could not become a user. Shown to the user at login, so it names the claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsMapError {
    /// The id claim is absent or empty.
    #[error(
        "the identity provider sent no `{path}` claim to identify the user: map `claims.id` to a claim it sends"
    )]
    MissingId {
        /// The configured id path.
        path: String,
    },
    /// A claim has a shape that cannot hold the mapped value.
    #[error("claim `{path}` is {found}, but {wanted}: fix the provider's claim or the mapping")]
    WrongShape {
        /// The configured path.
        path: String,
        /// What the claim is (`an object`, `a list`, ...).
        found: &'static str,
        /// What the mapping needs.
        wanted: &'static str,
    },
}

/// A claim's location in a claims object (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClaimPath(String);

impl TryFrom<String> for ClaimPath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "{path:?} is not a claim path: write a claim name, e.g. \"tenant\", \"org.id\" or \"https://example.com/tenant\""
            ));
        }
        Ok(ClaimPath(path))
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ClaimPath {
    /// A path from text; fails on empty segments such as `"org..id"`.
    pub fn new(path: &str) -> Result<Self, String> {
        Self::try_from(path.to_owned())
    }

    /// The claim's value in `claims`, if present (JSON `null` counts as absent).
    pub fn lookup<'a>(&self, claims: &'a Value) -> Option<&'a Value> {
        let segments: Vec<&str> = self.0.split('.').collect();
        lookup_segments(claims, &segments).filter(|v| !v.is_null())
    }
}

/// Longest existing key first, so namespaced claims (`https://a.b/c`) resolve as one key.
fn lookup_segments<'a>(value: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    if segments.is_empty() {
        return Some(value);
    }
    let object = value.as_object()?;
    (1..=segments.len()).rev().find_map(|n| {
        let key = segments[..n].join(".");
        object
            .get(&key)
            .and_then(|child| lookup_segments(child, &segments[n..]))
    })
}

/// `[oidc.<name>.claims]`: where each user attribute comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsMapping {
    /// The user id (default `sub`). Becomes `user.id`: the JWT `name` and rate-limit bucket.
    #[serde(default = "default_id")]
    pub id: ClaimPath,
    /// The tenant, e.g. `org_id`, `org.id` or `https://example.com/tenant`.
    #[serde(default)]
    pub tenant: Option<ClaimPath>,
    /// Where roles come from: one path or several (their roles are combined).
    #[serde(default, deserialize_with = "one_or_many")]
    pub roles: Vec<ClaimPath>,
    /// Roles every user of this provider gets (for providers that send none, like Google).
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// The name to show (default `name`; absent is fine).
    #[serde(default = "default_display_name")]
    pub display_name: Option<ClaimPath>,
    /// Other attributes grants match on or render: `region = "https://example.com/region"`.
    #[serde(default)]
    pub attributes: BTreeMap<String, ClaimPath>,
}

impl Default for ClaimsMapping {
    fn default() -> Self {
        Self {
            id: default_id(),
            tenant: None,
            roles: Vec::new(),
            default_roles: Vec::new(),
            display_name: default_display_name(),
            attributes: BTreeMap::new(),
        }
    }
}

fn default_id() -> ClaimPath {
    ClaimPath("sub".into())
}

fn default_display_name() -> Option<ClaimPath> {
    Some(ClaimPath("name".into()))
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ClaimPath>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(ClaimPath),
        Many(Vec<ClaimPath>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(ps) => ps,
    })
}

/// A mapped user and the name to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedUser {
    /// What grants evaluate.
    pub user: User,
    /// `display_name` claim, if any.
    pub display_name: Option<String>,
}

impl ClaimsMapping {
    /// Attribute names this mapping can set, for config checks of grant templates.
    pub fn attribute_names(&self) -> impl Iterator<Item = &str> {
        self.attributes.keys().map(String::as_str)
    }

    /// Builds the user from `claims`. Absent optional claims leave the value unset (grants that
    /// need it then refuse, failing closed); claims of the wrong shape are errors.
    pub fn map(&self, claims: &Value) -> Result<MappedUser, ClaimsMapError> {
        let id = match self.id.lookup(claims) {
            Some(v) => scalar(v, &self.id, "the user id must be a string")?,
            None => None,
        }
        .ok_or_else(|| ClaimsMapError::MissingId {
            path: self.id.to_string(),
        })?;
        let tenant = match &self.tenant {
            Some(path) => match path.lookup(claims) {
                Some(v) => scalar(v, path, "a tenant is one string")?,
                None => None,
            },
            None => None,
        };
        let mut roles = self.default_roles.clone();
        for path in &self.roles {
            if let Some(v) = path.lookup(claims) {
                roles.extend(role_list(v, path)?);
            }
        }
        roles.sort();
        roles.dedup();
        let mut attributes = BTreeMap::new();
        for (name, path) in &self.attributes {
            if let Some(v) = path.lookup(claims)
                && let Some(s) = scalar(v, path, "an attribute holds one value")?
            {
                attributes.insert(name.clone(), s);
            }
        }
        let display_name = self
            .display_name
            .as_ref()
            .and_then(|p| p.lookup(claims))
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned);
        Ok(MappedUser {
            user: User {
                id,
                tenant,
                roles,
                attributes,
            },
            display_name,
        })
    }
}

/// A string, number or boolean as text; blank strings count as absent.
fn scalar(
    value: &Value,
    path: &ClaimPath,
    wanted: &'static str,
) -> Result<Option<String>, ClaimsMapError> {
    match value {
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(wrong_shape(other, path, wanted)),
    }
}

/// A list of strings, or one string of space- or comma-separated roles.
fn role_list(value: &Value, path: &ClaimPath) -> Result<Vec<String>, ClaimsMapError> {
    let wanted = "roles are a list of strings or one space-separated string";
    match value {
        Value::String(s) => Ok(s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_shape(other, path, wanted)),
            })
            .collect(),
        other => Err(wrong_shape(other, path, wanted)),
    }
}

fn wrong_shape(value: &Value, path: &ClaimPath, wanted: &'static str) -> ClaimsMapError {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    ClaimsMapError::WrongShape {
        path: path.to_string(),
        found,
        wanted,
    }
}

impl From<ClaimsMapError> for AppError {
    /// Claims that do not map to a user are a 403 that names the claim.
    fn from(e: ClaimsMapError) -> Self {
        AppError::Forbidden(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(toml_text: &str) -> ClaimsMapping {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn nested_and_namespaced_claims_resolve() {
        let claims = json!({
            "sub": "u1",
            "org": {"id": "acme"},
            "https://example.com/tenant": "globex",
            "https://example.com/org": {"id": 42},
            "realm_access": {"roles": ["viewer", "admin"]},
        });
        let at = |p: &str| ClaimPath::new(p).unwrap().lookup(&claims).cloned();
        assert_eq!(at("org.id"), Some(json!("acme")));
        assert_eq!(at("https://example.com/tenant"), Some(json!("globex")));
        assert_eq!(at("https://example.com/org.id"), Some(json!(42)));
        assert_eq!(at("realm_access.roles.0"), None, "no array indexing");
        assert_eq!(at("org.name"), None);
        assert!(ClaimPath::new("org..id").is_err());
        assert!(ClaimPath::new("").is_err());
    }

    #[test]
    fn keycloak_style_claims_become_a_user() {
        let m = mapping(
            r#"
            tenant = "org.id"
            roles = ["realm_access.roles", "resource_access.bff.roles"]
            default_roles = ["viewer"]
            [attributes]
            region = "https://example.com/region"
            plan = "plan"
            "#,
        );
        let mapped = m
            .map(&json!({
                "sub": "0b7c", "name": "Alice", "org": {"id": "acme"},
                "realm_access": {"roles": ["admin", "viewer"]},
                "resource_access": {"bff": {"roles": ["auditor"]}},
                "https://example.com/region": "eu", "plan": 3,
            }))
            .unwrap();
        assert_eq!(mapped.user.id, "0b7c");
        assert_eq!(mapped.user.tenant.as_deref(), Some("acme"));
        assert_eq!(mapped.user.roles, ["admin", "auditor", "viewer"]);
        assert_eq!(mapped.user.attributes["region"], "eu");
        assert_eq!(mapped.user.attributes["plan"], "3");
        assert_eq!(mapped.display_name.as_deref(), Some("Alice"));
    }

    #[test]
    fn absent_values_stay_unset_and_wrong_shapes_are_errors() {
        let m = mapping("tenant = \"org_id\"\nroles = \"scope\"");
        let mapped = m
            .map(&json!({"sub": "u", "org_id": " ", "scope": "a b,c"}))
            .unwrap();
        assert_eq!(
            mapped.user.tenant, None,
            "blank tenant is absent: grants fail closed"
        );
        assert_eq!(mapped.user.roles, ["a", "b", "c"]);
        let err = m
            .map(&json!({"sub": "u", "org_id": ["a", "b"]}))
            .unwrap_err();
        assert!(err.to_string().contains("`org_id` is a list"), "{err}");
        let err = m.map(&json!({"name": "no sub"})).unwrap_err();
        assert!(matches!(err, ClaimsMapError::MissingId { .. }), "{err}");
    }
}
