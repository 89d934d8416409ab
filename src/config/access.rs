//! Who may log in and what they may read: `[users]`, `[oidc.<name>]` and `[[grants]]`, checked
//! against each other (a grant naming a pipe that does not exist, or an attribute no user
//! has, is a problem).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::problem::{EnvLookup, Problem, problem};
use crate::auth::oidc::OidcProviderSettings;
use crate::auth::oidc::config::OidcProviderConfig;
use crate::auth::users::UserDirectory;
use crate::grants::{GrantConfig, Grants};

/// `[users]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// The users file (relative to the config file).
    pub file: PathBuf,
}

/// Users, providers and grants, validated.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Local users.
    pub users: UserDirectory,
    /// Identity providers (OIDC login, bearer tokens), in name order.
    pub oidc: Vec<OidcProviderSettings>,
    /// Compiled grants.
    pub grants: Arc<Grants>,
}

/// What the access sections are checked with.
pub struct AccessInput<'a> {
    /// `[users]`, if any.
    pub users: Option<&'a UsersConfig>,
    /// The users to use instead of a file (the demo embeds its users).
    pub embedded_users: Option<UserDirectory>,
    /// `[oidc.<name>]`.
    pub oidc: &'a BTreeMap<String, OidcProviderConfig>,
    /// `[[grants]]`.
    pub grants: &'a [GrantConfig],
    /// Pipes known to exist, per workspace, when known.
    pub known_pipes: &'a [(String, Option<Vec<String>>)],
}

/// Validates users, identity providers and grants, and the grants' references.
pub fn validate(
    input: AccessInput<'_>,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<AccessSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let users = match input.embedded_users {
        Some(u) => Some(u),
        None => match input.users {
            Some(u) => UserDirectory::load(&base.join(&u.file))
                .map_err(|e| problems.push(problem("users.file", e.to_string())))
                .ok(),
            None if input.oidc.is_empty() => {
                problems.push(problem("users", "nobody can log in: add [users] file = \"users.toml\" for local users, or an [oidc.<name>] identity provider"));
                None
            }
            None => Some(UserDirectory::default()),
        },
    };
    let grants = match Grants::compile(input.grants) {
        Ok(g) => Some(g),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| problem("grants", e.to_string())));
            None
        }
    };
    if input.grants.is_empty() {
        problems.push(problem(
            "grants",
            "no [[grants]]: nobody could read any pipe; add at least one grant",
        ));
    }
    let oidc = crate::auth::oidc::config::validate(input.oidc, base, env)
        .map_err(|p| problems.extend(p))
        .ok();
    if let Some(g) = &grants {
        let oidc_settings = oidc.as_deref().unwrap_or_default();
        // A pipe no workspace has is a typo whoever the grant is for; a pipe missing from one
        // user's workspace is checked per user (`Settings::check_users_workspaces`).
        let all_known: Option<BTreeSet<String>> = input
            .known_pipes
            .iter()
            .map(|(_, pipes)| pipes.clone())
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.into_iter().flatten().collect());
        let all_known: Option<Vec<String>> = all_known.map(|s| s.into_iter().collect());
        check_grant_references(
            g,
            all_known.as_deref(),
            users.as_ref(),
            oidc_settings,
            &mut problems,
        );
    }
    match (users, oidc, grants) {
        (Some(users), Some(oidc), Some(grants)) if problems.is_empty() => Ok(AccessSettings {
            users,
            oidc,
            grants: Arc::new(grants),
        }),
        _ => Err(problems),
    }
}

/// Flags grants naming pipes that do not exist, or attributes no user has.
fn check_grant_references(
    grants: &Grants,
    pipes: Option<&[String]>,
    users: Option<&UserDirectory>,
    oidc: &[OidcProviderSettings],
    problems: &mut Vec<Problem>,
) {
    if let Some(pipes) = pipes {
        for (grant, pipe) in grants.referenced_pipes() {
            if !pipes.contains(&pipe) {
                problems.push(problem(
                    format!("grants ({grant}).pipes"),
                    format!(
                        "pipe {pipe:?} does not exist; known pipes: {}",
                        pipes.join(", ")
                    ),
                ));
            }
        }
    }
    let Some(users) = users else { return };
    let mut known: BTreeSet<String> = ["id", "tenant", "roles"].map(String::from).into();
    for id in users.ids() {
        if let Some(record) = users.get(id) {
            known.extend(
                record
                    .user
                    .attributes
                    .keys()
                    .map(|k| format!("attributes.{k}")),
            );
        }
    }
    // Identity providers set the attributes their claims mapping names.
    for provider in oidc {
        known.extend(
            provider
                .claims
                .attribute_names()
                .map(|k| format!("attributes.{k}")),
        );
    }
    for (grant, attribute) in grants.referenced_attributes() {
        if !known.contains(&attribute) {
            problems.push(problem(
                format!("grants ({grant}).fixed_params"),
                format!("user.{attribute} is not an attribute of any user; add it to the users file (or an [oidc.<name>.claims.attributes] mapping) or fix the template"),
            ));
        }
    }
}
