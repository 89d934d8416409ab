//! The minting BFF over real sockets: login, sessions, CSRF, grants and `POST /api/token`.

use serde_json::{Value, json};
use tinybird_bff::tinybird::claims::verify;

use crate::helpers::{TestApp, client, cookie_client, spawn_app, spawn_app_with};

fn claims_of(token: &str, app_key: &[u8]) -> Value {
    serde_json::to_value(verify(token, app_key, chrono::Utc::now().timestamp()).unwrap()).unwrap()
}

/// Decodes a JWT payload without verifying (the test checks the claims' exact shape).
fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn rows(app: &TestApp, token: &str, pipe: &str, query: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}/v0/pipes/{pipe}.json?{query}", app.tinybird))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_tenant_user_reads_only_their_rows_even_when_asking_for_another_tenant() {
    let app = spawn_app().await;
    app.login_as("alice").await;
    let (status, body) = app.token().await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["host"], app.tinybird.as_str());
    for pipe in ["top_products", "sales_by_day", "recent_orders"] {
        let (status, result) = rows(&app, token, pipe, "org_id=globex&limit=50").await;
        assert_eq!(status, 200, "{pipe}: {result}");
        let data = result["data"].as_array().unwrap();
        assert!(!data.is_empty(), "{pipe} returned no rows");
        assert!(
            data.iter().all(|r| r["org_id"] == "acme"),
            "{pipe} leaked rows: {result}"
        );
    }
    let (status, _) = rows(&app, token, "orgs_overview", "").await;
    assert_eq!(status, 403, "alice has no grant for the cross-tenant pipe");
    app.stop().await;
}

#[tokio::test]
async fn the_token_response_and_claims_follow_the_contract_exactly() {
    let app = spawn_app().await;
    app.login_as("bob").await;
    let before = chrono::Utc::now().timestamp();
    let (_, body) = app.token().await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "token",
            "expires_at",
            "expires_in",
            "server_time",
            "host",
            "pipes",
            "datasources",
            "name"
        ]
    );
    assert_eq!(body["expires_in"], 600);
    assert!(body["server_time"].as_i64().unwrap() >= before);
    assert_eq!(
        body["expires_at"].as_i64().unwrap(),
        body["server_time"].as_i64().unwrap() + 600
    );
    assert_eq!(
        body["pipes"],
        json!(["recent_orders", "sales_by_day", "top_products"])
    );
    assert_eq!(body["name"], "bob@globex");
    let token = body["token"].as_str().unwrap();
    let header: Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header, json!({"typ": "JWT", "alg": "HS256"}));
    let claims = payload(token);
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["workspace_id", "name", "exp", "iat", "scopes", "limits"]
    );
    assert!(claims["exp"].is_i64() && claims["iat"].is_i64());
    assert_eq!(claims["limits"], json!({"rps": 20}));
    assert_eq!(
        claims["scopes"],
        json!([
            {"type": "PIPES:READ", "resource": "recent_orders", "fixed_params": {"org_id": "globex"}},
            {"type": "PIPES:READ", "resource": "sales_by_day", "fixed_params": {"org_id": "globex"}},
            {"type": "PIPES:READ", "resource": "top_products", "fixed_params": {"org_id": "globex"}},
            {"type": "DATASOURCES:READ", "resource": "orders", "filter": "org_id = 'globex'"},
            {"type": "DATASOURCES:READ", "resource": "orgs", "filter": "org_id = 'globex'"},
            {"type": "DATASOURCES:READ", "resource": "products", "filter": "org_id = 'globex'"},
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn the_admin_gets_the_cross_tenant_pipe_too() {
    let app = spawn_app().await;
    app.login_as("admin").await;
    let (_, body) = app.token().await;
    assert_eq!(
        body["pipes"],
        json!([
            "orgs_overview",
            "recent_orders",
            "sales_by_day",
            "top_products"
        ])
    );
    let (status, result) = rows(&app, body["token"].as_str().unwrap(), "orgs_overview", "").await;
    assert_eq!(status, 200);
    assert_eq!(result["data"].as_array().unwrap().len(), 3);
    let me: Value = app.get("api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["id"], "admin");
    let grants: Vec<&str> = me["pipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["grants"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        grants,
        [
            "platform-admin",
            "tenant-dashboards",
            "tenant-dashboards",
            "tenant-dashboards"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn login_failures_say_so_and_never_reveal_which_part_was_wrong() {
    let app = spawn_app().await;
    let wrong = app.login("alice", "nope").await;
    assert_eq!(wrong.status(), 401);
    let unknown = app.login("mallory", "nope").await;
    assert_eq!(unknown.status(), 401);
    let a: Value = wrong.json().await.unwrap();
    let b: Value = unknown.json().await.unwrap();
    assert_eq!(a, b, "same answer for a wrong password and an unknown user");
    let malformed = app
        .client
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let extra = app
        .post(
            "api/login",
            json!({"username": "alice", "password": "alice-demo", "admin": true}),
        )
        .await;
    assert_eq!(extra.status(), 422, "unknown fields are refused");
    let huge = app
        .post(
            "api/login",
            json!({"username": "alice", "password": "x".repeat(3 * 1024 * 1024)}),
        )
        .await;
    assert_eq!(huge.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_then_the_client_out() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.login("bob", "wrong").await.status(), 401);
    }
    let locked = app.login("bob", "bob-demo").await;
    assert_eq!(
        locked.status(),
        429,
        "the right password does not lift a lockout"
    );
    let wait: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The demo's logins are shared by everyone trying it: its lockout is a minute, not 15.
    assert!(wait > 0 && wait <= 60, "Retry-After {wait}");
    // Other accounts from the same client are still usable until the client's own, higher limit.
    app.login_as("alice").await;
    for i in 0..20 {
        let _ = app.login(&format!("guess{i}"), "wrong").await;
    }
    let client_locked = app.login("alice", "alice-demo").await;
    assert_eq!(
        client_locked.status(),
        429,
        "a client guessing across accounts is locked out too"
    );
    app.stop().await;
}

#[tokio::test]
async fn no_session_no_token_and_garbled_cookies_are_just_logged_out() {
    let app = spawn_app().await;
    let (status, body) = app.token().await;
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("not signed in"));
    let garbled = client()
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .header("cookie", "tbff_session=%%%garbage%%%; other=1")
        .send()
        .await
        .unwrap();
    assert_eq!(garbled.status(), 401);
    assert_eq!(app.get("api/me").await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn csrf_defence_refuses_missing_header_and_foreign_origins() {
    let app = spawn_app().await;
    app.login_as("alice").await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut r = app.client.post(format!("{}api/token", app.url));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    assert_eq!(
        post(vec![]).await.unwrap().status(),
        403,
        "no custom header"
    );
    let origin = app.url.trim_end_matches('/').to_owned();
    assert_eq!(
        post(vec![
            ("x-bff-csrf", "1".into()),
            ("origin", "https://evil.example".into())
        ])
        .await
        .unwrap()
        .status(),
        403
    );
    assert_eq!(
        post(vec![("x-bff-csrf", "1".into()), ("origin", "null".into())])
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(vec![
            ("x-bff-csrf", "1".into()),
            ("sec-fetch-site", "cross-site".into())
        ])
        .await
        .unwrap()
        .status(),
        403
    );
    assert_eq!(
        post(vec![("x-bff-csrf", "1".into()), ("origin", origin)])
            .await
            .unwrap()
            .status(),
        200
    );
    // A cross-site HTML form can send neither the header nor JSON.
    let form = app
        .client
        .post(format!("{}api/login", app.url))
        .form(&[("username", "alice"), ("password", "alice-demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_locked_down_and_cycled_at_login() {
    let app = spawn_app().await;
    // A session exists before login (e.g. planted by an attacker): login must not reuse its id.
    let anon = client()
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    let cookie = anon.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tbff_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http public URL: no Secure flag ({cookie})"
    );
    let first = cookie.split(';').next().unwrap().to_owned();
    let again = client()
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .header("cookie", &first)
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    let second = again.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(first, second, "the session id changes at login");
    let old = client()
        .get(format!("{}api/me", app.url))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the pre-login id no longer works");
    app.stop().await;
}

#[tokio::test]
async fn https_public_url_makes_the_cookie_secure() {
    let app = spawn_app_with(|s| s.public_url = "https://app.example.com".parse().unwrap()).await;
    // The test server speaks plain http; talk to its socket directly.
    let r = client()
        .post(format!("http://{}/api/login", app.addr))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_server_side() {
    let app = spawn_app().await;
    app.login_as("carol").await;
    let cookie = {
        let r = client()
            .post(format!("{}api/login", app.url))
            .header("x-bff-csrf", "1")
            .json(&json!({"username": "carol", "password": "carol-demo"}))
            .send()
            .await
            .unwrap();
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let me = client()
        .get(format!("{}api/me", app.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let out = client()
        .post(format!("{}api/logout", app.url))
        .header("x-bff-csrf", "1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let replay = client()
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "the old cookie is dead after logout");
    app.stop().await;
}

#[tokio::test]
async fn a_user_without_a_grant_or_attribute_gets_a_403_that_names_why() {
    let app = spawn_app_with(|s| {
        let users = tinybird_bff::auth::users::UserDirectory::from_toml(
            &format!(
                "{}\n[[users]]\nid = \"dave\"\npassword_hash = \"{}\"\nroles = [\"viewer\"]\n\n[[users]]\nid = \"erin\"\npassword_hash = \"{}\"\ntenant = \"acme\"\nroles = [\"guest\"]\n",
                tinybird_bff::demo::USERS,
                tinybird_bff::auth::users::hash_password("dave-demo"),
                tinybird_bff::auth::users::hash_password("erin-demo"),
            ),
            "test users",
        )
        .unwrap();
        s.users = users;
    })
    .await;
    app.login_as("dave").await;
    let (status, body) = app.token().await;
    assert_eq!(status, 403, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("tenant-dashboards") && msg.contains("tenant"),
        "names grant and attribute: {msg}"
    );
    let other = cookie_client();
    let r = other
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "erin", "password": "erin-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = other
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("no grant"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn sessions_in_the_file_store_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("tbff-sessions-{}", uuid::Uuid::new_v4()));
    let key = tinybird_bff::tinybird::AdminToken::generate("ws");
    let configure = |dir: std::path::PathBuf, key: tinybird_bff::tinybird::AdminToken| {
        move |s: &mut tinybird_bff::config::Settings| {
            s.session_store = tinybird_bff::config::SessionStoreKind::File(dir);
            s.tinybird.first_mut().signing_key = key;
            s.tinybird.first_mut().workspace_id = "ws".into();
        }
    };
    let first = spawn_app_with(configure(dir.clone(), key.clone())).await;
    first.login_as("alice").await;
    let cookie_client = first.client.clone();
    let url = first.url.clone();
    first.stop().await;
    let second = spawn_app_with(|s| {
        configure(dir.clone(), key.clone())(s);
        s.listen = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        s.public_url = url.parse().unwrap();
    })
    .await;
    let me = cookie_client
        .get(format!("{}api/me", second.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the session outlived the restart");
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["user"]["id"], "alice");
    second.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_page_is_served() {
    let app = spawn_app().await;
    let r = client().get(&app.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let h = r.headers().clone();
    assert!(r.text().await.unwrap().contains("tinybird-bff"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("connect-src 'self' {}", app.tinybird)),
        "the direct Tinybird origin is allowed: {csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    let missing = client()
        .get(format!("{}api/nope", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no such API route")
    );
    assert_eq!(
        client()
            .get(format!("{}healthz", app.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn minted_claims_verify_with_the_signing_key() {
    let app = spawn_app_with(|s| {
        s.tinybird.first_mut().signing_key = crate::helpers::admin_key();
        s.tinybird.first_mut().workspace_id = crate::helpers::WORKSPACE.into();
    })
    .await;
    app.login_as("alice").await;
    let (_, body) = app.token().await;
    let claims = claims_of(
        body["token"].as_str().unwrap(),
        crate::helpers::admin_key().bytes(),
    );
    assert_eq!(claims["workspace_id"], crate::helpers::WORKSPACE);
    app.stop().await;
}

#[tokio::test]
async fn an_active_session_is_kept_alive_without_a_write_per_request() {
    let app = spawn_app_with(|s| s.session_ttl = std::time::Duration::from_secs(20)).await;
    app.login_as("alice").await;
    let soon = app.get("api/me").await;
    assert_eq!(soon.status(), 200);
    assert!(
        soon.headers().get("set-cookie").is_none(),
        "no save (and no new cookie) right after login"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let later = app.get("api/me").await;
    assert_eq!(later.status(), 200);
    let cookie = later
        .headers()
        .get("set-cookie")
        .expect("a tenth of the ttl later the session is re-saved");
    assert!(
        cookie.to_str().unwrap().contains("Max-Age=20"),
        "{cookie:?}"
    );
    app.stop().await;
}

/// The data routes read the session cookie themselves (no session layer on the hot path):
/// they must answer it exactly as the cookie routes do.
#[tokio::test]
async fn the_data_routes_keep_and_end_sessions_as_the_cookie_routes_do() {
    let app = spawn_app_with(|s| s.session_ttl = std::time::Duration::from_secs(20)).await;
    app.login_as("alice").await;
    let token = |c: &reqwest::Client, url: String| {
        c.post(format!("{url}api/token"))
            .header("x-bff-csrf", "1")
            .send()
    };
    let soon = token(&app.client, app.url.clone()).await.unwrap();
    assert_eq!(soon.status(), 200);
    assert!(
        soon.headers().get("set-cookie").is_none(),
        "no save right after login"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let later = token(&app.client, app.url.clone()).await.unwrap();
    assert_eq!(later.status(), 200);
    let kept = later
        .headers()
        .get("set-cookie")
        .expect("a tenth of the ttl later the session is re-saved and its cookie renewed")
        .to_str()
        .unwrap()
        .to_owned();
    for flag in [
        "tbff_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=20",
    ] {
        assert!(kept.contains(flag), "{flag} missing: {kept}");
    }
    // The renewed cookie is the same session: the next call needs no new one.
    let after = app.get("api/pipes/top_products.json").await;
    assert_eq!(after.status(), 200);
    assert!(after.headers().get("set-cookie").is_none());

    // A well-formed id the store does not know: a 401 that tells the browser to forget it,
    // on a data route as on `/api/me`.
    let unknown = tower_sessions::session::Id::default();
    let stranger = client();
    for path in ["api/pipes/top_products.json", "api/me"] {
        let r = stranger
            .get(format!("{}{path}", app.url))
            .header("cookie", format!("tbff_session={unknown}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let cleared = r
            .headers()
            .get("set-cookie")
            .unwrap_or_else(|| panic!("{path}: no removal cookie"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cleared.starts_with("tbff_session=;") && cleared.contains("Path=/"),
            "{path}: {cleared}"
        );
        assert!(
            cleared.contains("Max-Age=0") || cleared.contains("Expires=Thu, 01 Jan 1970"),
            "{path}: {cleared}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_balancer_each_client_is_throttled_on_its_own_address() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = tinybird_bff::client_ip::parse_trusted(&["127.0.0.1".into()]).unwrap();
    })
    .await;
    let login = |xff: &'static str, user: &'static str, password: &'static str| {
        client()
            .post(format!("{}api/login", app.url))
            .header("x-bff-csrf", "1")
            .header("x-forwarded-for", xff)
            .json(&json!({"username": user, "password": password}))
            .send()
    };
    // One client guesses across accounts until its own address is locked out...
    for i in 0..20 {
        let user = Box::leak(format!("guess{i}").into_boxed_str());
        login("203.0.113.9", user, "wrong").await.unwrap();
    }
    assert_eq!(
        login("203.0.113.9", "alice", "alice-demo")
            .await
            .unwrap()
            .status(),
        429
    );
    // ...and cannot dodge it by putting another address at the left of the header.
    assert_eq!(
        login("198.51.100.1, 203.0.113.9", "alice", "alice-demo")
            .await
            .unwrap()
            .status(),
        429
    );
    // Everyone else behind the same balancer still logs in.
    assert_eq!(
        login("198.51.100.1", "alice", "alice-demo")
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}
