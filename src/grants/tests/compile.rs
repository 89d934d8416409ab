//! Config checks at load, and what `check` reads back from compiled grants.

use super::*;

#[test]
fn referenced_pipes_and_attributes_list_what_check_needs() {
    let g = grants(&format!(
        "{TWO_GRANTS_ON_SALES}{}",
        r#"
[[grants]]
name = "regional"
pipes = ["map"]
[grants.match]
any_user = true
[grants.fixed_params]
a = "{{ user.attributes.region }}-{{ user.attributes.zone }}"
b = "{{ user.attributes.region }}"
c = "{{ user.id }}{{ user.roles | first }}"
n = 3
"#
    ));
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(
        g.referenced_pipes(),
        pairs(&[
            ("viewers", "sales"),
            ("viewers", "top_products"),
            ("analysts", "sales"),
            ("analysts", "adhoc"),
            ("regional", "map"),
        ])
    );
    assert_eq!(
        g.referenced_attributes(),
        pairs(&[
            ("viewers", "tenant"),
            ("analysts", "tenant"),
            ("regional", "id"),
            ("regional", "roles"),
            ("regional", "attributes.region"),
            ("regional", "attributes.zone"),
        ])
    );
}

#[test]
fn every_compile_error_is_reported_at_once_with_its_location() {
    let errors = compile_errors(
        r#"
[[grants]]
name = "dup"
pipes = []
[grants.match]

[[grants]]
name = "dup"
pipes = ["p", " "]
[grants.match]
any_user = true
roles = []
tenants = ["acme"]
[grants.match.attributes]
plan = []
[grants.fixed_params]
a = "{{ user.tenant "
b = "{% if user.tenant %}x{% endif %}"
c = "{{ user.tenant | default('acme') }}"
d = [1, 2]
e = { x = 1 }
f = 1979-05-27
g = nan
h = "{{ user.email }}"
i = "{{ user.attributes }}"
j = "{{ tenant }}"
k = "{{ user.attributes.a.b }}"
l = ""
m = "{{ range(3) }}"

[[grants]]
name = ""
pipes = ["p"]
[grants.match]
roles = ["r"]
"#,
    );
    let expected = [
        r#"grants[0] ("dup").pipes is empty: list the pipes"#,
        r#"grants[0] ("dup").match has no condition: add roles, tenants or attributes, or set any_user = true"#,
        r#"grants[1] ("dup"): the name "dup" is already used by grants[0]; give every grant a unique name"#,
        r#"grants[1] ("dup").pipes[1] is empty"#,
        r#"grants[1] ("dup").match sets any_user = true and other conditions"#,
        r#"grants[1] ("dup").match.roles is an empty list, which matches nobody"#,
        r#"grants[1] ("dup").match.attributes.plan is an empty list"#,
        r#"grants[1] ("dup").fixed_params.a is not a valid template (syntax error"#,
        r#"grants[1] ("dup").fixed_params.b is not a valid template (only `{{ ... }}` expressions are allowed"#,
        r#"grants[1] ("dup").fixed_params.c is not a valid template (unknown filter"#,
        r#"grants[1] ("dup").fixed_params.d is an array: use a string (template), an integer, a float or a boolean"#,
        r#"grants[1] ("dup").fixed_params.e is a table"#,
        r#"grants[1] ("dup").fixed_params.f is a datetime"#,
        r#"grants[1] ("dup").fixed_params.g is a NaN or infinite float"#,
        r#"grants[1] ("dup").fixed_params.h refers to `user.email`: templates may only use user.id, user.tenant, user.roles and user.attributes.<name>"#,
        r#"grants[1] ("dup").fixed_params.i refers to `user.attributes`"#,
        r#"grants[1] ("dup").fixed_params.j refers to `tenant`"#,
        r#"grants[1] ("dup").fixed_params.k refers to `user.attributes.a.b`"#,
        r#"grants[1] ("dup").fixed_params.l is always empty, so this grant could never mint a token"#,
        r#"grants[1] ("dup").fixed_params.m refers to `range`"#,
        r#"grants[2].name is empty: give every grant a short unique name"#,
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
fn unknown_filter_error_lists_the_available_filters() {
    let errors = compile_errors(
        r#"
[[grants]]
name = "g"
pipes = ["p"]
[grants.match]
any_user = true
[grants.fixed_params]
org = "{{ user.tenant | lowr }}"
"#,
    );
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("the filters available are lower, upper"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_config_keys_are_refused() {
    let bad_grant = "[[grants]]\nname='g'\npipes=['p']\nrole='x'\n[grants.match]\nany_user=true\n";
    assert!(toml::from_str::<Config>(bad_grant).is_err());
    let bad_match = "[[grants]]\nname='g'\npipes=['p']\n[grants.match]\nrole=['x']\n";
    assert!(toml::from_str::<Config>(bad_match).is_err());
    let no_match = "[[grants]]\nname='g'\npipes=['p']\n";
    assert!(toml::from_str::<Config>(no_match).is_err());
}

#[test]
fn grants_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Grants>();
}
