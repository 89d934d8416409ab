//! The `[[grants]]` config as written, and the load-time checks on it.
//!
//! Matching lives here too: it reads only the config and the user, while rendering fixed
//! params needs the compiled templates (see the parent module).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::template::TemplateProblem;
use crate::user::User;

/// One `[[grants]]` table as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// Unique name, shown in errors, in `--explain` and in [`PipeAccess::grants`].
    pub name: String,
    /// The pipes this grant lets a matching user read (may be empty if `datasources` is not).
    #[serde(default)]
    pub pipes: Vec<String>,
    /// Who the grant applies to.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// Row filters: strings are templates over `user`, other values are literals.
    #[serde(default)]
    pub fixed_params: BTreeMap<String, toml::Value>,
    /// Whether proxy mode lets these pipes take SQL (`q`) over their result.
    #[serde(default)]
    pub allow_sql_over_pipe: bool,
    /// Data sources a matching user may read with SQL, each through a row filter: an SQL
    /// boolean expression whose `{{ ... }}` values are spliced in as quoted SQL literals.
    #[serde(default)]
    pub datasources: BTreeMap<String, String>,
}

/// The `[grants.match]` table: every condition given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// The user has at least one of these roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The user's tenant is one of these.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// Each listed attribute equals the value, or one of the values.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValues>,
    /// Match every logged-in user; may not be combined with other conditions.
    #[serde(default)]
    pub any_user: bool,
}

/// The accepted value(s) of one attribute in `[grants.match.attributes]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttributeValues {
    /// `plan = "pro"`
    One(String),
    /// `plan = ["pro", "enterprise"]`
    AnyOf(Vec<String>),
}

impl AttributeValues {
    fn as_slice(&self) -> &[String] {
        match self {
            AttributeValues::One(v) => std::slice::from_ref(v),
            AttributeValues::AnyOf(vs) => vs,
        }
    }
}

impl MatchConfig {
    pub(super) fn has_condition(&self) -> bool {
        self.roles.is_some() || self.tenants.is_some() || !self.attributes.is_empty()
    }

    pub(super) fn matches(&self, user: &User) -> bool {
        if self.any_user {
            return true;
        }
        // An empty matcher is refused at load; keep it matching nobody should that change.
        if !self.has_condition() {
            return false;
        }
        let roles_ok = self
            .roles
            .as_ref()
            .is_none_or(|want| user.roles.iter().any(|r| want.contains(r)));
        let tenant_ok = self
            .tenants
            .as_ref()
            .is_none_or(|want| user.tenant.as_ref().is_some_and(|t| want.contains(t)));
        let attributes_ok = self.attributes.iter().all(|(name, want)| {
            user.attributes
                .get(name)
                .is_some_and(|v| want.as_slice().contains(v))
        });
        roles_ok && tenant_ok && attributes_ok
    }
}

/// A problem in the `[[grants]]` config, found when compiling it.
#[derive(Debug, thiserror::Error)]
pub enum GrantsConfigError {
    /// A grant has no name.
    #[error(
        "{at}.name is empty: give every grant a short unique name (used in errors and `--explain`)"
    )]
    EmptyName {
        /// Config location, e.g. `grants[2]`.
        at: String,
    },
    /// Two grants share a name.
    #[error(
        "{at}: the name {name:?} is already used by grants[{first}]; give every grant a unique name"
    )]
    DuplicateName {
        /// Config location of the second use.
        at: String,
        /// The repeated name.
        name: String,
        /// Index of the first grant with this name.
        first: usize,
    },
    /// A grant lists no pipes (and no data sources), or an empty pipe name.
    #[error(
        "{at} is empty: list the pipes this grant may read, e.g. pipes = [\"top_products\"], or give data sources with datasources = {{ orders = \"org_id = {{{{ user.tenant }}}}\" }}"
    )]
    NoPipes {
        /// Config location, e.g. `grants[2] ("x").pipes`.
        at: String,
    },
    /// A grant's match table has no condition.
    #[error(
        "{at} has no condition: add roles, tenants or attributes, or set any_user = true to give these pipes to every logged-in user"
    )]
    NoMatchCondition {
        /// Config location of the match table.
        at: String,
    },
    /// `any_user = true` next to other conditions, which would read as both "all" and "some".
    #[error(
        "{at} sets any_user = true and other conditions: remove any_user to require the conditions, or remove the conditions to match everyone"
    )]
    AnyUserWithConditions {
        /// Config location of the match table.
        at: String,
    },
    /// A match list is empty, so the condition can never hold.
    #[error(
        "{at} is an empty list, which matches nobody: list at least one value or remove the key"
    )]
    EmptyMatchList {
        /// Config location, e.g. `grants[0] ("x").match.roles`.
        at: String,
    },
    /// A fixed param template does not parse, or uses an unknown filter or function.
    #[error(
        "{at} is not a valid template ({message}): use `{{{{ user.tenant }}}}`-style expressions"
    )]
    TemplateSyntax {
        /// Config location of the fixed param.
        at: String,
        /// What the template engine reported.
        message: String,
    },
    /// A template reads something other than the user's id, tenant, roles or an attribute.
    #[error(
        "{at} refers to `{reference}`: templates may only use user.id, user.tenant, user.roles and user.attributes.<name>"
    )]
    UnknownReference {
        /// Config location of the fixed param.
        at: String,
        /// The variable path the template reads.
        reference: String,
    },
    /// A fixed param value of a TOML type Tinybird cannot take.
    #[error("{at} is {kind}: use a string (template), an integer, a float or a boolean")]
    UnsupportedValue {
        /// Config location of the fixed param.
        at: String,
        /// The offending TOML type.
        kind: &'static str,
    },
    /// A data-source name that is not a plain identifier.
    #[error(
        "{at}: {name:?} is not a data source name: use letters, digits and underscores, not starting with a digit"
    )]
    InvalidDatasourceName {
        /// Config location, e.g. `grants[0] ("x").datasources`.
        at: String,
        /// The offending name.
        name: String,
    },
    /// A data-source filter that would splice a value somewhere other than a plain literal.
    #[error(
        "{at} is not a safe filter ({reason}): write values bare, e.g. `org_id = {{{{ user.tenant }}}}`; each value becomes a quoted, escaped SQL literal"
    )]
    UnsafeFilter {
        /// Config location of the filter.
        at: String,
        /// What is wrong with where a value goes.
        reason: String,
    },
    /// A fixed param that is always empty, so no token could ever be minted for the grant.
    #[error("{at} is always empty, so this grant could never mint a token: give it a value")]
    EmptyValue {
        /// Config location of the fixed param.
        at: String,
    },
}

impl TemplateProblem {
    pub(super) fn locate(self, at: String) -> GrantsConfigError {
        match self {
            TemplateProblem::Syntax(message) => GrantsConfigError::TemplateSyntax { at, message },
            TemplateProblem::UnknownReference(reference) => {
                GrantsConfigError::UnknownReference { at, reference }
            }
            TemplateProblem::AlwaysEmpty => GrantsConfigError::EmptyValue { at },
            TemplateProblem::Unsupported(kind) => GrantsConfigError::UnsupportedValue { at, kind },
            TemplateProblem::UnsafeSql(reason) => GrantsConfigError::UnsafeFilter { at, reason },
        }
    }
}

/// Returns the grant's pipes without duplicates, recording empty names, and an empty list
/// when the grant gives no data sources either.
pub(super) fn check_pipes(
    at: &str,
    pipes: &[String],
    has_datasources: bool,
    errors: &mut Vec<GrantsConfigError>,
) -> Vec<String> {
    if pipes.is_empty() && !has_datasources {
        errors.push(GrantsConfigError::NoPipes {
            at: format!("{at}.pipes"),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(pipes.len());
    for (j, pipe) in pipes.iter().enumerate() {
        if pipe.trim().is_empty() {
            errors.push(GrantsConfigError::NoPipes {
                at: format!("{at}.pipes[{j}]"),
            });
        } else if !out.contains(pipe) {
            out.push(pipe.clone());
        }
    }
    out
}

pub(super) fn check_matcher(at: &str, matcher: &MatchConfig, errors: &mut Vec<GrantsConfigError>) {
    let at = format!("{at}.match");
    if matcher.any_user && matcher.has_condition() {
        errors.push(GrantsConfigError::AnyUserWithConditions { at: at.clone() });
    } else if !matcher.any_user && !matcher.has_condition() {
        errors.push(GrantsConfigError::NoMatchCondition { at: at.clone() });
    }
    let lists = [
        ("roles", matcher.roles.as_deref()),
        ("tenants", matcher.tenants.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, list)| list.map(|l| (key.to_owned(), l)))
    .chain(
        matcher
            .attributes
            .iter()
            .map(|(name, v)| (format!("attributes.{name}"), v.as_slice())),
    );
    for (key, list) in lists {
        if list.is_empty() {
            errors.push(GrantsConfigError::EmptyMatchList {
                at: format!("{at}.{key}"),
            });
        }
    }
}
