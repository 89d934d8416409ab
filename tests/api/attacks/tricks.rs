//! More ways around the row filter, each judged like `isolation`'s table: pipe ids (the
//! direct path serves `t_<hex>` ids as Tinybird does; neither path may turn one into a pipe
//! the user has no grant for), someone else's token smuggled next to one's own, a Tinybird
//! JWT presented to the BFF as if it were an identity, path tricks over a raw socket (nothing
//! normalises them), and SQL through `/api/sql` with the caller's own row filters.

use super::isolation::{Expect, everyone, judge};
use super::{TENANTS, USERS, app, pipe_id, reply};
use crate::helpers::client;

#[tokio::test]
async fn pipe_ids_other_credentials_and_path_tricks_never_widen_access() {
    let app = app().await;
    let who = everyone(&app).await;
    let overview = pipe_id("orgs_overview");
    let top = pipe_id("top_products");
    let mut failures = Vec::new();
    for (i, (user, tenant)) in USERS.into_iter().enumerate() {
        let (s, token) = &who[user];
        let theirs = &who[USERS[(i + 1) % USERS.len()].0].1;
        let admin_user = user == "admin";
        // By id: the direct path serves ids (as Tinybird does) with the same scope; the proxy
        // takes names only. Neither may turn an id into the admin's pipe for anyone else.
        let mut cases = Vec::new();
        for (path, cross) in [
            (format!("{top}.json?org_id=globex&org_id=initech"), false),
            (format!("{overview}.json"), admin_user),
        ] {
            cases.push((
                format!("{user} direct id {path}"),
                client()
                    .get(format!("{}/v0/pipes/{path}", app.tinybird))
                    .bearer_auth(token),
                cross,
            ));
            cases.push((
                format!("{user} proxy id {path}"),
                s.get(format!("{}api/pipes/{path}", app.url)),
                cross,
            ));
        }
        // Tinybird reads `?token=` before the header (docs/tinybird.md, "Token lookup"), so an admin's
        // token added as a header cannot widen what the URL's own token reads.
        cases.push((
            format!("{user} direct token= with an admin's header on orgs_overview"),
            client()
                .get(format!(
                    "{}/v0/pipes/orgs_overview.json?token={token}",
                    app.tinybird
                ))
                .bearer_auth(&who["admin"].1),
            admin_user,
        ));
        for (what, request, cross_tenant_ok) in cases {
            let r = reply(request.send().await.unwrap()).await;
            let case = Expect {
                what,
                tenant,
                cross_tenant_ok,
                rows_expected: false,
            };
            if let Err(e) = judge(&case, &r) {
                failures.push(e);
            }
            if !admin_user && case.what.contains("overview") && r.status == 200 {
                failures.push(format!("{}: a non-admin read the overview", case.what));
            }
        }
        // A Tinybird JWT is not an identity for the BFF: a bearer header is verified as an IdP
        // token (none is configured here) and never falls back to the cookie.
        for bearer in [theirs.as_str(), token.as_str()] {
            let r = reply(
                s.get(format!("{}api/pipes/top_products.json", app.url))
                    .bearer_auth(bearer)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if r.status != 401 {
                failures.push(format!(
                    "{user} proxy with a Tinybird JWT as bearer: {}",
                    r.status
                ));
            }
        }
    }
    // Path tricks over a raw socket, so nothing normalises them, with alice's cookie.
    let alice = super::session_cookie_for(&app, "alice").await;
    let alice_token = &who["alice"].1;
    for path in [
        "/api/pipes/orgs_overview.json".to_owned(),
        "/api/pipes/top_products.json/../orgs_overview.json".into(),
        "/api/pipes/./orgs_overview.json".into(),
        "/api/pipes/%2e%2e/pipes/orgs_overview.json".into(),
        "/api/pipes/%2E/orgs_overview.json".into(),
        "/api/pipes/ORGS_OVERVIEW.json".into(),
        "/api/pipes/orgs_overview%2Ejson".into(),
        "/api/pipes/orgs_overview".into(),
        "/api/pipes/orgs_overview.json%3Forg_id%3Dglobex".into(),
        "/api//pipes/orgs_overview.json".into(),
        "/api/pipes//orgs_overview.json".into(),
        "/api/pipes/top_products.json;org_id=globex".into(),
        "/api/pipes/top_products.json%23?org_id=globex".into(),
        "/api/pipes/top_products%00.json?org_id=globex".into(),
        "/v0/pipes/orgs_overview.json".into(),
        format!("/api/pipes/{overview}.json"),
    ] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {alice}\r\nX-BFF-CSRF: 1",
            app.addr
        );
        let (status, body) = crate::local::raw_http(app.addr, head.as_bytes()).await;
        check_raw(&mut failures, &format!("proxy {path}"), status, &body);
        let direct = path.replace("/api/pipes", "/v0/pipes");
        let addr = app.tinybird.trim_start_matches("http://").parse().unwrap();
        let (status, body) = crate::local::raw_get(addr, direct.as_bytes(), alice_token).await;
        check_raw(&mut failures, &format!("direct {direct}"), status, &body);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

/// A raw answer for alice: no 5xx, no overview, nothing of globex or initech.
fn check_raw(failures: &mut Vec<String>, what: &str, status: u16, body: &str) {
    if status >= 500 {
        failures.push(format!("{what}: {status} {body}"));
    }
    if status == 200 && (body.contains("globex") || body.contains("initech")) {
        failures.push(format!("{what}: foreign rows: {body}"));
    }
}

#[tokio::test]
async fn sql_through_the_proxy_sees_only_the_callers_tenant() {
    let app = app().await;
    let mut failures = Vec::new();
    for (i, (user, tenant)) in USERS.into_iter().enumerate() {
        let s = app.session_for(user).await;
        let other = TENANTS.iter().find(|t| **t != tenant).unwrap();
        let theirs = app
            .token_for(&app.session_for(USERS[(i + 1) % 4].0).await)
            .await;
        for (q, rows_expected) in [
            ("SELECT DISTINCT org_id FROM orders".to_owned(), true),
            ("SELECT org_id FROM orgs".into(), true),
            ("SELECT DISTINCT org_id FROM products".into(), true),
            (
                format!("SELECT org_id FROM orders WHERE org_id = '{other}'"),
                false,
            ),
            (
                format!("SELECT org_id FROM orders WHERE org_id = '{other}' OR 1=1 LIMIT 50"),
                true,
            ),
        ] {
            let encoded: String = url_encode(&q);
            for request in [
                s.get(format!("{}api/sql?q={encoded}&token={theirs}", app.url)),
                s.post(format!("{}api/sql?token={theirs}", app.url))
                    .header("x-bff-csrf", "1")
                    .header("content-type", "text/plain")
                    .body(q.clone()),
            ] {
                let r = reply(request.send().await.unwrap()).await;
                if r.status == 404 && r.body.contains("no such API route") {
                    return; // /api/sql is not built into this version.
                }
                let case = Expect {
                    what: format!("{user} /api/sql {q}"),
                    tenant,
                    cross_tenant_ok: false,
                    rows_expected,
                };
                if let Err(e) = judge(&case, &r) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
