//! Data-source grants: which data sources a user may read with SQL, through which row filter.
//!
//! `datasources = { orders = "org_id = {{ user.tenant }}" }` in a `[[grants]]` table gives a
//! matching user `DATASOURCES:READ` on `orders` with the filter `org_id = 'acme'`. Tinybird
//! adds the filter to every read of the data source, which is what makes ad-hoc SQL
//! (`/v0/sql`) safe per tenant. Rendering fails closed exactly like fixed params, and two
//! matching grants that give one data source different filters are a conflict, not a union.

use std::collections::BTreeMap;

use serde::Serialize;

use super::GrantError;
use super::config::GrantsConfigError;
use super::filter::FilterTemplates;
use super::template::UserRef;
use crate::user::User;

/// Read access to one data source through a row filter.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DatasourceAccess {
    /// Data source name (a plain identifier from the config).
    pub datasource: String,
    /// The SQL boolean expression Tinybird adds to every read, values already quoted.
    pub filter: String,
    /// The grant(s) that gave this access, in config order.
    pub grants: Vec<String>,
}

/// One `datasources` entry of a grant, compiled.
#[derive(Debug)]
pub(super) struct CompiledDatasource {
    pub(super) name: String,
    key: String,
    pub(super) refs: Vec<UserRef>,
}

/// Whether `name` can be a data source: letters, digits and underscores, not starting with
/// a digit. It is spliced into SQL as an identifier, so nothing else is accepted.
pub fn is_datasource_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles grant `i`'s `datasources` table, recording every problem in `errors`.
pub(super) fn compile(
    i: usize,
    at: &str,
    datasources: &BTreeMap<String, String>,
    filters: &mut FilterTemplates,
    errors: &mut Vec<GrantsConfigError>,
) -> Vec<CompiledDatasource> {
    let mut out = Vec::with_capacity(datasources.len());
    for (name, source) in datasources {
        if !is_datasource_name(name) {
            errors.push(GrantsConfigError::InvalidDatasourceName {
                at: format!("{at}.datasources"),
                name: name.clone(),
            });
            continue;
        }
        let key = format!("{i}/datasources/{name}");
        match filters.add(&key, source) {
            Ok(refs) => out.push(CompiledDatasource {
                name: name.clone(),
                key,
                refs,
            }),
            Err(problem) => errors.push(problem.locate(format!("{at}.datasources.{name}"))),
        }
    }
    out
}

/// Renders one matching grant's filters for `user` and merges them into `into`.
pub(super) fn grant_into(
    into: &mut BTreeMap<String, DatasourceAccess>,
    grant: &str,
    compiled: &[CompiledDatasource],
    filters: &FilterTemplates,
    user: &User,
) -> Result<(), GrantError> {
    for ds in compiled {
        let filter = filters.render(&ds.key, &ds.refs, user).map_err(|m| {
            GrantError::MissingFilterAttribute {
                grant: grant.to_owned(),
                datasource: ds.name.clone(),
                attribute: m.attribute,
            }
        })?;
        match into.get_mut(&ds.name) {
            Some(existing) if existing.filter != filter => {
                let mut grants = existing.grants.clone();
                grants.push(grant.to_owned());
                return Err(GrantError::DatasourceConflict {
                    datasource: ds.name.clone(),
                    grants,
                });
            }
            Some(existing) => existing.grants.push(grant.to_owned()),
            None => {
                into.insert(
                    ds.name.clone(),
                    DatasourceAccess {
                        datasource: ds.name.clone(),
                        filter,
                        grants: vec![grant.to_owned()],
                    },
                );
            }
        }
    }
    Ok(())
}
