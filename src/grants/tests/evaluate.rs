//! The per-user decision: matching, rendering, merging, and failing closed.

use serde_json::json;

use super::*;

#[test]
fn a_user_with_any_listed_role_matches() {
    let g = grants(TENANT_DASHBOARDS);
    let analyst = user("bob", Some("acme"), &["analyst"], &[]);
    let access = g.evaluate(&analyst).unwrap();
    assert_eq!(pipe_names(&access), ["sales_by_day", "top_products"]);
    let nobody = user("eve", Some("acme"), &["admin"], &[]);
    assert_eq!(
        g.evaluate(&nobody),
        Err(GrantError::NoGrant { user: "eve".into() })
    );
}

#[test]
fn every_given_condition_must_hold() {
    let g = grants(
        r#"
[[grants]]
name = "pro-acme-viewers"
pipes = ["p"]
[grants.match]
roles = ["viewer"]
tenants = ["acme", "globex"]
[grants.match.attributes]
plan = ["pro", "enterprise"]
region = "eu"
"#,
    );
    let ok = user(
        "a",
        Some("globex"),
        &["viewer"],
        &[("plan", "enterprise"), ("region", "eu")],
    );
    assert!(g.evaluate(&ok).is_ok());
    let cases = [
        user(
            "a",
            Some("globex"),
            &["editor"],
            &[("plan", "pro"), ("region", "eu")],
        ),
        user(
            "a",
            Some("initech"),
            &["viewer"],
            &[("plan", "pro"), ("region", "eu")],
        ),
        user("a", None, &["viewer"], &[("plan", "pro"), ("region", "eu")]),
        user(
            "a",
            Some("acme"),
            &["viewer"],
            &[("plan", "free"), ("region", "eu")],
        ),
        user(
            "a",
            Some("acme"),
            &["viewer"],
            &[("plan", "pro"), ("region", "us")],
        ),
        user("a", Some("acme"), &["viewer"], &[("plan", "pro")]),
        // Matching is exact: no case folding, no trimming.
        user(
            "a",
            Some("ACME"),
            &["viewer"],
            &[("plan", "pro"), ("region", "eu")],
        ),
        user(
            "a",
            Some("acme"),
            &["Viewer"],
            &[("plan", "pro"), ("region", "eu")],
        ),
    ];
    for u in cases {
        assert!(
            matches!(g.evaluate(&u), Err(GrantError::NoGrant { .. })),
            "{u:?} should not match"
        );
    }
}

#[test]
fn any_user_matches_everyone_even_without_tenant_or_roles() {
    let g = grants(
        r#"
[[grants]]
name = "public"
pipes = ["status"]
[grants.match]
any_user = true
"#,
    );
    let access = g.evaluate(&user("anon", None, &[], &[])).unwrap();
    assert_eq!(
        access.pipe("status").unwrap().fixed_params,
        serde_json::Map::new()
    );
    assert_eq!(access.pipe("status").unwrap().grants, ["public"]);
}

#[test]
fn fixed_params_render_from_tenant_attributes_and_literals() {
    let g = grants(
        r#"
[[grants]]
name = "g"
pipes = ["p"]
[grants.match]
tenants = ["acme"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"
region = "{{ user.attributes.region | upper }}"
who = "{{ user.id }}:{{ user.roles | join(',') }}"
label = "static"
max_rows = 1000
ratio = 0.5
strict = true
"#,
    );
    let u = user(
        "alice",
        Some("acme"),
        &["viewer", "analyst"],
        &[("region", "eu")],
    );
    let access = g.evaluate(&u).unwrap();
    let p = access.pipe("p").unwrap();
    assert_eq!(
        serde_json::Value::Object(p.fixed_params.clone()),
        json!({"org_id": "acme", "region": "EU", "who": "alice:viewer,analyst",
               "label": "static", "max_rows": 1000, "ratio": 0.5, "strict": true})
    );
    assert!(!p.allow_sql_over_pipe);
}

#[test]
fn special_characters_pass_through_verbatim() {
    let g = grants(TENANT_DASHBOARDS);
    let nasty = r#"x' OR '1'='1 "<b>&amp;</b>" {{ 7*7 }} \n"#;
    let access = g
        .evaluate(&user("a", Some(nasty), &["viewer"], &[]))
        .unwrap();
    assert_eq!(
        access.pipe("top_products").unwrap().fixed_params["org_id"],
        json!(nasty)
    );
}

#[test]
fn missing_tenant_fails_closed() {
    let g = grants(TENANT_DASHBOARDS);
    let err = g
        .evaluate(&user("alice", None, &["viewer"], &[]))
        .unwrap_err();
    assert_eq!(
        err,
        GrantError::MissingAttribute {
            grant: "tenant-dashboards".into(),
            param: "org_id".into(),
            attribute: "tenant".into(),
        }
    );
    let message = err.to_string();
    assert!(
        message
            .starts_with("grant tenant-dashboards needs attribute `tenant` for fixed param org_id")
    );
}

#[test]
fn missing_empty_or_blank_attribute_fails_closed() {
    let g = grants(
        r#"
[[grants]]
name = "regional"
pipes = ["p"]
[grants.match]
roles = ["viewer"]
[grants.fixed_params]
region = "region-{{ user.attributes.region }}"
"#,
    );
    let expected = Err(GrantError::MissingAttribute {
        grant: "regional".into(),
        param: "region".into(),
        attribute: "attributes.region".into(),
    });
    // Even with a literal prefix, so "region-" is never minted.
    for attrs in [
        vec![],
        vec![("region", "")],
        vec![("region", " \t\n")],
        vec![("other", "eu")],
    ] {
        let u = user("a", Some("acme"), &["viewer"], &attrs);
        assert_eq!(g.evaluate(&u), expected, "attributes {attrs:?}");
    }
    let blank_tenant = grants(TENANT_DASHBOARDS);
    for tenant in ["", "   "] {
        let u = user("a", Some(tenant), &["viewer"], &[]);
        assert!(matches!(
            blank_tenant.evaluate(&u),
            Err(GrantError::MissingAttribute { .. })
        ));
    }
}

#[test]
fn a_template_that_renders_blank_fails_closed() {
    let g = grants(
        r#"
[[grants]]
name = "g"
pipes = ["p"]
[grants.match]
any_user = true
[grants.fixed_params]
org_id = "{{ user.tenant | replace('x', '') | trim }}"
"#,
    );
    assert!(g.evaluate(&user("a", Some("x y"), &[], &[])).is_ok());
    let err = g.evaluate(&user("a", Some("xx x"), &[], &[])).unwrap_err();
    assert!(matches!(err, GrantError::MissingAttribute { attribute, .. } if attribute == "tenant"));
}

#[test]
fn one_failing_grant_fails_the_whole_evaluation() {
    let g = grants(
        r#"
[[grants]]
name = "open"
pipes = ["status"]
[grants.match]
any_user = true

[[grants]]
name = "regional"
pipes = ["sales"]
[grants.match]
roles = ["viewer"]
[grants.fixed_params]
region = "{{ user.attributes.region }}"
"#,
    );
    let u = user("a", Some("acme"), &["viewer"], &[]);
    assert!(
        matches!(g.evaluate(&u), Err(GrantError::MissingAttribute { grant, .. }) if grant == "regional")
    );
}

#[test]
fn no_grant_is_an_error_not_an_empty_token() {
    let g = grants(TENANT_DASHBOARDS);
    let err = g
        .evaluate(&user("alice", Some("acme"), &[], &[]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user alice matches no grant: ask an admin to add a grant for their role or tenant"
    );
    let none = Grants::compile(&[]).unwrap();
    assert!(matches!(
        none.evaluate(&user("a", None, &[], &[])),
        Err(GrantError::NoGrant { .. })
    ));
}

#[test]
fn same_pipe_with_identical_params_merges() {
    let g = grants(TWO_GRANTS_ON_SALES);
    let u = user("a", Some("acme"), &["viewer", "analyst"], &[]);
    let access = g.evaluate(&u).unwrap();
    assert_eq!(pipe_names(&access), ["adhoc", "sales", "top_products"]);
    let sales = access.pipe("sales").unwrap();
    assert_eq!(sales.grants, ["viewers", "analysts"]);
    assert!(sales.allow_sql_over_pipe, "allow_sql_over_pipe is OR'ed");
    assert!(!access.pipe("top_products").unwrap().allow_sql_over_pipe);
    assert_eq!(sales.fixed_params["org_id"], json!("acme"));
}

#[test]
fn same_pipe_with_different_params_is_a_conflict() {
    // The second grant (analysts) also filters by region; the first does not.
    let src = format!("{TWO_GRANTS_ON_SALES}region = \"eu\"\n");
    let g = grants(&src);
    let u = user("a", Some("acme"), &["viewer", "analyst"], &[]);
    let err = g.evaluate(&u).unwrap_err();
    assert_eq!(
        err,
        GrantError::Conflict {
            pipe: "sales".into(),
            grants: vec!["viewers".into(), "analysts".into()]
        }
    );
    assert!(
        err.to_string()
            .contains("viewers, analysts all give pipe sales")
    );
    // Each grant alone is fine.
    assert!(
        g.evaluate(&user("a", Some("acme"), &["analyst"], &[]))
            .is_ok()
    );
}

#[test]
fn literal_and_string_of_same_number_conflict() {
    let g = grants(
        r#"
[[grants]]
name = "a"
pipes = ["p"]
[grants.match]
any_user = true
[grants.fixed_params]
limit = 10
[[grants]]
name = "b"
pipes = ["p"]
[grants.match]
any_user = true
[grants.fixed_params]
limit = "10"
"#,
    );
    assert!(matches!(
        g.evaluate(&user("u", None, &[], &[])),
        Err(GrantError::Conflict { .. })
    ));
}

#[test]
fn output_is_sorted_by_pipe_and_serialises_plainly() {
    let g = grants(
        r#"
[[grants]]
name = "g"
pipes = ["zeta", "alpha", "mid", "alpha"]
[grants.match]
any_user = true
[grants.fixed_params]
org = "{{ user.tenant }}"
"#,
    );
    let access = g.evaluate(&user("u", Some("t"), &[], &[])).unwrap();
    assert_eq!(pipe_names(&access), ["alpha", "mid", "zeta"]);
    assert!(access.pipe("nope").is_none());
    assert_eq!(
        serde_json::to_value(&access.pipes[0]).unwrap(),
        json!({"pipe": "alpha", "fixed_params": {"org": "t"}, "grants": ["g"], "allow_sql_over_pipe": false})
    );
}

#[test]
fn the_cached_answer_is_the_evaluated_one_and_follows_the_user() {
    let g = grants(TENANT_DASHBOARDS);
    let alice = user("alice", Some("acme"), &["viewer"], &[]);
    let first = g.evaluate_cached(&alice).unwrap();
    assert_eq!(*first, g.evaluate(&alice).unwrap());
    assert!(
        Arc::ptr_eq(&first, &g.evaluate_cached(&alice).unwrap()),
        "the second call is served from the cache"
    );
    // Same id, other tenant (a changed attribute): its own answer, never alice's old one.
    let moved = user("alice", Some("globex"), &["viewer"], &[]);
    let after = g.evaluate_cached(&moved).unwrap();
    assert_eq!(after.pipes[0].fixed_params["org_id"], "globex");
    // Refusals are answered each time, and not kept.
    let nobody = user("eve", Some("acme"), &[], &[]);
    assert!(g.evaluate_cached(&nobody).is_err());
    assert!(g.evaluate_cached(&nobody).is_err());
    let missing = user("bob", None, &["viewer"], &[]);
    assert!(
        g.evaluate_cached(&missing).is_err(),
        "fail closed without a tenant"
    );
}
