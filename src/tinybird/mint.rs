//! Minting: from a user and their grants to signed claims.
//!
//! The JWT `name` is a template over the user because Tinybird counts `limits.rps` and
//! attributes usage (`pipe_stats_rt`) per name: one static name would make every tenant share
//! one rate limit and one usage row.

use std::sync::Arc;
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior};
use secrecy::SecretString;
use serde::Serialize;

use super::claims::{Claims, Limits, Scope, ScopeType, sign};
use crate::grants::Access;
use crate::user::User;

/// Per user and tenant by default.
pub const DEFAULT_NAME_TEMPLATE: &str = "{{ user.id }}@{{ user.tenant or 'no-tenant' }}";

/// A compiled JWT `name` template.
#[derive(Clone)]
pub struct NameTemplate {
    source: String,
    env: Environment<'static>,
    /// Rendered names by user: the name is a pure function of the [`User`] and is rendered
    /// on every mint and proxy call. Failures are not kept.
    rendered: Arc<quick_cache::sync::Cache<User, String>>,
}

/// Users whose rendered name is kept.
const CACHED_NAMES: usize = 10_000;

impl std::fmt::Debug for NameTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NameTemplate").field(&self.source).finish()
    }
}

/// Why a name template cannot be used, or rendered for a user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl NameTemplate {
    /// Compiles a template such as `{{ user.id }}@{{ user.tenant }}`.
    pub fn compile(source: &str) -> Result<Self, NameError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned("name", source.to_owned())
            .map_err(|e| {
                NameError(format!(
                    "invalid template: {e}; e.g. \"{DEFAULT_NAME_TEMPLATE}\""
                ))
            })?;
        Ok(Self {
            source: source.to_owned(),
            env,
            rendered: Arc::new(quick_cache::sync::Cache::new(CACHED_NAMES)),
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the name for `user`; a blank result is an error (it would merge buckets).
    pub fn render(&self, user: &User) -> Result<String, NameError> {
        self.rendered
            .get_or_insert_with(user, || self.render_uncached(user))
    }

    fn render_uncached(&self, user: &User) -> Result<String, NameError> {
        let template = self.env.get_template("name").expect("added at compile");
        let name = template
            .render(minijinja::context! { user => minijinja::context! {
                id => &user.id,
                // Present (as none) when absent, so `user.tenant or '...'` works in strict mode.
                tenant => &user.tenant,
                roles => &user.roles,
                attributes => &user.attributes,
            } })
            .map_err(|e| {
                NameError(format!(
                    "token name template failed for user {}: {e}",
                    user.id
                ))
            })?;
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(NameError(format!(
                "token name template rendered empty for user {}",
                user.id
            )));
        }
        Ok(name)
    }
}

/// What a user's tokens are, whichever path they take (direct, or the proxy's upstream
/// JWT): their `name`, lifetime and `limits.rps`, after their plan and budget had their say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPlan {
    /// The JWT `name` (Tinybird's rate-limit bucket and usage row).
    pub name: String,
    /// JWT lifetime.
    pub ttl: Duration,
    /// `limits.rps`, if any.
    pub rps: Option<i64>,
}

/// What minting needs besides the access: the workspace's id and key, and the plan.
pub struct MintParams<'a> {
    /// Workspace UUID.
    pub workspace_id: &'a str,
    /// Signing key (the admin token).
    pub signing_key: &'a SecretString,
    /// The token's name, lifetime and `limits.rps`.
    pub plan: &'a TokenPlan,
}

/// A freshly minted token and its claims.
#[derive(Debug, Clone, Serialize)]
pub struct Minted {
    /// The signed JWT.
    #[serde(skip)]
    pub token: String,
    /// What it says.
    pub claims: Claims,
}

/// Builds and signs the claims: one `PIPES:READ` scope per granted pipe, with its fixed
/// params, then one `DATASOURCES:READ` scope per granted data source, with its filter.
pub fn mint(access: &Access, params: &MintParams<'_>, now: i64) -> Minted {
    let scopes = access
        .pipes
        .iter()
        .map(|p| Scope::pipe(p.pipe.clone(), p.fixed_params.clone()))
        .chain(access.datasources.iter().map(|d| Scope {
            scope_type: ScopeType::DatasourcesRead,
            resource: d.datasource.clone(),
            fixed_params: None,
            filter: Some(d.filter.clone()),
        }))
        .collect();
    let plan = params.plan;
    let claims = Claims {
        workspace_id: params.workspace_id.to_owned(),
        name: plan.name.clone(),
        exp: now + plan.ttl.as_secs() as i64,
        iat: Some(now),
        scopes,
        limits: plan.rps.map(|rps| Limits { rps }),
    };
    Minted {
        token: sign(&claims, params.signing_key),
        claims,
    }
}

impl From<NameError> for crate::error::AppError {
    /// A JWT `name` that cannot be rendered for a user is a 403 that says which part.
    fn from(e: NameError) -> Self {
        crate::error::AppError::Forbidden(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tenant: Option<&str>) -> User {
        User {
            id: "alice".into(),
            tenant: tenant.map(Into::into),
            roles: vec![],
            attributes: Default::default(),
        }
    }

    #[test]
    fn default_name_is_per_user_and_tenant() {
        let t = NameTemplate::compile(DEFAULT_NAME_TEMPLATE).unwrap();
        assert_eq!(t.render(&user(Some("acme"))).unwrap(), "alice@acme");
        assert_eq!(t.render(&user(None)).unwrap(), "alice@no-tenant");
        // Kept per user: the same answers again, and a changed tenant is its own entry.
        assert_eq!(t.render(&user(Some("acme"))).unwrap(), "alice@acme");
        assert_eq!(t.render(&user(Some("globex"))).unwrap(), "alice@globex");
        assert_eq!(t.rendered.len(), 3);
    }

    #[test]
    fn bad_or_blank_names_are_errors() {
        assert!(NameTemplate::compile("{{ user.id").is_err());
        let t = NameTemplate::compile("{{ user.attributes.team }}").unwrap();
        assert!(t.render(&user(None)).is_err());
        let blank = NameTemplate::compile("  ").unwrap();
        assert!(blank.render(&user(None)).is_err());
        assert!(blank.render(&user(None)).is_err(), "failures are not kept");
        assert_eq!(blank.rendered.len(), 0);
    }

    #[test]
    fn data_sources_become_datasources_read_scopes_with_their_filter() {
        let access = Access::new(
            vec![],
            vec![crate::grants::DatasourceAccess {
                datasource: "orders".into(),
                filter: "org_id = 'acme'".into(),
                grants: vec!["tenant-sql".into()],
            }],
        );
        let key = SecretString::from("p.k");
        let plan = TokenPlan {
            name: "alice@acme".into(),
            ttl: Duration::from_secs(60),
            rps: Some(5),
        };
        let params = MintParams {
            workspace_id: "ws",
            signing_key: &key,
            plan: &plan,
        };
        let minted = mint(&access, &params, 1_000);
        assert_eq!(
            (
                minted.claims.name.as_str(),
                minted.claims.exp,
                minted.claims.limits.map(|l| l.rps)
            ),
            ("alice@acme", 1_060, Some(5))
        );
        assert_eq!(
            serde_json::to_value(&minted.claims.scopes).unwrap(),
            serde_json::json!([{"type": "DATASOURCES:READ", "resource": "orders", "filter": "org_id = 'acme'"}])
        );
    }
}
