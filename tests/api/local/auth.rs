//! Auth: where the token comes from, why a JWT is refused (always a 403 that says why), scopes
//! by pipe name or id, and the admin token reading everything.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tinybird_bff::tinybird::claims::{Claims, Scope};

use super::{Reply, get, send};
use crate::helpers::{
    WORKSPACE, admin_key_text, client, jwt_for, now, sign_claims, sign_raw, spawn_local,
};

const TOP: &str = "/v0/pipes/top_products.json";

/// Valid claims for `top_products` with `org_id` fixed to acme; tests break one thing each.
fn payload() -> Value {
    json!({
        "workspace_id": WORKSPACE,
        "name": "auth-test",
        "exp": now() + 600,
        "iat": now(),
        "scopes": [{"type": "PIPES:READ", "resource": "top_products", "fixed_params": {"org_id": "acme"}}],
    })
}

fn signed(payload: &Value) -> String {
    sign_raw(payload, admin_key_text().as_bytes())
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut p = payload();
    change(p.as_object_mut().unwrap());
    signed(&p)
}

fn org(org: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("org_id".into(), json!(org));
    m
}

fn pipe_id(name: &str) -> String {
    format!("t_{}", &hex::encode(Sha256::digest(name.as_bytes()))[..32])
}

#[tokio::test]
async fn a_valid_jwt_is_read_from_the_bearer_header_or_the_token_param() {
    let server = spawn_local().await;
    let token = jwt_for("alice", &["top_products"], Some("acme"));
    let by_header = get(&server.url, TOP, Some(&token)).await;
    assert!(!by_header.org_ids().is_empty());
    assert!(by_header.org_ids().iter().all(|o| o == "acme"));
    let by_param = get(&server.url, &format!("{TOP}?token={token}"), None).await;
    assert_eq!(by_param.rows(), by_header.rows());
    // The sanity payload itself is accepted, so each refusal below is down to its one change.
    assert_eq!(
        get(&server.url, TOP, Some(&signed(&payload())))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_token_param_wins_over_the_header_as_in_tinybird() {
    let server = spawn_local().await;
    let jwt = jwt_for("alice", &["top_products"], Some("acme"));
    // Tinybird reads `?token=` first and looks at the header only without it.
    let r = get(
        &server.url,
        &format!("/v0/pipes/orgs_overview.json?token={}", admin_key_text()),
        Some(&jwt),
    )
    .await;
    assert_eq!(
        r.rows().len(),
        3,
        "the admin token in the URL is the one used"
    );
    let r = get(
        &server.url,
        &format!("/v0/pipes/orgs_overview.json?token={jwt}"),
        Some(&admin_key_text()),
    )
    .await;
    r.assert_error(403, &["orgs_overview"]);
}

#[tokio::test]
async fn every_refused_token_is_a_403_that_says_why() {
    let server = spawn_local().await;
    let other_key = sign_raw(&payload(), b"p.some-other-workspace-admin-token");
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "missing exp",
            with(|p| drop(p.remove("exp"))),
            &[
                "Unexpected error decoding / validating token",
                "missing the \"exp\" claim",
            ],
        ),
        (
            "expired exp",
            with(|p| drop(p.insert("exp".into(), json!(now() - 5)))),
            &["Invalid token b'", "Signature has expired"],
        ),
        (
            "float exp",
            with(|p| drop(p.insert("exp".into(), json!(now() as f64 + 600.5)))),
            &["(exp)", "must be an integer"],
        ),
        (
            "string exp",
            with(|p| drop(p.insert("exp".into(), json!((now() + 600).to_string())))),
            &["(exp)", "must be an integer"],
        ),
        (
            "bad signature",
            other_key,
            &["Signature verification failed"],
        ),
        (
            "wrong workspace",
            with(|p| {
                drop(p.insert(
                    "workspace_id".into(),
                    json!("11111111-2222-4333-8444-555555555555"),
                ))
            }),
            &["Workspace with ID", "11111111", "not found"],
        ),
        (
            "missing workspace_id",
            with(|p| drop(p.remove("workspace_id"))),
            &["Workspace ID missing in JWT token"],
        ),
        (
            "missing name",
            with(|p| drop(p.remove("name"))),
            &["`name`"],
        ),
        (
            "missing scopes",
            with(|p| drop(p.remove("scopes"))),
            &["`scopes`"],
        ),
        (
            "scopes not a list",
            with(|p| drop(p.insert("scopes".into(), json!("PIPES:READ")))),
            &["`scopes`"],
        ),
        (
            "pipe not in scopes",
            with(|p| {
                drop(p.insert(
                    "scopes".into(),
                    json!([{"type": "PIPES:READ", "resource": "recent_orders"}]),
                ))
            }),
            &["scope", "top_products"],
        ),
        (
            "only a datasource scope",
            with(|p| {
                drop(p.insert("scopes".into(), json!([{"type": "DATASOURCES:READ", "resource": "orders", "filter": "org_id = 'acme'"}])))
            }),
            &["PIPES:READ", "top_products"],
        ),
        (
            "append scope",
            with(|p| {
                drop(p.insert(
                    "scopes".into(),
                    json!([{"type": "DATASOURCES:APPEND", "resource": "orders"}]),
                ))
            }),
            &["DATASOURCES:APPEND", "not allowed"],
        ),
        (
            "admin scope",
            with(|p| {
                drop(p.insert("scopes".into(), json!([{"type": "PIPES:READ", "resource": "top_products"}, {"type": "ADMIN", "resource": ""}])))
            }),
            &["ADMIN", "not allowed"],
        ),
        (
            "garbage",
            "garbage".to_owned(),
            &["b'garbage'", "Not enough segments"],
        ),
    ];
    for (case, token, words) in cases {
        let r = get(&server.url, TOP, Some(&token)).await;
        assert_eq!(r.status, 403, "{case}: {}", r.body);
        let message = r.assert_error(403, words);
        if !message.contains("scope") {
            assert!(
                message.starts_with("invalid authentication token. "),
                "{case}: Tinybird's prefix: {message}"
            );
        }
        // Tinybird echoes the token it failed to decode or verify, in Python's bytes notation.
        if message.contains("Invalid token") || message.contains("Unexpected error") {
            assert!(
                message.contains(&format!("b'{token}'")),
                "{case}: {message}"
            );
        }
        assert!(
            !message.contains(&admin_key_text()),
            "{case}: the message leaks the key"
        );
    }
}

#[tokio::test]
async fn a_missing_or_misshapen_credential_is_no_token_as_in_tinybird() {
    let server = spawn_local().await;
    let jwt = jwt_for("alice", &["top_products"], Some("acme"));
    let bare = |r: Reply| {
        let message = r.assert_error(403, &[]);
        assert_eq!(message, "invalid authentication token", "{}", r.body);
    };
    bare(get(&server.url, TOP, None).await);
    bare(get(&server.url, &format!("{TOP}?token="), None).await);
    // `Authorization` is split on one space into exactly `Bearer` and the token.
    for header in [
        "Basic YWxpY2U6cHc=".to_owned(),
        "Bearer ".to_owned(),
        format!("bearer {jwt}"),
        format!("BEARER {jwt}"),
        format!("Bearer  {jwt}"),
        format!("Bearer {jwt} extra"),
        jwt.clone(),
    ] {
        let r = send(
            client()
                .get(format!("{}{TOP}", server.url))
                .header("authorization", header.as_str()),
        )
        .await;
        bare(r);
    }
    assert_eq!(get(&server.url, TOP, Some(&jwt)).await.status, 200);
}

#[tokio::test]
async fn scopes_match_by_pipe_id_as_well_as_name() {
    let server = spawn_local().await;
    let id = pipe_id("top_products");
    let claims = |resource: &str| Claims {
        workspace_id: WORKSPACE.into(),
        name: "by-id".into(),
        exp: now() + 600,
        iat: None,
        scopes: vec![Scope::pipe(resource, org("globex"))],
        limits: None,
    };
    let r = get(&server.url, TOP, Some(&sign_claims(claims(&id)))).await;
    let orgs = r.org_ids();
    assert!(
        !orgs.is_empty() && orgs.iter().all(|o| o == "globex"),
        "{orgs:?}"
    );
    // The id of another pipe grants that pipe only.
    let other = sign_claims(claims(&pipe_id("recent_orders")));
    get(&server.url, TOP, Some(&other))
        .await
        .assert_error(403, &["top_products"]);
    assert_eq!(
        get(&server.url, "/v0/pipes/recent_orders.json", Some(&other))
            .await
            .status,
        200
    );
    // An id-shaped string that is no pipe's id grants nothing.
    let bogus = sign_claims(claims("t_00000000000000000000000000000000"));
    get(&server.url, TOP, Some(&bogus))
        .await
        .assert_error(403, &["scope"]);
}

#[tokio::test]
async fn one_jwt_reads_several_pipes_each_with_its_own_fixed_params() {
    let server = spawn_local().await;
    let token = sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "multi".into(),
        exp: now() + 600,
        iat: Some(now()),
        scopes: vec![
            Scope::pipe("top_products", org("acme")),
            Scope::pipe("recent_orders", org("initech")),
        ],
        limits: None,
    });
    let top = get(&server.url, TOP, Some(&token)).await.org_ids();
    let recent = get(&server.url, "/v0/pipes/recent_orders.json", Some(&token))
        .await
        .org_ids();
    assert!(
        !top.is_empty() && top.iter().all(|o| o == "acme"),
        "{top:?}"
    );
    assert!(
        !recent.is_empty() && recent.iter().all(|o| o == "initech"),
        "{recent:?}"
    );
    get(&server.url, "/v0/pipes/sales_by_day.json", Some(&token))
        .await
        .assert_error(403, &["sales_by_day"]);
}

#[tokio::test]
async fn extra_claims_are_tolerated() {
    let server = spawn_local().await;
    let token = with(|p| {
        p.insert("nbf".into(), json!(now() - 60));
        p.insert("sub".into(), json!("user-42"));
        p.insert("custom".into(), json!({"plan": "pro"}));
    });
    assert!(
        get(&server.url, TOP, Some(&token))
            .await
            .org_ids()
            .iter()
            .all(|o| o == "acme")
    );
}

#[tokio::test]
async fn the_admin_token_reads_every_pipe_without_fixed_params() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    for pipe in ["top_products", "sales_by_day", "recent_orders"] {
        for org in ["acme", "globex", "initech"] {
            let r: Reply = get(
                &server.url,
                &format!("/v0/pipes/{pipe}.json?org_id={org}"),
                Some(&admin),
            )
            .await;
            let orgs = r.org_ids();
            assert!(
                !orgs.is_empty() && orgs.iter().all(|o| o == org),
                "{pipe} for {org}: {orgs:?}"
            );
        }
    }
    let overview = get(
        &server.url,
        &format!("/v0/pipes/orgs_overview.json?token={admin}"),
        None,
    )
    .await;
    assert_eq!(overview.rows().len(), 3);
}
