//! Parameters: fixed params from the JWT always win, whatever the request sends and however
//! it sends it; template values are bound (never spliced), typed, defaulted and required.

use serde_json::{Map, json};
use tinybird_bff::tinybird::claims::{Claims, Scope};

use super::{get, post_form};
use crate::helpers::{WORKSPACE, admin_key_text, jwt_for, now, sign_claims, spawn_local};

fn assert_only(orgs: &[String], org: &str, how: &str) {
    assert!(!orgs.is_empty(), "{how}: no rows");
    assert!(
        orgs.iter().all(|o| o == org),
        "{how}: rows of other tenants leaked: {orgs:?}"
    );
}

#[tokio::test]
async fn fixed_params_win_over_query_form_both_and_repeated_keys() {
    let server = spawn_local().await;
    let token = jwt_for(
        "globex-user",
        &["recent_orders", "top_products"],
        Some("globex"),
    );
    let url = &server.url;
    let path = "/v0/pipes/recent_orders.json";
    let query = get(url, &format!("{path}?org_id=acme"), Some(&token)).await;
    assert_only(&query.org_ids(), "globex", "query param");
    let repeated = get(
        url,
        &format!("{path}?org_id=acme&org_id=initech&org_id=globex"),
        Some(&token),
    )
    .await;
    assert_only(&repeated.org_ids(), "globex", "repeated query param");
    let form = post_form(url, path, &token, "org_id=acme").await;
    assert_only(&form.org_ids(), "globex", "form body");
    let both = post_form(
        url,
        &format!("{path}?org_id=initech"),
        &token,
        "org_id=acme&org_id=initech",
    )
    .await;
    assert_only(&both.org_ids(), "globex", "query and form body");
    // An array-looking value must not widen the filter either.
    let list = get(
        url,
        &format!("{path}?org_id=acme,initech,globex"),
        Some(&token),
    )
    .await;
    assert_only(&list.org_ids(), "globex", "comma list");
    // Unfixed params still work: limit is the request's.
    let limited = get(url, &format!("{path}?org_id=acme&limit=4"), Some(&token)).await;
    assert_eq!(limited.rows().len(), 4);
}

#[tokio::test]
async fn non_string_fixed_params_win_too() {
    let server = spawn_local().await;
    let mut fixed = Map::new();
    fixed.insert("org_id".into(), json!("initech"));
    fixed.insert("limit".into(), json!(3));
    let token = sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "fixed-limit".into(),
        exp: now() + 600,
        iat: None,
        scopes: vec![Scope::pipe("recent_orders", fixed)],
        limits: None,
    });
    let r = get(
        &server.url,
        "/v0/pipes/recent_orders.json?limit=500&org_id=acme",
        Some(&token),
    )
    .await;
    assert_eq!(r.rows().len(), 3, "the JWT's limit wins");
    assert_only(&r.org_ids(), "initech", "numeric fixed param");
    let form = post_form(
        &server.url,
        "/v0/pipes/recent_orders.json",
        &token,
        "limit=500",
    )
    .await;
    assert_eq!(form.rows().len(), 3);
}

#[tokio::test]
async fn values_are_bound_not_spliced_so_injection_finds_nothing() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["sales_by_day"], Some("acme"));
    let url = &server.url;
    let all = get(url, "/v0/pipes/sales_by_day.json", Some(&token))
        .await
        .rows();
    assert!(!all.is_empty());
    for attack in [
        "x%27%20OR%20%271%27%3D%271",
        "x%27)%20OR%201%3D1%20--",
        "%27%3B%20DROP%20TABLE%20orders%3B%20--",
    ] {
        let r = get(
            url,
            &format!("/v0/pipes/sales_by_day.json?category={attack}"),
            Some(&token),
        )
        .await;
        assert_eq!(
            r.rows(),
            Vec::<serde_json::Value>::new(),
            "category={attack} must match no category"
        );
    }
    // The table is still there: the DROP attempt was only ever a string value.
    assert_eq!(
        get(url, "/v0/pipes/sales_by_day.json", Some(&token))
            .await
            .rows(),
        all
    );
    // Same with the admin token through the tenant filter itself.
    let admin = admin_key_text();
    let r = get(
        url,
        "/v0/pipes/recent_orders.json?org_id=acme%27%20OR%20%271%27%3D%271",
        Some(&admin),
    )
    .await;
    assert!(r.rows().is_empty(), "{}", r.body);
}

#[tokio::test]
async fn type_errors_are_400s_naming_the_param_and_its_type() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    for (value, extra) in [
        ("abc", "abc"),
        ("3000000000", "3000000000"),
        ("1.5", "1.5"),
        ("-9999999999", "-9999999999"),
    ] {
        let r = get(
            &server.url,
            &format!("/v0/pipes/top_products.json?limit={value}"),
            Some(&token),
        )
        .await;
        r.assert_error(400, &["limit", "Int32", extra]);
    }
    let r = get(
        &server.url,
        "/v0/pipes/top_products.json?days=soon",
        Some(&token),
    )
    .await;
    r.assert_error(400, &["days", "Int32"]);
}

#[tokio::test]
async fn a_missing_required_param_is_a_400_naming_it() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    for pipe in ["top_products", "sales_by_day", "recent_orders"] {
        let r = get(&server.url, &format!("/v0/pipes/{pipe}.json"), Some(&admin)).await;
        r.assert_error(400, &["missing", "org_id"]);
    }
    // An empty org_id may be refused or match nothing, but never every tenant (fail closed).
    let r = get(
        &server.url,
        "/v0/pipes/recent_orders.json?org_id=",
        Some(&admin),
    )
    .await;
    assert!(r.status == 400 || r.rows().is_empty(), "{}", r.body);
}

#[tokio::test]
async fn defaults_apply_when_a_param_is_absent() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    let recent = get(
        &server.url,
        "/v0/pipes/recent_orders.json?org_id=acme",
        Some(&admin),
    )
    .await;
    assert_eq!(
        recent.rows().len(),
        20,
        "recent_orders LIMIT defaults to 20"
    );
    let top = get(
        &server.url,
        "/v0/pipes/top_products.json?org_id=acme",
        Some(&admin),
    )
    .await;
    assert_eq!(top.rows().len(), 10, "top_products LIMIT defaults to 10");
    // sales_by_day's `days` defaults to 30: the last 30 calendar days of data, the last one included.
    let days = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?org_id=acme",
        Some(&admin),
    )
    .await;
    assert_eq!(days.rows().len(), 30);
    let week = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?org_id=acme&days=6",
        Some(&admin),
    )
    .await;
    assert_eq!(week.rows().len(), 6);
    // An empty value counts as absent for typed params, so the default applies.
    let empty = get(
        &server.url,
        "/v0/pipes/recent_orders.json?org_id=acme&limit=",
        Some(&admin),
    )
    .await;
    assert_eq!(empty.rows().len(), 20);
}

#[tokio::test]
async fn an_if_defined_branch_filters_only_when_the_param_is_sent() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["sales_by_day"], Some("acme"));
    let revenue = |rows: &[serde_json::Value]| {
        rows.iter()
            .map(|r| r["revenue"].as_f64().unwrap())
            .sum::<f64>()
    };
    let all = get(&server.url, "/v0/pipes/sales_by_day.json", Some(&token))
        .await
        .rows();
    let footwear = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?category=footwear",
        Some(&token),
    )
    .await
    .rows();
    let gear = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?category=gear",
        Some(&token),
    )
    .await
    .rows();
    assert!(!footwear.is_empty() && !gear.is_empty());
    assert!(revenue(&footwear) < revenue(&all) && revenue(&gear) < revenue(&all));
    assert!(
        (revenue(&footwear) - revenue(&gear)).abs() > 1.0,
        "categories filter differently"
    );
    let none = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?category=spaceships",
        Some(&token),
    )
    .await
    .rows();
    assert!(none.is_empty());
    // `defined` means a non-empty value: `category=` is the unfiltered result.
    let empty = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?category=",
        Some(&token),
    )
    .await
    .rows();
    assert_eq!(empty, all);
}

#[tokio::test]
async fn unknown_params_are_ignored() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let plain = get(&server.url, "/v0/pipes/top_products.json", Some(&token))
        .await
        .rows();
    let sdk = get(
        &server.url,
        "/v0/pipes/top_products.json?from=ts-sdk&cli_version=1.2.3&whatever=1",
        Some(&token),
    )
    .await;
    assert_eq!(sdk.rows(), plain);
}

#[tokio::test]
async fn q_is_refused_with_a_jwt_and_never_runs_sql() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let r = get(
        &server.url,
        "/v0/pipes/top_products.json?q=SELECT%20*%20FROM%20orders",
        Some(&token),
    )
    .await;
    r.assert_error(403, &["`q`"]);
    let form = post_form(
        &server.url,
        "/v0/pipes/top_products.json",
        &token,
        "q=SELECT+1",
    )
    .await;
    form.assert_error(403, &["`q`"]);
    let admin = get(
        &server.url,
        "/v0/pipes/top_products.json?org_id=acme&q=SELECT%201",
        Some(&admin_key_text()),
    )
    .await;
    admin.assert_error(400, &["`q`"]);
}
