//! Unit tests for grant matching, rendering, merging and config checks.
//!
//! Security-critical: most tests pin a fail-closed behaviour.

use serde::Deserialize;

use super::*;

mod compile;
mod datasources;
mod evaluate;

#[derive(Deserialize)]
struct Config {
    grants: Vec<GrantConfig>,
}

fn configs(toml_src: &str) -> Vec<GrantConfig> {
    toml::from_str::<Config>(toml_src)
        .expect("test config parses")
        .grants
}

fn grants(toml_src: &str) -> Grants {
    Grants::compile(&configs(toml_src)).expect("test config compiles")
}

fn compile_errors(toml_src: &str) -> Vec<String> {
    Grants::compile(&configs(toml_src))
        .expect_err("config should be refused")
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn user(id: &str, tenant: Option<&str>, roles: &[&str], attributes: &[(&str, &str)]) -> User {
    User {
        id: id.to_owned(),
        tenant: tenant.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn pipe_names(access: &Access) -> Vec<&str> {
    access.pipes.iter().map(|p| p.pipe.as_str()).collect()
}

const TENANT_DASHBOARDS: &str = r#"
[[grants]]
name = "tenant-dashboards"
pipes = ["top_products", "sales_by_day"]
[grants.match]
roles = ["viewer", "analyst"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"
"#;

const TWO_GRANTS_ON_SALES: &str = r#"
[[grants]]
name = "viewers"
pipes = ["sales", "top_products"]
[grants.match]
roles = ["viewer"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"

[[grants]]
name = "analysts"
pipes = ["sales", "adhoc"]
allow_sql_over_pipe = true
[grants.match]
roles = ["analyst"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"
"#;
