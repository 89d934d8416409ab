//! Tenant isolation, table-driven: for every demo user and every pipe, on the direct path (the
//! user's JWT against the local endpoint) and the proxy path (`/api/pipes/...` with the
//! session cookie), every way we know to ask for another tenant's rows: the fixed param in
//! the query or a form body, duplicated, in other cases, percent-encoded, as an array, as a
//! list, with `q`, with someone else's token, by pipe id, and through path tricks.
//!
//! The one rule: a request is refused (4xx, never 5xx) or every row it returns belongs to
//! the user's tenant. The admin's `orgs_overview` is cross-tenant by grant and exempt; every
//! other user must be refused it whatever the spelling. All failures are collected and
//! reported together, so one run shows every hole at once.
//!
//! Pipe ids, other users' credentials, path tricks and SQL are in `tricks`.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde_json::Value;

use super::{Reply, TENANTS, USERS, app, reply};
use crate::helpers::{TestApp, client};

const PIPES: [&str; 4] = [
    "top_products",
    "sales_by_day",
    "recent_orders",
    "orgs_overview",
];

/// Query strings that try to widen the row filter; `{o}` is another tenant, `{me}` the user's.
const QUERY_TRICKS: &[&str] = &[
    "",
    "org_id={o}",
    "org_id={o}&org_id={o}",
    "org_id={me}&org_id={o}",
    "org_id={o}&org_id={me}",
    "ORG_ID={o}",
    "Org_Id={o}",
    "org%5Fid={o}",
    "org%5fid={o}",
    "%6Frg_id={o}",
    "org_id[]={o}",
    "org_id%5B%5D={o}",
    "org_id={me},{o}",
    "org_id={o},{me}",
    "org_id=%27%20OR%20%271%27%3D%271",
    "org_id={o}%00",
    "org_id={o}%27--",
    "+org_id={o}",
    "org_id+={o}",
    "org_id=",
    "org_id",
    "org_id={o}&limit=100000&days=100000",
    "__tb__org_id={o}",
    "template_parameters=%7B%22org_id%22%3A%22{o}%22%7D",
    "q=select+*+from+_",
    "q=select+*+from+orders",
    "org_id={o}&format=csv&debug=1",
];

/// Form bodies that try the same in a `POST` (the query string carries one more try).
const FORM_TRICKS: &[(&str, &str)] = &[
    ("", "org_id={o}"),
    ("org_id={o}", "org_id={o}"),
    ("", "ORG_ID={o}&org_id={o}&org_id[]={o}&org%5Fid={o}"),
    ("org_id={o}", "org_id={me}&org_id={o}"),
    ("", "q=select+*+from+orders"),
];

#[derive(Clone, Copy, Debug)]
enum Route {
    Direct,
    Proxy,
}

/// What an answer to one attempt may contain.
pub struct Expect {
    pub what: String,
    pub tenant: &'static str,
    /// Whether rows from every tenant are legitimate (the admin's cross-tenant pipe).
    pub cross_tenant_ok: bool,
    /// Whether a 200 must carry rows (so a filter that hides everything cannot pass vacuously).
    pub rows_expected: bool,
}

/// One attempt, ready to send.
struct Case {
    expect: Expect,
    request: reqwest::RequestBuilder,
}

/// The user's tenant is the only one in the rows, or the request was refused without a 5xx.
pub fn judge(case: &Expect, r: &Reply) -> Result<(), String> {
    let what = &case.what;
    if r.status >= 500 {
        return Err(format!("{what}: {} {}", r.status, r.body));
    }
    if r.status != 200 {
        return Ok(());
    }
    let body = r.json();
    let Some(rows) = body["data"].as_array() else {
        // Not rows (a CSV the trick asked for): look for other tenants' ids anywhere.
        let foreign = TENANTS.iter().filter(|t| **t != case.tenant);
        return match foreign.into_iter().find(|t| r.body.contains(**t)) {
            Some(t) if !case.cross_tenant_ok => Err(format!("{what}: {t} in {}", r.body)),
            _ => Ok(()),
        };
    };
    if case.cross_tenant_ok {
        return Ok(());
    }
    if case.rows_expected && rows.is_empty() {
        return Err(format!(
            "{what}: 200 without rows (is the test still meaningful?)"
        ));
    }
    match rows.iter().find(|row| row["org_id"] != case.tenant) {
        Some(row) => Err(format!("{what}: foreign row {row}")),
        None => Ok(()),
    }
}

/// Sends every case (8 at a time); returns the failures and how many answers were 200.
async fn run(cases: Vec<Case>) -> (Vec<String>, usize) {
    let results: Vec<(u16, Result<(), String>)> = futures_util::stream::iter(cases)
        .map(|case| async move {
            let r = reply(case.request.try_clone().unwrap().send().await.unwrap()).await;
            (r.status, judge(&case.expect, &r))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    let failures = results.into_iter().filter_map(|(_, r)| r.err()).collect();
    (failures, ok)
}

/// Sessions and direct tokens for every demo user.
pub async fn everyone(app: &TestApp) -> HashMap<&'static str, (reqwest::Client, String)> {
    let mut out = HashMap::new();
    for (user, _) in USERS {
        let s = app.session_for(user).await;
        let token = app.token_for(&s).await;
        out.insert(user, (s, token));
    }
    out
}

fn fill(template: &str, me: &str, other: &str) -> String {
    template.replace("{me}", me).replace("{o}", other)
}

#[tokio::test]
async fn no_override_trick_reads_another_tenants_rows_on_either_path() {
    let app = app().await;
    let who = everyone(&app).await;
    let mut cases = Vec::new();
    for (i, (user, tenant)) in USERS.into_iter().enumerate() {
        let (s, token) = &who[user];
        // Someone else's token, minted through a second session, smuggled into the request.
        let victim = USERS[(i + 1) % USERS.len()].0;
        let theirs = &who[victim].1;
        let admins = &who["admin"].1;
        for (j, pipe) in PIPES.into_iter().enumerate() {
            let other = TENANTS.iter().filter(|t| **t != tenant).nth(j % 2).unwrap();
            let cross_tenant_ok = user == "admin" && pipe == "orgs_overview";
            let rows_expected = pipe != "orgs_overview";
            let both = [Route::Direct, Route::Proxy];
            let mut queries: Vec<(String, &[Route], &str)> = QUERY_TRICKS
                .iter()
                .map(|q| (fill(q, tenant, other), &both[..], token.as_str()))
                .collect();
            // Tinybird reads `?token=` before the header (docs/tinybird.md, "Token lookup"): on the direct
            // path a request carrying someone else's token is that someone's request, so a
            // smuggled token is judged on the proxy, which must drop it. On the direct path,
            // the user's own token in the URL must win over an admin's in the header.
            queries.push((
                format!("org_id={other}&token={theirs}"),
                &both[1..],
                token.as_str(),
            ));
            queries.push((format!("token={admins}"), &both[1..], token.as_str()));
            queries.push((
                format!("org_id={other}&token={token}"),
                &both[..1],
                admins.as_str(),
            ));
            for (query, routes, header) in queries {
                for route in routes.iter().copied() {
                    let request = match route {
                        Route::Direct => client()
                            .get(format!("{}/v0/pipes/{pipe}.json?{query}", app.tinybird))
                            .bearer_auth(header),
                        Route::Proxy => s.get(format!("{}api/pipes/{pipe}.json?{query}", app.url)),
                    };
                    let what = format!("{user} {route:?} GET {pipe}?{query}");
                    cases.push(Case {
                        expect: Expect {
                            what,
                            tenant,
                            cross_tenant_ok,
                            rows_expected,
                        },
                        request,
                    });
                }
            }
            for (query, form) in FORM_TRICKS {
                let (query, form) = (fill(query, tenant, other), fill(form, tenant, other));
                let mut form_cases = vec![(Route::Direct, form.clone()), (Route::Proxy, form)];
                form_cases.push((Route::Proxy, format!("org_id={other}&token={theirs}")));
                for (route, form) in form_cases {
                    let request = match route {
                        Route::Direct => client()
                            .post(format!("{}/v0/pipes/{pipe}.json?{query}", app.tinybird))
                            .bearer_auth(token),
                        Route::Proxy => s
                            .post(format!("{}api/pipes/{pipe}.json?{query}", app.url))
                            .header("x-bff-csrf", "1"),
                    };
                    let what = format!("{user} {route:?} POST {pipe}?{query} body {form}");
                    cases.push(Case {
                        expect: Expect {
                            what,
                            tenant,
                            cross_tenant_ok,
                            rows_expected,
                        },
                        request: request
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(form),
                    });
                }
            }
        }
    }
    let total = cases.len();
    let (failures, answered) = run(cases).await;
    // Most tricks are answered with the user's own rows (fixed params win, unknown names are
    // ignored); refusals are the minority. Far fewer 200s would mean the test broke.
    assert!(
        answered * 2 > total,
        "only {answered} of {total} attempts got rows"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} attempts leaked or failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}

/// Values judged by `judge` must all be JSON rows; keep the helper honest.
#[test]
fn the_judge_catches_a_foreign_row_and_an_empty_answer() {
    let case = |rows_expected| Expect {
        what: "t".into(),
        tenant: "acme",
        cross_tenant_ok: false,
        rows_expected,
    };
    let ok = |body: Value| Reply {
        status: 200,
        headers: Default::default(),
        body: body.to_string(),
    };
    let acme = serde_json::json!({"data": [{"org_id": "acme"}]});
    let mixed = serde_json::json!({"data": [{"org_id": "acme"}, {"org_id": "globex"}]});
    let empty = serde_json::json!({"data": []});
    assert!(judge(&case(true), &ok(acme)).is_ok());
    assert!(judge(&case(true), &ok(mixed)).is_err());
    assert!(judge(&case(true), &ok(empty.clone())).is_err());
    assert!(judge(&case(false), &ok(empty)).is_ok());
}
