//! Data-source grants: filters render as quoted literals, fail closed, and refuse templates
//! that would put a value anywhere but a literal's place.

use super::*;

const TENANT_SQL: &str = r#"
[[grants]]
name = "tenant-sql"
[grants.match]
roles = ["viewer"]
[grants.datasources]
orders = "org_id = {{ user.tenant }}"
products = "org_id = {{ user.tenant }} AND category IN ({{ user.roles }})"
"#;

fn filter_for(g: &Grants, u: &User, ds: &str) -> String {
    g.evaluate(u)
        .unwrap()
        .datasource(ds)
        .unwrap_or_else(|| panic!("no access to {ds}"))
        .filter
        .clone()
}

#[test]
fn a_grant_may_give_only_data_sources_with_rendered_filters() {
    let g = grants(TENANT_SQL);
    let alice = user("alice", Some("acme"), &["viewer", "gear"], &[]);
    let access = g.evaluate(&alice).unwrap();
    assert!(access.pipes.is_empty());
    assert_eq!(filter_for(&g, &alice, "orders"), "org_id = 'acme'");
    assert_eq!(
        filter_for(&g, &alice, "products"),
        "org_id = 'acme' AND category IN ('viewer', 'gear')"
    );
    assert_eq!(access.datasources[0].grants, ["tenant-sql"]);
    assert_eq!(
        g.referenced_datasources(),
        [
            ("tenant-sql".to_owned(), "orders".to_owned()),
            ("tenant-sql".to_owned(), "products".to_owned())
        ]
    );
    assert!(
        g.referenced_attributes()
            .contains(&("tenant-sql".to_owned(), "tenant".to_owned()))
    );
}

#[test]
fn hostile_values_stay_one_string_literal() {
    let g = grants(TENANT_SQL);
    let cases = [
        ("x' OR '1'='1", "org_id = 'x'' OR ''1''=''1'"),
        ("a\\' OR 1=1 --", "org_id = 'a\\\\'' OR 1=1 --'"),
        (
            "'; DROP TABLE orders; --",
            "org_id = '''; DROP TABLE orders; --'",
        ),
        ("nul\0byte", "org_id = 'nul\\0byte'"),
        ("{{ user.id }}", "org_id = '{{ user.id }}'"),
        ("Ünïcødé \"q\"", "org_id = 'Ünïcødé \"q\"'"),
    ];
    for (tenant, want) in cases {
        let u = user("u", Some(tenant), &["viewer"], &[]);
        assert_eq!(filter_for(&g, &u, "orders"), want, "tenant {tenant:?}");
    }
    assert_eq!(sql_literal("it's"), "'it''s'");
}

#[test]
fn numbers_booleans_and_lists_render_as_literals() {
    let g = grants(
        r#"
[[grants]]
name = "g"
[grants.match]
any_user = true
[grants.datasources]
a = "n = {{ user.roles | length }}"
b = "x - {{ 0 - (user.roles | length) }} > 0"
c = "flag = {{ user.roles | length > 1 }}"
d = "r IN ({{ user.roles }}) AND t = {{ user.tenant | upper }}"
"#,
    );
    let u = user("u", Some("acme"), &["a", "b'c"], &[]);
    assert_eq!(filter_for(&g, &u, "a"), "n = 2");
    assert_eq!(filter_for(&g, &u, "b"), "x - (-2) > 0");
    assert_eq!(filter_for(&g, &u, "c"), "flag = true");
    assert_eq!(filter_for(&g, &u, "d"), "r IN ('a', 'b''c') AND t = 'ACME'");
}

#[test]
fn missing_or_blank_values_fail_closed() {
    let g = grants(TENANT_SQL);
    for tenant in [None, Some(""), Some("  ")] {
        let u = user("u", tenant, &["viewer"], &[]);
        assert_eq!(
            g.evaluate(&u),
            Err(GrantError::MissingFilterAttribute {
                grant: "tenant-sql".into(),
                datasource: "orders".into(),
                attribute: "tenant".into(),
            }),
            "tenant {tenant:?}"
        );
    }
    let err = g
        .evaluate(&user("u", None, &["viewer"], &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs attribute `tenant` for the filter on data source orders"),
        "{err}"
    );
}

#[test]
fn different_filters_for_one_data_source_conflict() {
    let g = grants(&format!(
        "{TENANT_SQL}{}",
        r#"
[[grants]]
name = "regional"
[grants.match]
roles = ["viewer"]
[grants.datasources]
orders = "region = {{ user.attributes.region }}"

[[grants]]
name = "same-filter"
[grants.match]
roles = ["viewer"]
[grants.datasources]
products = "org_id = {{ user.tenant }} AND category IN ({{ user.roles }})"
"#
    ));
    let u = user("u", Some("acme"), &["viewer"], &[("region", "eu")]);
    assert_eq!(
        g.evaluate(&u),
        Err(GrantError::DatasourceConflict {
            datasource: "orders".into(),
            grants: vec!["tenant-sql".into(), "regional".into()],
        })
    );
}

#[test]
fn identical_filters_merge_and_pipes_and_data_sources_combine() {
    let g = grants(&format!(
        "{TENANT_DASHBOARDS}{TENANT_SQL}{}",
        r#"
[[grants]]
name = "again"
[grants.match]
roles = ["viewer"]
[grants.datasources]
orders = "org_id = {{ user.tenant }}"
"#
    ));
    let access = g
        .evaluate(&user("u", Some("acme"), &["viewer"], &[]))
        .unwrap();
    assert_eq!(pipe_names(&access), ["sales_by_day", "top_products"]);
    assert_eq!(
        access.datasource("orders").unwrap().grants,
        ["tenant-sql", "again"]
    );
    let json = serde_json::to_value(&access).unwrap();
    assert_eq!(
        json["datasources"][0],
        serde_json::json!({"datasource": "orders", "filter": "org_id = 'acme'", "grants": ["tenant-sql", "again"]})
    );
}

#[test]
fn unsafe_or_invalid_filters_are_refused_at_load() {
    let errors = compile_errors(
        r#"
[[grants]]
name = "g"
[grants.match]
any_user = true
[grants.datasources]
"bad-name" = "a = 1"
"1st" = "a = 1"
q1 = "org_id = '{{ user.tenant }}'"
q2 = "\"{{ user.tenant }}\" = 1"
q3 = "`{{ user.tenant }}` = 1"
glued = "org_id = x{{ user.tenant }}"
glued_after = "org_id = {{ user.tenant }}x"
dotted = "t.{{ user.tenant }} = 1"
two = "org_id = {{ user.tenant }}{{ user.id }}"
comment = "org_id = 1 -- {{ user.tenant }}"
block = "org_id = 1 /* {{ user.tenant }} */"
semi = "org_id = {{ user.tenant }} ; DROP TABLE x"
bracket = "org_id = [{{ user.tenant }}]"
dollar = "org_id = $${{ user.tenant }}$$"
hash = "org_id = {{ user.tenant }} # x"
backslash = "org_id = {{ user.tenant }} AND a = 'x\\'"
open = "org_id = {{ user.tenant }} AND a = 'x"
blank = ""
syntax = "org_id = {{ user.tenant "
unknown = "org_id = {{ user.email }}"
stmt = "{% if user.tenant %}1{% endif %}"
map = "org_id = {{ user.id | first | string }}{{ user.attributes }}"
"#,
    );
    let expected = [
        r#"grants[0] ("g").datasources: "1st" is not a data source name"#,
        r#"grants[0] ("g").datasources: "bad-name" is not a data source name"#,
        r#"grants[0] ("g").datasources.q1 is not a safe filter (a value is inside a quoted string"#,
        r#"grants[0] ("g").datasources.q2 is not a safe filter (a value is inside a double-quoted identifier"#,
        r#"grants[0] ("g").datasources.q3 is not a safe filter (a value is inside a backquoted identifier"#,
        r#"grants[0] ("g").datasources.glued is not a safe filter (a value must stand on its own"#,
        r#"grants[0] ("g").datasources.glued_after is not a safe filter (a value must stand on its own"#,
        r#"grants[0] ("g").datasources.dotted is not a safe filter (a value must stand on its own"#,
        r#"grants[0] ("g").datasources.two is not a safe filter (a value must stand on its own"#,
        r#"grants[0] ("g").datasources.comment is not a safe filter (comments are not allowed"#,
        r#"grants[0] ("g").datasources.block is not a safe filter (comments are not allowed"#,
        r#"grants[0] ("g").datasources.semi is not a safe filter (the character ';'"#,
        r#"grants[0] ("g").datasources.bracket is not a safe filter (the character '['"#,
        r#"grants[0] ("g").datasources.dollar is not a safe filter (the character '$'"#,
        r#"grants[0] ("g").datasources.hash is not a safe filter (the character '#'"#,
        r#"grants[0] ("g").datasources.backslash is not a safe filter (a backslash inside quotes"#,
        r#"grants[0] ("g").datasources.open is not a safe filter (a quoted string is never closed"#,
        r#"grants[0] ("g").datasources.blank is always empty"#,
        r#"grants[0] ("g").datasources.syntax is not a valid template"#,
        r#"grants[0] ("g").datasources.unknown refers to `user.email`"#,
        r#"grants[0] ("g").datasources.stmt is not a valid template (only `{{ ... }}` expressions"#,
        r#"grants[0] ("g").datasources.map refers to `user.attributes`"#,
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing error starting with {want:?} in:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
}

#[test]
fn a_grant_needs_pipes_or_data_sources() {
    let errors = compile_errors(
        r#"
[[grants]]
name = "empty"
[grants.match]
any_user = true
"#,
    );
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(r#"grants[0] ("empty").pipes is empty: list the pipes"#)
            && errors[0].contains("datasources = { orders = \"org_id = {{ user.tenant }}\" }"),
        "{}",
        errors[0]
    );
}
