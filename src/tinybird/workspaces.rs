//! The workspaces tokens are minted for, and which one is each user's.
//!
//! Tinybird's host is per workspace and its admin token is the signing key, so a token for a
//! user is signed with the key of the user's workspace and sent to its host, never another's.
//! With one workspace every user is in it; with several, a template over the user (e.g.
//! `{{ user.attributes.region }}`) renders the workspace's name, and a name that is not one of
//! them refuses the user (fails closed) with a message that names the rule.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::AdminToken;
use super::mint::NameTemplate;
use crate::user::User;

/// One workspace as the running BFF uses it.
#[derive(Debug)]
pub struct Workspace {
    /// Its name in the config (`default` for a lone `[tinybird]`).
    pub name: String,
    /// The base URL Tinybird is called at (no trailing slash).
    pub url: String,
    /// Workspace id put in every JWT.
    pub workspace_id: String,
    /// Admin token = signing key.
    pub signing_key: AdminToken,
    /// Pipes known to exist, when known.
    pub known_pipes: Option<Vec<String>>,
    /// When this key was loaded (Unix seconds).
    pub loaded_at: i64,
    /// The key's [`fingerprint`], taken once: the proxy keys its token cache with it.
    fingerprint: String,
}

impl Workspace {
    /// A workspace whose `signing_key` was loaded at `loaded_at`.
    pub fn new(
        name: String,
        url: String,
        workspace_id: String,
        signing_key: AdminToken,
        known_pipes: Option<Vec<String>>,
        loaded_at: i64,
    ) -> Self {
        Self {
            fingerprint: fingerprint(&signing_key),
            name,
            url,
            workspace_id,
            signing_key,
            known_pipes,
            loaded_at,
        }
    }

    /// A short public fingerprint of the key (`sha256:` and 12 hex digits): tells two keys
    /// apart in `/readyz` and the audit log without revealing either.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The key's fingerprint: a SHA-256 prefix, never the key.
pub fn fingerprint(key: &AdminToken) -> String {
    let digest = Sha256::digest(key.bytes());
    format!("sha256:{}", &hex::encode(digest)[..12])
}

/// Why a user has no workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The rule rendered a name that is not a workspace, or could not render.
    #[error("no Tinybird workspace for user {user}: {why}")]
    NoMatch {
        /// The user.
        user: String,
        /// What the rule did.
        why: String,
    },
}

/// No workspace is no token: a 403 that names the rule, never another workspace's key.
impl From<WorkspaceError> for crate::error::AppError {
    fn from(e: WorkspaceError) -> Self {
        crate::error::AppError::Forbidden(e.to_string())
    }
}

/// Every workspace and the rule that picks one per user.
#[derive(Debug)]
pub struct Workspaces {
    list: Vec<Arc<Workspace>>,
    rule: Option<NameTemplate>,
}

impl Workspaces {
    /// `rule` is required with more than one workspace (the config checks it).
    pub fn new(list: Vec<Workspace>, rule: Option<NameTemplate>) -> Self {
        assert!(!list.is_empty(), "validated: at least one workspace");
        Self {
            list: list.into_iter().map(Arc::new).collect(),
            rule,
        }
    }

    /// The workspace `user`'s tokens are for.
    pub fn for_user(&self, user: &User) -> Result<Arc<Workspace>, WorkspaceError> {
        let Some(rule) = &self.rule else {
            return Ok(Arc::clone(&self.list[0]));
        };
        let no_match = |why: String| WorkspaceError::NoMatch {
            user: user.id.clone(),
            why,
        };
        let name = rule
            .render(user)
            .map_err(|e| no_match(format!("tinybird.workspace = {:?}: {e}", rule.source())))?;
        self.get(&name).cloned().ok_or_else(|| {
            no_match(format!(
                "tinybird.workspace = {:?} rendered {name:?}, which is not one of {}",
                rule.source(),
                self.names().join(", ")
            ))
        })
    }

    /// The workspace named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Workspace>> {
        self.list.iter().find(|w| w.name == name)
    }

    /// Every workspace, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Workspace>> {
        self.list.iter()
    }

    /// The workspaces' names, quoted.
    pub fn names(&self) -> Vec<String> {
        self.list.iter().map(|w| format!("{:?}", w.name)).collect()
    }

    /// The rule's template, when there are several workspaces.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_ref().map(NameTemplate::source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(name: &str) -> Workspace {
        Workspace::new(
            name.into(),
            format!("https://{name}.example"),
            format!("ws-{name}"),
            AdminToken::generate(&format!("ws-{name}")),
            None,
            0,
        )
    }

    fn user(id: &str, region: Option<&str>) -> User {
        let mut user = User {
            id: id.into(),
            tenant: Some("t".into()),
            roles: Vec::new(),
            attributes: Default::default(),
        };
        if let Some(region) = region {
            user.attributes.insert("region".into(), region.into());
        }
        user
    }

    #[test]
    fn one_workspace_takes_every_user() {
        let ws = Workspaces::new(vec![workspace("default")], None);
        assert_eq!(ws.for_user(&user("a", None)).unwrap().name, "default");
    }

    #[test]
    fn the_rule_picks_the_users_workspace_and_fails_closed() {
        let rule = NameTemplate::compile("{{ user.attributes.region }}").unwrap();
        let ws = Workspaces::new(vec![workspace("eu"), workspace("us")], Some(rule));
        assert_eq!(ws.for_user(&user("a", Some("us"))).unwrap().name, "us");
        assert_eq!(ws.for_user(&user("b", Some("eu"))).unwrap().name, "eu");
        let err = ws
            .for_user(&user("c", Some("apac")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rendered \"apac\", which is not one of \"eu\", \"us\""),
            "{err}"
        );
        assert!(err.contains("user c"), "{err}");
        let err = ws.for_user(&user("d", None)).unwrap_err().to_string();
        assert!(
            err.contains("tinybird.workspace = \"{{ user.attributes.region }}\""),
            "{err}"
        );
    }

    #[test]
    fn fingerprints_tell_keys_apart_without_showing_them() {
        let (a, b) = (workspace("a"), workspace("b"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), "sha256:".len() + 12);
        let key = secrecy::ExposeSecret::expose_secret(a.signing_key.secret()).to_owned();
        assert!(!key.contains(&a.fingerprint()[7..]));
    }
}
