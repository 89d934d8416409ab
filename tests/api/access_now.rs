//! Access follows the users, grants and config in force now: a reload that removes a user,
//! moves them to another tenant, or narrows or removes what their grants give takes effect at
//! their next request, on the direct path and through the proxy, on every instance; and every
//! session ends `session.absolute_ttl` after its login.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tinybird_bff::auth::users::UserDirectory;
use tinybird_bff::config::Settings;
use tinybird_bff::grants::{GrantConfig, Grants};

use crate::helpers::{TestApp, cookie_client, spawn_app_with};
use crate::scale::support::{Instance, RedisServer, base_settings, with_redis};

/// The demo users file with `edit` applied to its text.
fn users(edit: impl Fn(&str) -> String) -> UserDirectory {
    UserDirectory::from_toml(&edit(tinybird_bff::demo::USERS), "users.toml").unwrap()
}

/// The demo users without the `[[users]]` entry of `id`.
fn without(id: &str) -> UserDirectory {
    let marker = format!("[[users]]\nid = \"{id}\"");
    users(|text| {
        let start = text.find(&marker).expect("the user is in the demo");
        let end = text[start + 1..]
            .find("[[users]]")
            .map_or(text.len(), |i| start + 1 + i);
        format!("{}{}", &text[..start], &text[end..])
    })
}

/// Grants compiled from `[[grants]]` TOML.
fn grants(toml_text: &str) -> Arc<Grants> {
    #[derive(Deserialize)]
    struct File {
        grants: Vec<GrantConfig>,
    }
    let file: File = toml::from_str(toml_text).unwrap();
    Arc::new(Grants::compile(&file.grants).unwrap())
}

/// The demo's grants with the SQL grant's data sources replaced by `datasources` (TOML lines).
fn sql_grant(datasources: &str) -> Arc<Grants> {
    grants(&format!(
        r#"
[[grants]]
name = "tenant-dashboards"
pipes = ["top_products", "sales_by_day", "recent_orders"]
match = {{ roles = ["viewer", "admin"] }}
fixed_params = {{ org_id = "{{{{ user.tenant }}}}" }}

[[grants]]
name = "tenant-sql"
match = {{ roles = ["viewer", "admin"] }}
[grants.datasources]
{datasources}
"#
    ))
}

/// Puts `edit`ed copy of the running settings in force, as a reload of the files would.
fn reload(app: &TestApp, edit: impl FnOnce(&mut Settings)) {
    let mut next = app.running().settings();
    edit(&mut next);
    app.running().reload(Ok(next)).expect("the reload applies");
}

async fn status(r: reqwest::Response) -> u16 {
    r.status().as_u16()
}

/// `GET /api/sql?q=` for a session: status and JSON body.
async fn sql(app: &TestApp, c: &reqwest::Client, q: &str) -> (u16, Value) {
    let r = c
        .get(format!("{}api/sql", app.url))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `org_id`s of a pipe's rows through the proxy, for a session.
async fn proxied_orgs(app: &TestApp, c: &reqwest::Client) -> (u16, Vec<String>) {
    let r = c
        .get(format!("{}api/pipes/recent_orders.json", app.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let mut orgs: Vec<String> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["org_id"].as_str().map(str::to_owned))
        .collect();
    orgs.sort();
    orgs.dedup();
    (status, orgs)
}

/// The `fixed_params.org_id` of the first pipe scope of the JWT `/api/token` mints.
async fn minted_org(app: &TestApp, c: &reqwest::Client) -> (u16, Option<String>) {
    let r = c
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let org = body["token"].as_str().map(|jwt| {
        let payload = jwt.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        claims["scopes"][0]["fixed_params"]["org_id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    (status, org)
}

#[tokio::test]
async fn a_removed_user_s_session_ends_at_the_next_request_on_every_route() {
    let app = spawn_app_with(|_| {}).await;
    let bob = app.session_for("bob").await;
    assert_eq!(minted_org(&app, &bob).await, (200, Some("globex".into())));
    assert_eq!(proxied_orgs(&app, &bob).await, (200, vec!["globex".into()]));
    assert_eq!(
        sql(&app, &bob, "SELECT 1 AS x FROM orders LIMIT 1").await.0,
        200
    );

    reload(&app, |s| s.users = without("bob"));

    assert_eq!(
        minted_org(&app, &bob).await.0,
        401,
        "no token for a removed user"
    );
    assert_eq!(proxied_orgs(&app, &bob).await, (401, vec![]));
    assert_eq!(
        sql(&app, &bob, "SELECT 1 AS x FROM orders LIMIT 1").await.0,
        401
    );
    assert_eq!(status(app.get_with(&bob, "api/me").await).await, 401);
    // The session is gone from the store, not just refused: restoring bob does not revive it.
    reload(&app, |s| s.users = users(str::to_owned));
    assert_eq!(status(app.get_with(&bob, "api/me").await).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_user_moved_to_another_tenant_reads_the_new_tenant_at_the_next_request() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.session_for("alice").await;
    assert_eq!(minted_org(&app, &alice).await, (200, Some("acme".into())));
    assert_eq!(proxied_orgs(&app, &alice).await, (200, vec!["acme".into()]));

    // alice is the file's first user, so the first `acme` is hers.
    let moved = |text: &str| text.replacen("tenant = \"acme\"", "tenant = \"initech\"", 1);
    reload(&app, |s| s.users = users(moved));

    assert_eq!(
        minted_org(&app, &alice).await,
        (200, Some("initech".into()))
    );
    assert_eq!(
        proxied_orgs(&app, &alice).await,
        (200, vec!["initech".into()]),
        "the proxy's cached JWT for acme is not reused"
    );
    let me: Value = app.get_with(&alice, "api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["tenant"], "initech");
    app.stop().await;
}

#[tokio::test]
async fn a_narrowed_or_removed_datasource_grant_holds_through_the_proxy_at_once() {
    let app = spawn_app_with(|s| s.token_ttl = Duration::from_secs(3600)).await;
    let alice = app.session_for("alice").await;
    let count = "SELECT count() AS n FROM orders";
    let (code, body) = sql(&app, &alice, count).await;
    assert_eq!(code, 200, "{body}");
    let all: u64 = body["data"][0]["n"].as_str().map_or_else(
        || body["data"][0]["n"].as_u64().unwrap(),
        |n| n.parse().unwrap(),
    );
    assert!(all > 0);

    // Narrowed: nothing of acme's orders before 2000-01-01 exists, so the filter reads none.
    reload(&app, |s| {
        s.grants = sql_grant(
            r#"orders = "org_id = {{ user.tenant }} AND day < '2000-01-01'"
products = "org_id = {{ user.tenant }}""#,
        )
    });
    let me: Value = app.get_with(&alice, "api/me").await.json().await.unwrap();
    assert!(me["datasources"].to_string().contains("2000-01-01"), "{me}");
    let (code, body) = sql(&app, &alice, count).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["data"][0]["n"].to_string().trim_matches('"'),
        "0",
        "the proxy used a JWT with the narrowed filter: {body}"
    );

    // Removed: the data source is no longer readable through the proxy either.
    reload(&app, |s| {
        s.grants = sql_grant(r#"products = "org_id = {{ user.tenant }}""#)
    });
    let (code, body) = sql(&app, &alice, count).await;
    assert_eq!(code, 403, "orders is no longer granted: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_active() {
    let app = spawn_app_with(|s| s.session_absolute_ttl = Duration::from_secs(2)).await;
    let alice = app.session_for("alice").await;
    assert_eq!(status(app.get_with(&alice, "api/me").await).await, 200);
    // Active every half second, yet ended within the lifetime plus the clock's second.
    let mut ended = None;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = app.get_with(&alice, "api/me").await;
        if r.status() != 200 {
            ended = Some(r);
            break;
        }
    }
    let r = ended.expect("the session ended within 4 s");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("maximum lifetime"),
        "{body}"
    );
    assert_eq!(status(app.get_with(&alice, "api/me").await).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_user_removed_on_one_instance_is_refused_there_with_a_session_from_the_other() {
    let redis = RedisServer::start().await;
    let settings = with_redis(base_settings(), &redis);
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "bob", "bob-demo").await, 200);
    assert_eq!(b.token(&browser).await.status(), 200);
    // Only B has reloaded so far (each instance reads its own copy of the users file).
    b.reload(|s| s.users = without("bob"));
    assert_eq!(b.token(&browser).await.status(), 401);
    // B ended the shared session, so A refuses it too.
    assert_eq!(a.token(&browser).await.status(), 401);
    a.stop().await;
    b.stop().await;
}
