//! `/api/sql` against fault-injecting upstreams written here: refusals that must happen before
//! any upstream call, what reaches Tinybird (the user's filtered JWT, the query, nothing of the
//! client's), and the pipes' retry rules (429 and 5xx retried, final statuses passed through).

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use serde_json::Value;
use tinybird_bff::config::{Settings, TinybirdHost};
use tinybird_bff::grants::{GrantConfig, Grants};
use tinybird_bff::proxy::Credentials;
use tinybird_bff::tinybird::claims::{ScopeType, verify};
use tinybird_bff::tinybird::upstream::RetryPolicy;

use super::{COUNT, local_app, proxied};
use crate::helpers::{self, TestApp, admin_key, client};
use crate::proxy::{Seen, fault, reply};

// ---- helpers -------------------------------------------------------------------------------

// The scripted upstream (`Fault`, `fault`, `reply`) is proxy.rs's.

const ROWS: &str = r#"{"meta":[{"name":"n","type":"UInt64"}],"data":[{"n":"7"}],"rows":1}"#;

fn ok_json() -> Response {
    reply(200, &[("content-type", "application/json")], ROWS)
}

/// A BFF whose Tinybird is the fault upstream `url`, with quick retries, logged in as alice.
async fn app_on(url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = reqwest::Url::parse(url).unwrap();
    let app = local_app(move |s| {
        s.tinybird.first_mut().host = TinybirdHost::Remote(url);
        s.proxy.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            deadline: Duration::from_secs(3),
        };
        tweak(s);
    })
    .await;
    app.login_as("alice").await;
    app
}

/// Grants from TOML: `[[grants]]` tables.
fn grants(toml_text: &str) -> Arc<Grants> {
    #[derive(serde::Deserialize)]
    struct Config {
        grants: Vec<GrantConfig>,
    }
    let config: Config = toml::from_str(toml_text).unwrap();
    Arc::new(Grants::compile(&config.grants).unwrap())
}

const PIPES_ONLY: &str = r#"
[[grants]]
name = "tenant-dashboards"
pipes = ["top_products"]
[grants.match]
roles = ["viewer", "admin"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"
"#;

// ---- who may call it: refused before any upstream call -------------------------------------

#[tokio::test]
async fn refusals_happen_before_any_upstream_call() {
    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |s| s.grants = grants(PIPES_ONLY)).await;
    let r = client()
        .get(format!("{}api/sql?q=SELECT+1", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "not logged in");
    let (status, body) = proxied(&app, &app.client, COUNT).await;
    assert_eq!(status, 403, "no data source in alice's grants: {body}");
    assert!(body.contains("data source"), "{body}");
    // Her pipes still work through the proxy.
    assert_eq!(app.get("api/pipes/top_products.json").await.status(), 200);
    assert_eq!(up.hits(), 1, "only the pipe call went upstream");
    app.stop().await;

    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |s| {
        s.proxy.credentials = Credentials::Static("p.static-read-token".to_owned().into());
    })
    .await;
    let (status, body) = proxied(&app, &app.client, COUNT).await;
    assert_eq!(status, 501, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains(r#"credentials = "jwt""#),
        "{body}"
    );
    let (status, _) = proxied(&app, &app.client, "  ").await;
    assert_eq!(status, 501, "refused whatever the query");
    assert_eq!(up.hits(), 0, "a static token is never used for SQL");
    app.stop().await;
}

#[tokio::test]
async fn only_the_query_is_forwarded_and_any_other_parameter_is_refused_by_name() {
    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |_| {}).await;
    for name in [
        "output_format_json_quote_64bit_integers",
        "template_parameters",
        "pipeline",
        "debug",
        "__tb__x",
        "days",
    ] {
        let r = app
            .client
            .get(format!("{}api/sql", app.url))
            .query(&[("q", COUNT), (name, "1")])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains(name), "{body}");
    }
    assert_eq!(up.hits(), 0, "nothing reached Tinybird");
    app.stop().await;
}

// ---- credentials and retries, against fault upstreams --------------------------------------

#[tokio::test]
async fn upstream_gets_the_users_filtered_jwt_and_the_query_only() {
    let up = fault(|_| async { ok_json() }).await;
    let app = app_on(&up.url, |_| {}).await;
    let r = app
        .client
        .get(format!("{}api/sql", app.url))
        .query(&[("q", COUNT), ("token", "p.stolen")])
        .header("x-custom", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, ROWS.to_owned())
    );
    let Seen {
        method,
        uri,
        headers,
        ..
    } = up.last();
    assert_eq!(method, "GET");
    assert_eq!(
        uri,
        "/v0/sql?q=SELECT%20count%28*%29%20AS%20n%20FROM%20orders"
    );
    assert!(headers.get("cookie").is_none() && headers.get("x-custom").is_none());
    let jwt = headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let claims =
        verify(jwt, admin_key().bytes(), helpers::now()).expect("a JWT signed with the key");
    assert_eq!(claims.name, "alice@acme");
    let filters: Vec<_> = claims
        .scopes
        .iter()
        .filter(|s| s.scope_type == ScopeType::DatasourcesRead)
        .map(|s| (s.resource.as_str(), s.filter.as_deref().unwrap()))
        .collect();
    assert_eq!(
        filters,
        [
            ("orders", "org_id = 'acme'"),
            ("orgs", "org_id = 'acme'"),
            ("products", "org_id = 'acme'")
        ]
    );
    // A raw POST goes upstream as a form POST, with the same cached JWT.
    let r = app
        .client
        .post(format!("{}api/sql", app.url))
        .header("x-bff-csrf", "1")
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let Seen {
        method,
        uri,
        headers,
        body,
    } = up.last();
    assert_eq!(
        (method.as_str(), uri.as_str(), body.as_str()),
        ("POST", "/v0/sql", "q=SELECT%201")
    );
    assert_eq!(
        headers["authorization"].to_str().unwrap(),
        format!("Bearer {jwt}")
    );
    app.stop().await;
}

#[tokio::test]
async fn upstream_429_and_500_are_retried_and_final_statuses_are_not() {
    let up = fault(|n| async move {
        if n == 1 {
            reply(500, &[], "oops")
        } else {
            ok_json()
        }
    })
    .await;
    let app = app_on(&up.url, |_| {}).await;
    let (status, body) = proxied(&app, &app.client, COUNT).await;
    assert_eq!((status, body.as_str(), up.hits()), (200, ROWS, 2));
    app.stop().await;

    let up = fault(|_| async {
        reply(
            429,
            &[("retry-after", "0"), ("x-ratelimit-limit", "5")],
            r#"{"error":"slow down"}"#,
        )
    })
    .await;
    let app = app_on(&up.url, |_| {}).await;
    let r = app
        .client
        .get(format!("{}api/sql?q=SELECT+1", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "0");
    assert_eq!(r.headers()["x-ratelimit-limit"], "5");
    assert_eq!(r.text().await.unwrap(), r#"{"error":"slow down"}"#);
    assert_eq!(up.hits(), 3, "max_attempts");
    app.stop().await;

    for code in [400u16, 403, 408] {
        let up = fault(move |_| async move { reply(code, &[], r#"{"error":"no"}"#) }).await;
        let app = app_on(&up.url, |_| {}).await;
        let (status, body) = proxied(&app, &app.client, COUNT).await;
        assert_eq!(
            (status, body.as_str(), up.hits()),
            (code, r#"{"error":"no"}"#, 1)
        );
        app.stop().await;
    }
}
