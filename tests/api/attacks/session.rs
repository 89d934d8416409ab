//! The session cookie under attack: ids planted before login never survive it, every cookie
//! the BFF sets is host-only, `HttpOnly` and `SameSite=Lax` (logout also tells the browser to
//! drop it), and a logged-out cookie is dead on every route that reads the session.
//!
//! tests/api/bff.rs proves the id cycling at login and the `Secure` flag behind https.

use reqwest::Method;
use serde_json::json;

use super::{app, reply, session_cookie_for, set_session_cookie, whoami};
use crate::helpers::client;

#[tokio::test]
async fn planted_session_ids_never_survive_a_login() {
    let app = app().await;
    let planted_values = [
        "tbff_session=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "tbff_session=attacker-chosen-id".into(),
        format!("tbff_session={}", "A".repeat(4096)),
        "tbff_session=x; tbff_session=y".into(),
        // An attacker's own valid session planted in the victim's browser.
        session_cookie_for(&app, "bob").await,
    ];
    for planted in planted_values {
        let r = client()
            .post(format!("{}api/login", app.url))
            .header("x-bff-csrf", "1")
            .header("cookie", &planted)
            .json(&json!({"username": "alice", "password": "alice-demo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login with {planted:.40}");
        let issued = set_session_cookie(r.headers()).expect("a new id is issued");
        assert!(
            !planted.split("; ").any(|p| p == issued),
            "the planted id was kept: {planted:.40}"
        );
        assert_eq!(whoami(&app, &issued).await, (200, "alice".into()));
        for old in planted.split("; ") {
            assert_ne!(
                whoami(&app, old).await.1,
                "alice",
                "{old:.40} became alice's session"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_cookie_the_bff_sets_is_host_only_http_only_and_lax() {
    let app = app().await;
    let mut set_cookies = Vec::new();
    let login = client()
        .post(format!("{}api/login", app.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "admin", "password": "admin-demo"}))
        .send()
        .await
        .unwrap();
    let cookie = set_session_cookie(login.headers()).unwrap();
    set_cookies.extend(login.headers().get_all("set-cookie").iter().cloned());
    for path in [
        "api/me",
        "api/pipes/top_products.json",
        "api/admin/usage",
        "",
        "api/providers",
    ] {
        let r = client()
            .get(format!("{}{path}", app.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        set_cookies.extend(r.headers().get_all("set-cookie").iter().cloned());
    }
    let out = client()
        .post(format!("{}api/logout", app.url))
        .header("x-bff-csrf", "1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let cleared: Vec<_> = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .cloned()
        .collect();
    set_cookies.extend(cleared.iter().cloned());
    assert!(!set_cookies.is_empty());
    for c in &set_cookies {
        let c = c.to_str().unwrap();
        assert!(
            c.starts_with("tbff_session="),
            "only the session cookie is set: {c}"
        );
        // The removal cookie (empty value, expired) carries no session, so only its path
        // matters: it must hit the same cookie.
        let flags: &[&str] = if c.starts_with("tbff_session=;") {
            &["Path=/"]
        } else {
            &["HttpOnly", "SameSite=Lax", "Path=/"]
        };
        for flag in flags {
            assert!(c.contains(flag), "{flag} missing: {c}");
        }
        assert!(
            !c.to_ascii_lowercase().contains("domain="),
            "host-only: {c}"
        );
    }
    // Logout tells the browser to drop the cookie, not just the server to forget it.
    let cleared = cleared
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ");
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("Expires=Thu, 01 Jan 1970"),
        "{cleared}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_logged_out_cookie_is_dead_on_every_session_route() {
    let app = app().await;
    let cookie = session_cookie_for(&app, "admin").await;
    let other = session_cookie_for(&app, "admin").await;
    let routes: &[(Method, &str)] = &[
        (Method::GET, "api/me"),
        (Method::POST, "api/token"),
        (Method::GET, "api/pipes/top_products.json"),
        (Method::POST, "api/pipes/top_products.json"),
        (Method::GET, "api/sql?q=SELECT+1"),
        (Method::GET, "api/admin/usage"),
    ];
    let call = |method: Method, path: &str, cookie: &str| {
        client()
            .request(method, format!("{}{path}", app.url))
            .header("cookie", cookie)
            .header("x-bff-csrf", "1")
            .send()
    };
    for (method, path) in routes {
        let r = call(method.clone(), path, &cookie).await.unwrap();
        assert_eq!(r.status(), 200, "before logout: {method} {path}");
    }
    let out = call(Method::POST, "api/logout", &cookie).await.unwrap();
    assert_eq!(out.status(), 204);
    for (method, path) in routes {
        let r = reply(call(method.clone(), path, &cookie).await.unwrap()).await;
        assert_eq!(
            r.status, 401,
            "replayed after logout: {method} {path}: {}",
            r.body
        );
        r.assert_json_error(path);
    }
    // Logging out twice is harmless, and only that session ended: the other one still works.
    assert!(
        call(Method::POST, "api/logout", &cookie)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert_eq!(whoami(&app, &other).await, (200, "admin".into()));
    app.stop().await;
}
