//! The management routes (`/api/keys`), as tenant admins and platform admins use them from the
//! web app: the session cookie and the CSRF header, never an `Authorization` header.

use reqwest::Client;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// The demo with its keys in memory and the audit log in a file the test reads.
pub async fn app_with_audit(
    tweak: impl FnOnce(&mut tinybird_bff::config::Settings),
) -> (TestApp, std::path::PathBuf) {
    let audit = std::env::temp_dir().join(format!("tbff-keys-audit-{}.log", uuid::Uuid::new_v4()));
    let path = audit.clone();
    let app = spawn_app_with(move |s| {
        s.audit = tinybird_bff::audit::AuditOutput::File(path);
        tweak(s);
    })
    .await;
    (app, audit)
}

pub async fn post(app: &TestApp, c: &Client, path: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(format!("{}{path}", app.url))
        .header("x-bff-csrf", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub async fn get(app: &TestApp, c: &Client, path: &str) -> (u16, Value) {
    let r = app.get_with(c, path).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_tenant_admin_creates_lists_rolls_and_revokes_their_tenants_keys() {
    let (app, audit) = app_with_audit(|_| {}).await;
    let alice = app.session_for("alice").await;
    let (status, listed) = get(&app, &alice, "api/keys").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["tenant"], "acme");
    assert_eq!(
        listed["grantable"]["pipes"],
        json!(["recent_orders", "sales_by_day", "top_products"]),
        "what alice reads, as a key of acme would: {listed}"
    );
    let (status, made) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "nightly export", "pipes": ["top_products"], "expires_in": "30d",
               "rps": 5, "quota": {"requests": 1000, "period": "day"}}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["secret"].as_str().unwrap().to_owned();
    let id = made["key"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("tbk_live_{id}_")), "{secret}");
    assert_eq!(made["key"]["prefix"], format!("tbk_live_{}", &id[..4]));
    assert_eq!(made["key"]["tenant"], "acme");
    assert_eq!(made["key"]["created_by"], "alice");
    assert_eq!(made["key"]["token_name"], format!("key:{id}@acme"));

    let (_, listed) = get(&app, &alice, "api/keys").await;
    assert_eq!(ids(&listed), [id.as_str()]);
    assert!(
        !listed.to_string().contains(&secret[22..]),
        "the secret is shown once only"
    );
    assert_eq!(listed["keys"][0]["status"], "active");

    let (status, rolled) = post(
        &app,
        &alice,
        &format!("api/keys/{id}/roll"),
        json!({"grace": "10m"}),
    )
    .await;
    assert_eq!(status, 200, "{rolled}");
    let new_secret = rolled["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rolled["key"]["previous_valid_until"].as_i64().unwrap() > crate::helpers::now() + 500);
    let (status, err) = post(
        &app,
        &alice,
        &format!("api/keys/{id}/roll"),
        json!({"grace": "30d"}),
    )
    .await;
    assert_eq!(status, 400, "longer than keys.max_grace: {err}");
    assert!(
        err["error"].as_str().unwrap().contains("keys.max_grace"),
        "{err}"
    );

    let (status, revoked) = post(&app, &alice, &format!("api/keys/{id}/revoke"), json!({})).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["key"]["status"], "revoked");
    assert_eq!(revoked["key"]["revoked_by"], "alice");

    let lines = std::fs::read_to_string(&audit).unwrap();
    for event in ["key.created", "key.rolled", "key.revoked"] {
        let line = lines
            .lines()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("{event} in {lines}"));
        assert!(
            line.contains(&id) && line.contains(&format!("tbk_live_{}", &id[..4])),
            "{line}"
        );
    }
    for s in [&secret, new_secret] {
        let secret_part = &s[22..];
        assert!(
            !lines.contains(secret_part),
            "a secret in the audit log: {lines}"
        );
    }
    app.stop().await;
    let _ = std::fs::remove_file(audit);
}

#[tokio::test]
async fn a_key_cannot_be_given_what_its_creator_cannot_read() {
    // Keys act as viewers and admins here, so the tenant's grants would give a key the
    // platform overview; alice (a viewer) does not read it, so her keys cannot either.
    let (app, _audit) = app_with_audit(|s| {
        s.keys.as_mut().unwrap().roles = vec!["viewer".into(), "admin".into()];
    })
    .await;
    let alice = app.session_for("alice").await;
    let (status, err) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "x", "pipes": ["orgs_overview"]}),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("cannot read it yourself"),
        "{err}"
    );
    // A pipe nobody's grants give keys.
    let (status, err) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "x", "pipes": ["no_such_pipe"]}),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    // Nothing at all.
    let (status, _) = post(&app, &alice, "api/keys", json!({"name": "x"})).await;
    assert_eq!(status, 400);
    // A tenant admin cannot set a key's attributes (they choose the rows a grant renders).
    let (status, err) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "x", "pipes": ["top_products"], "attributes": {"region": "us"}}),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    // Nor make a key for another tenant.
    let (status, err) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "x", "tenant": "globex", "pipes": ["top_products"]}),
    )
    .await;
    assert_eq!(status, 403, "{err}");
    // A plain viewer manages no keys.
    let bob = app.session_for("bob").await;
    let (status, err) = get(&app, &bob, "api/keys").await;
    assert_eq!(status, 403, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("tenant-admin"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_admin_cannot_see_or_revoke_another_tenants_keys() {
    let (app, _audit) = app_with_audit(|_| {}).await;
    let admin = app.session_for("admin").await;
    let (status, globex) = post(
        &app,
        &admin,
        "api/keys",
        json!({"name": "globex bi", "tenant": "globex", "pipes": ["top_products"]}),
    )
    .await;
    assert_eq!(
        status, 201,
        "a platform admin makes any tenant's key: {globex}"
    );
    let globex_id = globex["key"]["id"].as_str().unwrap().to_owned();
    let alice = app.session_for("alice").await;
    let (_, acme) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "acme", "pipes": ["top_products"]}),
    )
    .await;
    let acme_id = acme["key"]["id"].as_str().unwrap().to_owned();

    let (_, listed) = get(&app, &alice, "api/keys").await;
    assert_eq!(ids(&listed), [acme_id.as_str()], "only acme's keys");
    let (status, _) = get(&app, &alice, "api/keys?tenant=globex").await;
    assert_eq!(status, 403);
    for action in ["revoke", "roll"] {
        let (status, err) = post(
            &app,
            &alice,
            &format!("api/keys/{globex_id}/{action}"),
            json!({}),
        )
        .await;
        assert_eq!(status, 404, "the same answer as a missing key: {err}");
        let (missing, _) = post(
            &app,
            &alice,
            &format!("api/keys/000000000000/{action}"),
            json!({}),
        )
        .await;
        assert_eq!(missing, 404);
        assert!(!err.to_string().contains("globex"), "{err}");
    }
    // The platform admin sees both tenants', and can narrow to one.
    let (_, all) = get(&app, &admin, "api/keys").await;
    let mut all = ids(&all);
    all.sort();
    let mut both = vec![acme_id.clone(), globex_id.clone()];
    both.sort();
    assert_eq!(all, both);
    let (_, one) = get(&app, &admin, "api/keys?tenant=globex").await;
    assert_eq!(ids(&one), [globex_id.as_str()]);
    let (status, _) = post(
        &app,
        &admin,
        &format!("api/keys/{globex_id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn keys_are_managed_only_from_a_signed_in_session_with_the_csrf_header() {
    let (app, _audit) = app_with_audit(|_| {}).await;
    let alice = app.session_for("alice").await;
    let (_, made) = post(
        &app,
        &alice,
        "api/keys",
        json!({"name": "k", "pipes": ["top_products"]}),
    )
    .await;
    let secret = made["secret"].as_str().unwrap().to_owned();
    // An API key never manages keys, even next to a valid cookie.
    for (method, path) in [("GET", "api/keys"), ("POST", "api/keys")] {
        let r = alice
            .request(method.parse().unwrap(), format!("{}{path}", app.url))
            .header("x-bff-csrf", "1")
            .bearer_auth(&secret)
            .json(&json!({"name": "k2", "pipes": ["top_products"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains(&secret[22..]), "{body}");
    }
    // No cookie: not signed in.
    let r = crate::helpers::client()
        .get(format!("{}api/keys", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A cookie POST without the CSRF header.
    let r = alice
        .post(format!("{}api/keys", app.url))
        .json(&json!({"name": "k3", "pipes": ["top_products"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, listed) = get(&app, &alice, "api/keys").await;
    assert_eq!(
        listed["keys"].as_array().unwrap().len(),
        1,
        "nothing else was made"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_page_is_told_who_manages_keys() {
    // `/api/me`'s `manages_keys` shows or hides the page's "API keys" section: tenant admins
    // and platform admins, and nobody while `[keys]` is off.
    let (app, _audit) = app_with_audit(|_| {}).await;
    for (user, manages) in [
        ("alice", true),
        ("admin", true),
        ("bob", false),
        ("carol", false),
    ] {
        let c = app.session_for(user).await;
        let (status, me) = get(&app, &c, "api/me").await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["manages_keys"], manages, "{user}: {me}");
    }
    app.stop().await;
    let off = spawn_app_with(|s| s.keys = None).await;
    let alice = off.session_for("alice").await;
    let (_, me) = get(&off, &alice, "api/me").await;
    assert_eq!(me["manages_keys"], false, "keys off: {me}");
    off.stop().await;
}
