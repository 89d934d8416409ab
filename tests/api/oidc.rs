//! OIDC login and IdP token exchange against a real OpenID Provider (panva/oidc-provider,
//! run by `tests/oidc-provider/provider.mjs`): the code flow with PKCE through the provider's
//! own login and consent pages, claims mapped into grants, bearer tokens it issues, key
//! rotation, and every forgery we know of refused. Login here; bearer tokens in `bearer`.

mod bearer;
mod harness;

use reqwest::Url;
use serde_json::{Value, json};

use harness::{OidcApp, location, query_param, spawn_oidc_app, spawn_oidc_app_with};

/// Decodes a JWT payload without verifying (the minted token's claims).
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

/// `(pipe, org_id fixed param)` of every scope of a minted token.
fn scopes(token: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = payload(token)["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let org = s["fixed_params"]["org_id"].as_str().map(str::to_owned);
            (s["resource"].as_str().unwrap().to_owned(), org)
        })
        .collect();
    out.sort();
    out
}

fn dashboards(org: &str) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = ["recent_orders", "sales_by_day", "top_products"]
        .map(|p| (p.to_owned(), Some(org.to_owned())))
        .to_vec();
    v.sort();
    v
}

async fn session_token(app: &OidcApp) -> (u16, Value) {
    let r = app
        .browser
        .post(format!("{}/api/token", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn code_flow_with_pkce_logs_in_maps_claims_to_grants_and_logs_out_at_the_provider() {
    let app = spawn_oidc_app().await;
    let providers: Value = app
        .browser
        .get(format!("{}/api/providers", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        providers,
        json!({"local": false, "providers": [{"name": "test", "display_name": "Test IdP", "login_url": "/auth/test/login"}]})
    );
    let r = app.start_login("/dashboard?tab=sales").await;
    assert_eq!(r.status(), 303);
    let authorize = location(&Url::parse(&app.url).unwrap(), &r);
    assert!(
        authorize
            .as_str()
            .starts_with(&format!("{}/auth?", app.idp.issuer))
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&authorize, "code_challenge").unwrap().len(), 43);
    assert!(
        query_param(&authorize, "nonce").is_some() && query_param(&authorize, "state").is_some()
    );
    let callback = harness::drive_login(
        &app.browser,
        authorize,
        "root",
        &format!("{}/auth/test/callback", app.url),
    )
    .await;
    let r = app.callback(&callback).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(
        r.headers()["location"],
        "/dashboard?tab=sales",
        "back where the user started"
    );

    let me: Value = app
        .browser
        .get(format!("{}/api/me", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], "root");
    assert_eq!(
        me["user"]["tenant"], "acme",
        "namespaced claim, read from userinfo"
    );
    assert_eq!(me["user"]["roles"], json!(["admin", "viewer"]));
    assert_eq!(me["user"]["attributes"]["org_name"], "Acme", "nested claim");
    assert_eq!(me["user"]["display_name"], "Root");

    let (status, body) = session_token(&app).await;
    assert_eq!(status, 200, "{body}");
    let mut want = dashboards("acme");
    want.insert(0, ("orgs_overview".to_owned(), None));
    assert_eq!(scopes(body["token"].as_str().unwrap()), want);

    let r = app
        .browser
        .post(format!("{}/api/logout", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let redirect = Url::parse(
        r.json::<Value>().await.unwrap()["redirect"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        redirect
            .as_str()
            .starts_with(&format!("{}/session/end?", app.idp.issuer))
    );
    assert_eq!(
        query_param(&redirect, "post_logout_redirect_uri"),
        Some(format!("{}/", app.url))
    );
    assert!(query_param(&redirect, "id_token_hint").is_some());
    let me = app
        .browser
        .get(format!("{}/api/me", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the BFF session ended");
    // The provider accepts the hand-off: its confirmation form, then back to the app.
    let page = app
        .browser
        .get(redirect.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = redirect
        .join(&harness::attribute(&page, "action=\""))
        .unwrap();
    let xsrf = harness::attribute(&page, "name=\"xsrf\" value=\"");
    let r = app
        .browser
        .post(action.clone())
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&action, &r).as_str(), format!("{}/", app.url));
}

#[tokio::test]
async fn a_user_the_grants_do_not_cover_gets_no_token() {
    let app = spawn_oidc_app().await;
    let callback = app.provider_redirect("stranger", "/").await;
    assert_eq!(app.callback(&callback).await.status(), 303);
    let (status, body) = session_token(&app).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("matches no grant"),
        "{body}"
    );
}

#[tokio::test]
async fn state_is_single_use_and_bound_to_the_browser() {
    let app = spawn_oidc_app().await;
    let callback = app.provider_redirect("alice", "/").await;
    assert_eq!(app.callback(&callback).await.status(), 303);
    let replay = app.callback(&callback).await;
    assert_eq!(
        replay.status(),
        400,
        "a replayed callback finds no login in progress"
    );
    // Another browser (the attacker's session) cannot use this callback either.
    let other = harness::drive_login(
        &crate::helpers::cookie_client(),
        location(&Url::parse(&app.url).unwrap(), &app.start_login("/").await),
        "alice",
        &format!("{}/auth/test/callback", app.url),
    )
    .await;
    let mut forged = other.clone();
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", &query_param(&other, "code").unwrap())
        .append_pair("state", "guessed");
    let r = app.callback(&forged).await;
    assert_eq!(r.status(), 400, "wrong state");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("state"), "{body}");
}

#[tokio::test]
async fn return_to_never_leaves_the_site() {
    let app = spawn_oidc_app().await;
    for bad in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/%2F/evil.example",
        "evil",
    ] {
        let r = app.start_login(bad).await;
        assert_eq!(r.status(), 400, "{bad:?} must be refused");
    }
    assert_eq!(app.start_login("/ok").await.status(), 303);
}

#[tokio::test]
async fn id_tokens_without_our_nonce_or_for_someone_else_are_refused() {
    let app = spawn_oidc_app().await;
    for (drop, set, want) in [
        (vec!["nonce"], json!({}), "nonce"),
        (vec![], json!({"nonce": "someone-elses"}), "nonce"),
        (vec![], json!({"aud": "another-client"}), "audience"),
        (vec![], json!({"iss": "https://evil.example"}), "issuer"),
        (vec![], json!({"exp": 1_000_000_000}), "expired"),
    ] {
        app.idp.tamper_next_id_token(&drop, set.clone()).await;
        let callback = app.provider_redirect("alice", "/").await;
        let r = app.callback(&callback).await;
        assert_eq!(r.status(), 401, "{set} / drop {drop:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{want}: {body}"
        );
        let me = app
            .browser
            .get(format!("{}/api/me", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "no session after a refused ID token");
    }
}

#[tokio::test]
async fn starting_logins_stores_nothing_server_side() {
    let dir = std::env::temp_dir().join(format!("tbff-prelogin-{}", uuid::Uuid::new_v4()));
    let store = format!("store = \"file\"\ndir = \"{}\"", dir.display());
    let app = spawn_oidc_app_with(|c| c.replace("store = \"memory\"", &store), None).await;
    // Anyone may start logins without a cookie, as often as they like.
    for _ in 0..200 {
        let r = crate::helpers::client()
            .get(format!("{}/auth/test/login", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let cookies: Vec<&str> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let cookie = cookies[0];
        assert!(cookie.starts_with("tbff_session_login="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/auth/", "Max-Age=600"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
    }
    let stored = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert_eq!(stored, 0, "no session is stored before a login completes");
    // The sealed cookie still completes a login, and the callback deletes it.
    let callback = app.provider_redirect("alice", "/").await;
    let r = app.callback(&callback).await;
    assert_eq!(r.status(), 303);
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tbff_session_login="))
        .expect("the pending-login cookie is deleted");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "one session, after login"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_login_keeps_nothing_of_the_session_before_it() {
    let users =
        tinybird_bff::auth::users::UserDirectory::from_toml(tinybird_bff::demo::USERS, "users")
            .unwrap();
    let app = spawn_oidc_app_with(|c| c, Some(users)).await;
    let callback = app.provider_redirect("root", "/").await;
    assert_eq!(app.callback(&callback).await.status(), 303);
    // The same browser now logs in as a local user, without logging out first.
    let r = app
        .browser
        .post(format!("{}/api/login", app.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Logging alice out must not hand root's ID token to the provider.
    let r = app
        .browser
        .post(format!("{}/api/logout", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        204,
        "a local user's logout has no provider hand-off: {}",
        r.text().await.unwrap()
    );
}
