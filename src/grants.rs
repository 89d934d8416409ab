//! Which pipes and data sources a user may read, with which row filters (pure, no I/O).
//!
//! Grants are declarative rules from the `[[grants]]` tables of the config. A grant that
//! matches a user gives them its pipes, each with the grant's fixed params: row filters
//! that Tinybird takes from the JWT and that always win over query parameters. A grant may
//! also give data sources for SQL, each through a filter (see [`datasources`]) whose values
//! are quoted SQL literals (see [`filter`]).
//!
//! Evaluation fails closed, because a token minted without a row filter its grant asks for
//! may read every tenant's rows:
//! - a fixed param whose template reads a missing or blank value (or renders blank) fails
//!   the whole evaluation, not just that grant. Every value a template reads is checked
//!   before it renders, and templates have no `default` filter to paper over a gap;
//! - two matching grants that give the same pipe with different fixed params (or the same
//!   data source with different filters) is a conflict, not a union;
//! - a user no grant matches gets an error, never a token with no scopes.
//!
//! Config locations in errors count grants from 0: `grants[0]` is the first `[[grants]]`.

mod config;
pub mod datasources;
pub mod filter;
mod template;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::user::User;
pub use config::{AttributeValues, GrantConfig, GrantsConfigError, MatchConfig};
use config::{check_matcher, check_pipes};
use datasources::CompiledDatasource;
pub use datasources::DatasourceAccess;
use filter::FilterTemplates;
pub use filter::sql_literal;
use template::{TemplateProblem, Templates, UserRef};

/// Why a user gets no token.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GrantError {
    /// No grant matches the user.
    #[error("user {user} matches no grant: ask an admin to add a grant for their role or tenant")]
    NoGrant {
        /// The user's id.
        user: String,
    },
    /// A matching grant's fixed param reads a value the user lacks (or has blank).
    #[error(
        "grant {grant} needs attribute `{attribute}` for fixed param {param}, but the user has none (or it is empty): set it on the user, or change the grant"
    )]
    MissingAttribute {
        /// The grant whose fixed param failed.
        grant: String,
        /// The fixed param.
        param: String,
        /// The value path, e.g. `tenant` or `attributes.region`.
        attribute: String,
    },
    /// A matching grant's data-source filter reads a value the user lacks (or has blank).
    #[error(
        "grant {grant} needs attribute `{attribute}` for the filter on data source {datasource}, but the user has none (or it is empty, or not a plain value): set it on the user, or change the grant"
    )]
    MissingFilterAttribute {
        /// The grant whose filter failed.
        grant: String,
        /// The data source.
        datasource: String,
        /// The value path(s), e.g. `tenant`.
        attribute: String,
    },
    /// Matching grants give the same data source with different filters.
    #[error(
        "grants {} all give data source {datasource} but with different filters, so no token is minted: make their filters identical or their matches exclusive",
        grants.join(", ")
    )]
    DatasourceConflict {
        /// The data source in dispute.
        datasource: String,
        /// The grants that give it.
        grants: Vec<String>,
    },
    /// Matching grants give the same pipe with different fixed params.
    #[error(
        "grants {} all give pipe {pipe} but with different fixed params, so no token is minted: make their fixed params identical or their matches exclusive",
        grants.join(", ")
    )]
    Conflict {
        /// The pipe in dispute.
        pipe: String,
        /// The grants that give it.
        grants: Vec<String>,
    },
}

/// What one user may read: the scopes of their token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Access {
    /// One entry per pipe, sorted by pipe name.
    pub pipes: Vec<PipeAccess>,
    /// One entry per data source, sorted by name. `pipes` and `datasources` are never both
    /// empty.
    pub datasources: Vec<DatasourceAccess>,
    /// A digest of the pipes (with their fixed params) and data sources (with their filters):
    /// two accesses with the same fingerprint read the same rows, so a cached token keyed by
    /// it is never reused after a reload changes what its user may read.
    #[serde(skip)]
    fingerprint: String,
    /// The grants behind any of it, sorted (per-grant rate limits follow them).
    #[serde(skip)]
    grant_names: Vec<String>,
}

impl Access {
    /// The access to `pipes` and `datasources`, with its fingerprint.
    pub fn new(pipes: Vec<PipeAccess>, datasources: Vec<DatasourceAccess>) -> Self {
        use sha2::Digest;
        let scopes = (&pipes, &datasources);
        let text = serde_json::to_vec(&scopes).expect("strings and JSON values");
        let fingerprint = hex::encode(&sha2::Sha256::digest(&text)[..16]);
        let mut grant_names: Vec<String> = pipes
            .iter()
            .flat_map(|p| &p.grants)
            .chain(datasources.iter().flat_map(|d| &d.grants))
            .cloned()
            .collect();
        grant_names.sort();
        grant_names.dedup();
        Self {
            pipes,
            datasources,
            fingerprint,
            grant_names,
        }
    }

    /// The grants behind any of this access, sorted.
    pub fn grant_names(&self) -> &[String] {
        &self.grant_names
    }

    /// See the field: equal fingerprints, equal rows readable.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The access to `name`, if the user has any.
    pub fn pipe(&self, name: &str) -> Option<&PipeAccess> {
        self.pipes.iter().find(|p| p.pipe == name)
    }

    /// The access to data source `name`, if the user has any.
    pub fn datasource(&self, name: &str) -> Option<&DatasourceAccess> {
        self.datasources.iter().find(|d| d.datasource == name)
    }
}

/// Read access to one pipe.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PipeAccess {
    /// Pipe name.
    pub pipe: String,
    /// Row filters Tinybird enforces from the JWT.
    #[schema(value_type = Object)]
    pub fixed_params: serde_json::Map<String, serde_json::Value>,
    /// The grant(s) that gave this access, in config order.
    pub grants: Vec<String>,
    /// Whether proxy mode lets this pipe take SQL (`q`) over its result.
    pub allow_sql_over_pipe: bool,
}

/// A fixed param ready to render.
#[derive(Debug)]
enum FixedParam {
    Literal(serde_json::Value),
    Template { key: String, refs: Vec<UserRef> },
}

#[derive(Debug)]
struct CompiledGrant {
    name: String,
    pipes: Vec<String>,
    matcher: MatchConfig,
    fixed_params: Vec<(String, FixedParam)>,
    allow_sql_over_pipe: bool,
    datasources: Vec<CompiledDatasource>,
}

/// Compiled grants (templates parsed once). Send + Sync.
pub struct Grants {
    grants: Vec<CompiledGrant>,
    templates: Templates,
    filters: FilterTemplates,
    /// [`Grants::evaluate`]'s answers by user, for [`Grants::evaluate_cached`].
    cache: quick_cache::sync::Cache<User, Arc<Access>>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("grants", &self.grants)
            .field("templates", &self.templates)
            .field("filters", &self.filters)
            .field("cached_users", &self.cache.len())
            .finish()
    }
}

/// Users whose [`Access`] is kept by [`Grants::evaluate_cached`].
const CACHED_USERS: usize = 10_000;

impl Grants {
    /// Checks and compiles the config, reporting every problem, not just the first.
    pub fn compile(grants: &[GrantConfig]) -> Result<Self, Vec<GrantsConfigError>> {
        let mut errors = Vec::new();
        let mut templates = Templates::new();
        let mut filters = FilterTemplates::new();
        let mut first_by_name: HashMap<&str, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(grants.len());
        for (i, grant) in grants.iter().enumerate() {
            let at = if grant.name.is_empty() {
                errors.push(GrantsConfigError::EmptyName {
                    at: format!("grants[{i}]"),
                });
                format!("grants[{i}]")
            } else {
                format!("grants[{i}] ({:?})", grant.name)
            };
            if !grant.name.is_empty() {
                if let Some(&first) = first_by_name.get(grant.name.as_str()) {
                    errors.push(GrantsConfigError::DuplicateName {
                        at: at.clone(),
                        name: grant.name.clone(),
                        first,
                    });
                } else {
                    first_by_name.insert(&grant.name, i);
                }
            }
            let pipes = check_pipes(
                &at,
                &grant.pipes,
                !grant.datasources.is_empty(),
                &mut errors,
            );
            let datasources =
                datasources::compile(i, &at, &grant.datasources, &mut filters, &mut errors);
            check_matcher(&at, &grant.matcher, &mut errors);
            let mut fixed_params = Vec::new();
            for (param, value) in &grant.fixed_params {
                let at = format!("{at}.fixed_params.{param}");
                let key = format!("{i}/{param}");
                match compile_param(&mut templates, &key, value) {
                    Ok(p) => fixed_params.push((param.clone(), p)),
                    Err(problem) => errors.push(problem.locate(at)),
                }
            }
            compiled.push(CompiledGrant {
                name: grant.name.clone(),
                pipes,
                matcher: grant.matcher.clone(),
                fixed_params,
                allow_sql_over_pipe: grant.allow_sql_over_pipe,
                datasources,
            });
        }
        if errors.is_empty() {
            Ok(Grants {
                grants: compiled,
                templates,
                filters,
                cache: quick_cache::sync::Cache::new(CACHED_USERS),
            })
        } else {
            Err(errors)
        }
    }

    /// For config checks: every (grant name, pipe) pair, in config order.
    pub fn referenced_pipes(&self) -> Vec<(String, String)> {
        self.grants
            .iter()
            .flat_map(|g| g.pipes.iter().map(|p| (g.name.clone(), p.clone())))
            .collect()
    }

    /// For config checks: every (grant name, data source) pair, in config order (data
    /// sources sorted by name within a grant).
    pub fn referenced_datasources(&self) -> Vec<(String, String)> {
        self.grants
            .iter()
            .flat_map(|g| {
                g.datasources
                    .iter()
                    .map(|d| (g.name.clone(), d.name.clone()))
            })
            .collect()
    }

    /// For config checks: every (grant name, value path) that fixed-param and filter
    /// templates read, where a path is `id`, `tenant`, `roles` or `attributes.<name>`;
    /// sorted within a grant.
    pub fn referenced_attributes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for grant in &self.grants {
            let mut refs: Vec<&UserRef> = grant
                .fixed_params
                .iter()
                .filter_map(|(_, p)| match p {
                    FixedParam::Template { refs, .. } => Some(refs),
                    FixedParam::Literal(_) => None,
                })
                .chain(grant.datasources.iter().map(|d| &d.refs))
                .flatten()
                .collect();
            refs.sort();
            refs.dedup();
            out.extend(refs.into_iter().map(|r| (grant.name.clone(), r.path())));
        }
        out
    }

    /// [`Grants::evaluate`], remembered per user: the hot path (every token and proxy call).
    /// Grants are fixed for the life of the process and evaluation is a pure function of the
    /// [`User`], so a user whose attributes change is a different key, never a stale answer.
    /// Refusals are not kept: they are rare, and say why each time.
    pub fn evaluate_cached(&self, user: &User) -> Result<Arc<Access>, GrantError> {
        self.cache
            .get_or_insert_with(user, || self.evaluate(user).map(Arc::new))
    }

    /// The pure decision: which pipes `user` may read, with which fixed params, and which
    /// data sources, through which filters.
    pub fn evaluate(&self, user: &User) -> Result<Access, GrantError> {
        let mut pipes: BTreeMap<&str, PipeAccess> = BTreeMap::new();
        let mut datasources: BTreeMap<String, DatasourceAccess> = BTreeMap::new();
        for grant in self.grants.iter().filter(|g| g.matcher.matches(user)) {
            let fixed_params = self.render(grant, user)?;
            datasources::grant_into(
                &mut datasources,
                &grant.name,
                &grant.datasources,
                &self.filters,
                user,
            )?;
            for pipe in &grant.pipes {
                match pipes.get_mut(pipe.as_str()) {
                    Some(existing) if existing.fixed_params != fixed_params => {
                        let mut grants = existing.grants.clone();
                        grants.push(grant.name.clone());
                        return Err(GrantError::Conflict {
                            pipe: pipe.clone(),
                            grants,
                        });
                    }
                    Some(existing) => {
                        existing.grants.push(grant.name.clone());
                        existing.allow_sql_over_pipe |= grant.allow_sql_over_pipe;
                    }
                    None => {
                        pipes.insert(
                            pipe,
                            PipeAccess {
                                pipe: pipe.clone(),
                                fixed_params: fixed_params.clone(),
                                grants: vec![grant.name.clone()],
                                allow_sql_over_pipe: grant.allow_sql_over_pipe,
                            },
                        );
                    }
                }
            }
        }
        if pipes.is_empty() && datasources.is_empty() {
            return Err(GrantError::NoGrant {
                user: user.id.clone(),
            });
        }
        Ok(Access::new(
            pipes.into_values().collect(),
            datasources.into_values().collect(),
        ))
    }

    fn render(
        &self,
        grant: &CompiledGrant,
        user: &User,
    ) -> Result<serde_json::Map<String, serde_json::Value>, GrantError> {
        let mut out = serde_json::Map::new();
        for (param, value) in &grant.fixed_params {
            let rendered = match value {
                FixedParam::Literal(v) => v.clone(),
                FixedParam::Template { key, refs } => self
                    .templates
                    .render(key, refs, user)
                    .map(serde_json::Value::String)
                    .map_err(|m| GrantError::MissingAttribute {
                        grant: grant.name.clone(),
                        param: param.clone(),
                        attribute: m.attribute,
                    })?,
            };
            out.insert(param.clone(), rendered);
        }
        Ok(out)
    }
}

fn compile_param(
    templates: &mut Templates,
    key: &str,
    value: &toml::Value,
) -> Result<FixedParam, TemplateProblem> {
    let literal = |v: serde_json::Value| Ok(FixedParam::Literal(v));
    match value {
        toml::Value::String(source) => {
            let refs = templates.add(key, source)?;
            Ok(FixedParam::Template {
                key: key.to_owned(),
                refs,
            })
        }
        toml::Value::Integer(n) => literal((*n).into()),
        toml::Value::Boolean(b) => literal((*b).into()),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => literal(serde_json::Value::Number(n)),
            None => Err(TemplateProblem::Unsupported("a NaN or infinite float")),
        },
        toml::Value::Array(_) => Err(TemplateProblem::Unsupported("an array")),
        toml::Value::Table(_) => Err(TemplateProblem::Unsupported("a table")),
        toml::Value::Datetime(_) => Err(TemplateProblem::Unsupported("a datetime")),
    }
}

impl From<GrantError> for crate::error::AppError {
    /// Every grant refusal is a 403 whose message names the grant and what failed.
    fn from(e: GrantError) -> Self {
        crate::error::AppError::Forbidden(e.to_string())
    }
}
