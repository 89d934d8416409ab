//! The pure rules of keys: who manages which tenant's keys, what a key may be given, who a
//! key acts as and what it reads at each use. No I/O; [`super::Keys`] applies them.
//!
//! **Who a key acts as.** A key is a principal of its tenant: the user `key:<id>`, with the
//! key's tenant, the roles `keys.roles` names, and the attributes it was created with (its
//! creator's, or those a platform admin or operator gave). Grants are evaluated for that
//! principal at every use, then narrowed to the key's scopes, so the rows a key reads (fixed
//! params, data-source filters) are always its tenant's, from the grants in force.
//!
//! **What a key may be given.** Every scope must be something (a) the key's principal is
//! granted (its tenant's grants) and (b) its creator may read themselves. A tenant admin's key
//! must also read the same rows as its creator for each scope (a grant that renders
//! `{{ user.id }}` into a filter would give the key other rows: refused). A platform admin
//! manages every tenant, so (b) is checked on names only for another tenant's key.

use crate::error::AppError;
use crate::grants::{Access, GrantError};
use crate::metrics::usage::ADMIN_ROLE;
use crate::user::User;

use super::record::{KeyRecord, KeyScopes};

/// Whose keys a user manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// A tenant admin: their own tenant's keys.
    Tenant(String),
    /// A platform admin (role `admin`) or the operator: every tenant's.
    Platform,
}

impl Authority {
    /// Whether a key of `tenant` is theirs to see and change.
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Authority::Tenant(own) => own == tenant,
            Authority::Platform => true,
        }
    }

    /// The tenant whose keys to list: their own, or the one a platform admin asks for (all
    /// when none). A tenant admin naming another tenant is refused.
    pub fn tenant_to_list(&self, asked: Option<&str>) -> Result<Option<String>, AppError> {
        match (self, asked) {
            (Authority::Tenant(own), None) => Ok(Some(own.clone())),
            (Authority::Tenant(own), Some(t)) if t == own => Ok(Some(own.clone())),
            (Authority::Tenant(own), Some(_)) => Err(AppError::Forbidden(format!(
                "you manage the keys of tenant {own} only"
            ))),
            (Authority::Platform, asked) => Ok(asked.map(str::to_owned)),
        }
    }
}

/// Whose keys `user` may manage, with `admin_role` naming tenant admins.
pub fn authority(user: &User, admin_role: &str) -> Result<Authority, AppError> {
    if user.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Ok(Authority::Platform);
    }
    match &user.tenant {
        Some(tenant) if user.roles.iter().any(|r| r == admin_role) => {
            Ok(Authority::Tenant(tenant.clone()))
        }
        _ => Err(AppError::Forbidden(format!(
            "API keys are managed by tenant admins (role {admin_role:?}, with a tenant) and platform admins (role {ADMIN_ROLE:?})"
        ))),
    }
}

/// The user a key acts as (see the module doc).
pub fn principal(key: &KeyRecord, roles: &[String]) -> User {
    User {
        id: key.principal_id(),
        tenant: Some(key.tenant.clone()),
        roles: roles.to_vec(),
        attributes: key.attributes.clone(),
    }
}

/// A refusal of the key's principal by the grants, said for keys.
pub fn no_grant(tenant: &str, roles: &[String], e: &GrantError) -> AppError {
    AppError::Forbidden(format!(
        "keys of tenant {tenant} act with roles {roles:?} (keys.roles), and the grants give them nothing: {e}"
    ))
}

/// Checks what a new key is given: `principal` is what its tenant's grants give it; `creator`
/// is what its creator reads (`None` for the operator), with whether they are in the key's
/// tenant (then the rows must match too).
pub fn check_scopes(
    scopes: &KeyScopes,
    principal: &Access,
    creator: Option<(&Access, bool)>,
) -> Result<(), AppError> {
    if scopes.is_empty() {
        return Err(AppError::BadRequest(
            "a key needs at least one pipe or data source in its scopes".into(),
        ));
    }
    for pipe in &scopes.pipes {
        let granted = principal.pipe(pipe).ok_or_else(|| {
            AppError::Forbidden(format!(
                "pipe {pipe}: the tenant's grants give keys no such pipe (keys act with keys.roles)"
            ))
        })?;
        if let Some((creator, same_tenant)) = creator {
            let own = creator.pipe(pipe).ok_or_else(|| {
                AppError::Forbidden(format!(
                    "pipe {pipe}: you cannot read it yourself, so you cannot give it to a key"
                ))
            })?;
            if same_tenant && own.fixed_params != granted.fixed_params {
                return Err(AppError::Forbidden(format!(
                    "pipe {pipe}: a key would read other rows than you do (its fixed params differ from yours: a grant renders something of the user, such as user.id, that a key does not share)"
                )));
            }
        }
    }
    for ds in &scopes.datasources {
        let granted = principal.datasource(ds).ok_or_else(|| {
            AppError::Forbidden(format!(
                "data source {ds}: the tenant's grants give keys no such data source (keys act with keys.roles)"
            ))
        })?;
        if let Some((creator, same_tenant)) = creator {
            let own = creator.datasource(ds).ok_or_else(|| {
                AppError::Forbidden(format!(
                    "data source {ds}: you cannot read it yourself, so you cannot give it to a key"
                ))
            })?;
            if same_tenant && own.filter != granted.filter {
                return Err(AppError::Forbidden(format!(
                    "data source {ds}: a key would read other rows than you do (its row filter differs from yours)"
                )));
            }
        }
    }
    Ok(())
}

/// What a key reads now: its principal's access narrowed to its scopes. A scope the grants no
/// longer give is dropped; nothing left is a 403.
pub fn narrowed(granted: &Access, scopes: &KeyScopes) -> Result<Access, AppError> {
    let pipes: Vec<_> = granted
        .pipes
        .iter()
        .filter(|p| scopes.pipes.contains(&p.pipe))
        .cloned()
        .collect();
    let datasources: Vec<_> = granted
        .datasources
        .iter()
        .filter(|d| scopes.datasources.contains(&d.datasource))
        .cloned()
        .collect();
    if pipes.is_empty() && datasources.is_empty() {
        return Err(AppError::Forbidden(
            "this key's scopes are no longer given by its tenant's grants: ask a tenant admin for a new key".into(),
        ));
    }
    Ok(Access::new(pipes, datasources))
}

/// What a creator in the key's tenant may give a key: every scope [`check_scopes`] accepts.
pub fn grantable(principal: &Access, creator: &Access) -> KeyScopes {
    KeyScopes {
        pipes: principal
            .pipes
            .iter()
            .filter(|p| {
                creator
                    .pipe(&p.pipe)
                    .is_some_and(|c| c.fixed_params == p.fixed_params)
            })
            .map(|p| p.pipe.clone())
            .collect(),
        datasources: principal
            .datasources
            .iter()
            .filter(|d| {
                creator
                    .datasource(&d.datasource)
                    .is_some_and(|c| c.filter == d.filter)
            })
            .map(|d| d.datasource.clone())
            .collect(),
    }
}

/// A key name: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn check_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AppError::BadRequest(format!(
            "a key name is 1 to {MAX_NAME_CHARS} characters without control characters, e.g. \"nightly export\""
        )));
    }
    Ok(name.to_owned())
}

/// The longest key name.
pub const MAX_NAME_CHARS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{DatasourceAccess, PipeAccess};

    fn user(tenant: Option<&str>, roles: &[&str]) -> User {
        User {
            id: "u".into(),
            tenant: tenant.map(Into::into),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            attributes: Default::default(),
        }
    }

    fn access(org: &str, pipes: &[&str], ds: &[&str]) -> Access {
        let mut fixed = serde_json::Map::new();
        fixed.insert("org_id".into(), org.into());
        Access::new(
            pipes
                .iter()
                .map(|p| PipeAccess {
                    pipe: p.to_string(),
                    fixed_params: fixed.clone(),
                    grants: vec!["g".into()],
                    allow_sql_over_pipe: false,
                })
                .collect(),
            ds.iter()
                .map(|d| DatasourceAccess {
                    datasource: d.to_string(),
                    filter: format!("org_id = '{org}'"),
                    grants: vec!["g".into()],
                })
                .collect(),
        )
    }

    fn scopes(pipes: &[&str], ds: &[&str]) -> KeyScopes {
        KeyScopes {
            pipes: pipes.iter().map(|p| p.to_string()).collect(),
            datasources: ds.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn tenant_admins_manage_their_tenant_and_platform_admins_every_tenant() {
        let a = authority(
            &user(Some("acme"), &["viewer", "tenant-admin"]),
            "tenant-admin",
        )
        .unwrap();
        assert_eq!(a, Authority::Tenant("acme".into()));
        assert!(a.covers("acme") && !a.covers("globex"));
        assert_eq!(a.tenant_to_list(None).unwrap(), Some("acme".into()));
        assert!(a.tenant_to_list(Some("globex")).is_err());
        let p = authority(&user(Some("acme"), &["admin"]), "tenant-admin").unwrap();
        assert!(p.covers("globex"));
        assert_eq!(p.tenant_to_list(None).unwrap(), None);
        for refused in [
            user(Some("acme"), &["viewer"]),
            user(None, &["tenant-admin"]),
        ] {
            assert!(authority(&refused, "tenant-admin").is_err(), "{refused:?}");
        }
    }

    #[test]
    fn a_key_gets_only_what_its_tenant_grants_and_its_creator_reads() {
        let tenant = access("acme", &["top", "sales"], &["orders"]);
        let creator = access("acme", &["top"], &["orders"]);
        assert!(
            check_scopes(
                &scopes(&["top"], &["orders"]),
                &tenant,
                Some((&creator, true))
            )
            .is_ok()
        );
        let err = check_scopes(&scopes(&["sales"], &[]), &tenant, Some((&creator, true)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read it yourself"), "{err}");
        let err = check_scopes(&scopes(&["overview"], &[]), &tenant, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("give keys no such pipe"), "{err}");
        assert!(check_scopes(&scopes(&[], &[]), &tenant, None).is_err());
        // The operator is not a reader: only the tenant's grants bound the key.
        assert!(check_scopes(&scopes(&["sales"], &[]), &tenant, None).is_ok());
    }

    #[test]
    fn a_tenant_admin_key_reads_the_same_rows_as_its_creator() {
        let key = access("acme", &["top"], &["orders"]);
        let other_rows = access("someone-else", &["top"], &["orders"]);
        let err = check_scopes(&scopes(&["top"], &[]), &key, Some((&other_rows, true)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("other rows"), "{err}");
        let err = check_scopes(&scopes(&[], &["orders"]), &key, Some((&other_rows, true)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("other rows"), "{err}");
        assert_eq!(grantable(&key, &other_rows), KeyScopes::default());
        assert_eq!(grantable(&key, &key), scopes(&["top"], &["orders"]));
        // A platform admin making another tenant's key: names only.
        assert!(
            check_scopes(
                &scopes(&["top"], &["orders"]),
                &key,
                Some((&other_rows, false))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_key_reads_its_scopes_of_what_the_grants_give_now() {
        let granted = access("acme", &["top", "sales"], &["orders"]);
        let now = narrowed(&granted, &scopes(&["top", "gone"], &[])).unwrap();
        assert_eq!(now.pipes.len(), 1);
        assert_eq!(now.pipes[0].fixed_params["org_id"], "acme");
        assert!(now.datasources.is_empty());
        assert!(narrowed(&granted, &scopes(&["gone"], &[])).is_err());
    }

    #[test]
    fn names_are_short_plain_text() {
        assert_eq!(check_name("  nightly export ").unwrap(), "nightly export");
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
