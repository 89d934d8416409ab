//! `return_to` cannot turn login into an open redirect: without a provider the OIDC routes
//! refuse as JSON without a `Location`; with one whose issuer is down, every off-site target
//! is a 400 before anything else, and a local one gets past that check (then fails on the
//! provider, still without redirecting).
//!
//! The round trip through a real provider is in tests/api/oidc.rs
//! (`return_to_never_leaves_the_site`); here the check is exercised without one.

use super::content::check_answer;
use super::{Reply, app, reply};
use crate::helpers::{client, spawn_app_with};

/// `return_to` values a browser would take off-site (or that smuggle a header).
const OFF_SITE: &[&str] = &[
    "https://evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "%2F%2Fevil.example",
    "/%09/evil.example",
    "/%0D%0ALocation:%20https://evil.example",
    "javascript:alert(1)",
    "http:evil.example",
    "/ /evil.example",
    "%252F%252Fevil.example",
];

fn no_redirect(failures: &mut Vec<String>, what: &str, r: &Reply) {
    if let Some(location) = r.headers.get("location") {
        failures.push(format!("{what}: redirects to {location:?}"));
    }
    if (300..400).contains(&r.status) {
        failures.push(format!("{what}: {}", r.status));
    }
}

#[tokio::test]
async fn return_to_is_no_open_redirect_with_or_without_a_provider() {
    // No provider: the routes exist but refuse, as JSON, without a Location.
    let app = app().await;
    let mut failures = Vec::new();
    for target in OFF_SITE {
        for path in [
            format!("auth/demo/login?return_to={target}"),
            format!("auth/demo/callback?state=x&code=y&return_to={target}"),
        ] {
            let r = reply(
                client()
                    .get(format!("{}{path}", app.url))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            no_redirect(&mut failures, &path, &r);
            check_answer(&mut failures, &path, &path, &r);
        }
    }
    app.stop().await;
    // A provider whose issuer is down: return_to is refused (400) before anything else; a
    // good one gets past that check and fails on the provider (503), never redirecting.
    let extra = "\n[oidc.fake]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"bff\"\n";
    let key = tinybird_bff::tinybird::AdminToken::generate("ws");
    let key_text = secrecy::ExposeSecret::expose_secret(key.secret()).to_owned();
    let env = move |name: &str| (name == "TINYBIRD_SIGNING_KEY").then(|| key_text.clone());
    let users = tinybird_bff::auth::users::UserDirectory::from_toml(tinybird_bff::demo::USERS, "u")
        .unwrap();
    let parsed = tinybird_bff::config::Settings::from_toml(
        &format!("{}{extra}", crate::helpers::single_workspace_config()),
        "test",
        std::path::Path::new("."),
        &env,
        Some(users),
    )
    .unwrap();
    let app = spawn_app_with(move |s| s.oidc = parsed.oidc).await;
    for target in OFF_SITE {
        let path = format!("auth/fake/login?return_to={target}");
        let r = reply(
            client()
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        no_redirect(&mut failures, &path, &r);
        if r.status != 400 {
            failures.push(format!("{path}: {} (want 400) {}", r.status, r.body));
        }
        check_answer(&mut failures, &path, &path, &r);
    }
    for target in ["/", "/dashboard?tab=1", "/a/b#c"] {
        let path = format!(
            "auth/fake/login?return_to={}",
            target.replace('?', "%3F").replace('#', "%23")
        );
        let r = reply(
            client()
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if r.status == 400 || r.status < 300 {
            failures.push(format!(
                "{path}: a local target was refused: {} {}",
                r.status, r.body
            ));
        }
        no_redirect(&mut failures, &path, &r);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}
