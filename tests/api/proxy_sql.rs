//! `/api/sql` over real sockets: the same rows as a direct `/v0/sql` call for the same user,
//! the tenant's rows only (bypass attempts included), `FORMAT CSV`, CSRF, and `/api/me`.
//!
//! - here: against the local endpoint, compared with direct calls and the admin's view;
//! - `upstream`: who may call it (refused before any upstream call), the credential sent, and
//!   the pipes' retry rules, against fault-injecting upstreams.

mod upstream;

use serde_json::Value;
use tinybird_bff::config::Settings;

use crate::helpers::{TestApp, WORKSPACE, admin_key, admin_key_text, client, spawn_app_with};

const COUNT: &str = "SELECT count(*) AS n FROM orders";

// ---- helpers -------------------------------------------------------------------------------

/// The demo BFF on its local endpoint, signing with the tests' key (so the tests can read
/// the local endpoint as the admin for ground truth).
async fn local_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.tinybird.first_mut().signing_key = admin_key();
        s.tinybird.first_mut().workspace_id = WORKSPACE.into();
        tweak(s);
    })
    .await
}

/// `GET /api/sql?q=...` for a session: status and body text.
async fn proxied(app: &TestApp, c: &reqwest::Client, q: &str) -> (u16, String) {
    let r = c
        .get(format!("{}api/sql", app.url))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `GET {tinybird}/v0/sql?q=...` with `token`: status and body text.
async fn direct(app: &TestApp, token: &str, q: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}/v0/sql", app.tinybird))
        .query(&[("q", q)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The JWT `/api/token` gives a session.
async fn token_of(app: &TestApp, c: &reqwest::Client) -> String {
    let r = c
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// The one number in a JSON answer (`count(*)`; Tinybird quotes 64-bit integers).
fn number(status: u16, body: &str) -> i64 {
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(body).unwrap();
    let value = body["data"][0]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    value
        .as_str()
        .map(|s| s.parse().unwrap())
        .or(value.as_i64())
        .unwrap()
}
// ---- against the local endpoint ------------------------------------------------------------

#[tokio::test]
async fn each_user_counts_only_their_tenants_rows_on_both_paths() {
    let app = local_app(|_| {}).await;
    let admin = admin_key_text();
    let mut counts = Vec::new();
    for (user, org) in [("alice", "acme"), ("bob", "globex")] {
        let truth = format!("SELECT count(*) FROM orders WHERE org_id = '{org}'");
        let truth = {
            let (s, b) = direct(&app, &admin, &truth).await;
            number(s, &b)
        };
        let session = app.session_for(user).await;
        let token = token_of(&app, &session).await;
        let (s, b) = proxied(&app, &session, COUNT).await;
        let via_proxy = number(s, &b);
        let (s, b) = direct(&app, &token, COUNT).await;
        assert_eq!((via_proxy, number(s, &b)), (truth, truth), "{user}");
        // Rows too, not just counts: the same body on both paths.
        let q = "SELECT order_id, org_id FROM orders ORDER BY order_id LIMIT 25";
        let (ps, p) = proxied(&app, &session, q).await;
        let (ds, d) = direct(&app, &token, q).await;
        let (p, d): (Value, Value) = (
            serde_json::from_str(&p).unwrap(),
            serde_json::from_str(&d).unwrap(),
        );
        assert_eq!((ps, ds), (200, 200));
        assert_eq!(p["data"], d["data"], "{user}");
        assert!(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["org_id"] == org),
            "{p}"
        );
        counts.push(truth);
    }
    assert_ne!(
        counts[0], counts[1],
        "the tenants have different row counts"
    );
    let (s, b) = direct(&app, &admin, COUNT).await;
    assert!(
        number(s, &b) > counts[0] + counts[1],
        "there are other tenants' rows to leak"
    );
    app.stop().await;
}

#[tokio::test]
async fn form_raw_and_format_csv_pass_through_and_cookie_posts_need_csrf() {
    let app = local_app(|_| {}).await;
    let alice = app.session_for("alice").await;
    let token = token_of(&app, &alice).await;
    let expected = {
        let (s, b) = direct(&app, &token, COUNT).await;
        number(s, &b)
    };
    let post = |csrf: bool| {
        let r = alice.post(format!("{}api/sql", app.url));
        if csrf { r.header("x-bff-csrf", "1") } else { r }
    };
    let r = post(false).form(&[("q", COUNT)]).send().await.unwrap();
    assert_eq!(r.status(), 403, "cookie POST without the CSRF header");
    let r = post(false).body(COUNT).send().await.unwrap();
    assert_eq!(r.status(), 403, "raw cookie POST without the CSRF header");
    let r = post(true).form(&[("q", COUNT)]).send().await.unwrap();
    assert_eq!(
        number(r.status().as_u16(), &r.text().await.unwrap()),
        expected
    );
    let r = post(true)
        .header("content-type", "text/plain")
        .body(COUNT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        number(r.status().as_u16(), &r.text().await.unwrap()),
        expected
    );

    let csv = format!("{COUNT} FORMAT CSV");
    let via_proxy = alice
        .get(format!("{}api/sql", app.url))
        .query(&[("q", &csv)])
        .send()
        .await
        .unwrap();
    let straight = client()
        .get(format!("{}/v0/sql", app.tinybird))
        .query(&[("q", &csv)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        via_proxy.headers()["content-type"],
        straight.headers()["content-type"]
    );
    let text = via_proxy.text().await.unwrap();
    assert_eq!(text, straight.text().await.unwrap());
    assert_eq!(text, format!("{expected}\n"));
    app.stop().await;
}

#[tokio::test]
async fn bypass_attempts_through_the_proxy_are_refused_or_filtered() {
    let app = local_app(|_| {}).await;
    let alice = app.session_for("alice").await;
    let admin = admin_key_text();
    let acme = {
        let (s, b) = proxied(&app, &alice, COUNT).await;
        number(s, &b)
    };
    let counted = [
        "SELECT count(*) FROM orders WHERE org_id = 'globex' OR 1=1",
        "SELECT (SELECT count(*) FROM orders) AS n",
        "SELECT count(*) FROM orders o JOIN products p ON p.product_id = o.product_id AND p.org_id = o.org_id",
    ];
    for q in counted {
        let (s, b) = proxied(&app, &alice, q).await;
        assert_eq!(number(s, &b), acme, "{q}");
    }
    let refused = [
        ("SELECT count(*) FROM main.orders", 403),
        (
            "WITH orders AS (SELECT * FROM main.orders) SELECT count(*) FROM orders",
            403,
        ),
        (
            "SELECT count(*) FROM (SELECT 'globex' AS org_id) JOIN main.orders USING (org_id)",
            403,
        ),
        ("SELECT sql FROM sqlite_schema", 403),
        ("ATTACH DATABASE ':memory:' AS other", 400),
        ("DELETE FROM orders", 400),
    ];
    for (q, want) in refused {
        let (s, b) = proxied(&app, &alice, q).await;
        assert_eq!(s, want, "{q}: {b}");
        assert!(
            serde_json::from_str::<Value>(&b).unwrap()["error"].is_string(),
            "{b}"
        );
    }
    // Someone else's token in the URL or form never reaches Tinybird: still acme's count.
    let r = alice
        .get(format!("{}api/sql", app.url))
        .query(&[("q", COUNT), ("token", &admin)])
        .send()
        .await
        .unwrap();
    assert_eq!(number(r.status().as_u16(), &r.text().await.unwrap()), acme);
    let r = alice
        .post(format!("{}api/sql?token={admin}", app.url))
        .header("x-bff-csrf", "1")
        .form(&[("q", COUNT), ("token", &admin)])
        .send()
        .await
        .unwrap();
    assert_eq!(number(r.status().as_u16(), &r.text().await.unwrap()), acme);
    app.stop().await;
}

#[tokio::test]
async fn me_lists_the_data_sources_with_their_rendered_filters() {
    let app = local_app(|_| {}).await;
    app.login_as("bob").await;
    let me: Value = app.get("api/me").await.json().await.unwrap();
    let sources: Vec<_> = me["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["datasource"].as_str().unwrap(),
                d["filter"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("orders", "org_id = 'globex'"),
            ("orgs", "org_id = 'globex'"),
            ("products", "org_id = 'globex'")
        ]
    );
    assert!(me["pipes"].as_array().unwrap().len() >= 3, "{me}");
    app.stop().await;
}
