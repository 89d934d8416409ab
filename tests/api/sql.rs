//! `/v0/sql` on the local endpoint over real sockets: row-level security through
//! `DATASOURCES:READ` filters, against a table of bypass attempts.
//!
//! - here: the table of bypass attempts, and hostile tenant ids end to end;
//! - `endpoint`: who may call it, GET/POST, `FORMAT`, time, row and rate budgets.
//!
//! Every attempt runs as acme (filter `org_id = 'acme'` on orders, products and orgs) and
//! must either be refused (403 for data it may not read, 400 for statements that are not a
//! plain read) or return only acme's rows. Queries are written so that a leak shows: they
//! return `org_id` columns, or counts compared with acme's own.

mod endpoint;

use serde_json::{Value, json};
use tinybird_bff::grants::{GrantConfig, Grants};
use tinybird_bff::tinybird::claims::{Claims, Scope, ScopeType};
use tinybird_bff::tinybird::mint::{MintParams, TokenPlan, mint};
use tinybird_bff::user::User;

use crate::helpers::{
    LocalServer, WORKSPACE, admin_key, admin_key_text, client, now, sign_claims, spawn_local,
};

const TABLES: [&str; 3] = ["orders", "products", "orgs"];

/// A JWT reading `tables`, each filtered with `filter`.
fn ds_token(tables: &[&str], filter: &str) -> String {
    sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "sql-test".into(),
        exp: now() + 600,
        iat: Some(now()),
        scopes: tables
            .iter()
            .map(|t| Scope {
                scope_type: ScopeType::DatasourcesRead,
                resource: (*t).into(),
                fixed_params: None,
                filter: Some(filter.into()),
            })
            .collect(),
        limits: None,
    })
}

fn acme() -> String {
    ds_token(&TABLES, "org_id = 'acme'")
}

/// `GET /v0/sql?q=...`: status and body.
async fn sql(server: &LocalServer, token: &str, q: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}/v0/sql", server.url))
        .query(&[("q", q)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn rows(server: &LocalServer, token: &str, q: &str) -> Vec<Value> {
    let (status, body) = sql(server, token, q).await;
    assert_eq!(status, 200, "{q}: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["data"].as_array().unwrap().clone()
}

async fn count(server: &LocalServer, token: &str, q: &str) -> i64 {
    let data = rows(server, token, q).await;
    let value = data[0]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    value
        .as_str()
        .map(|s| s.parse().unwrap())
        .or(value.as_i64())
        .unwrap()
}

/// What a bypass attempt must end in.
enum Expect {
    /// Refused with this status.
    Refused(u16),
    /// 200, and every `org_id` value in the result is acme's (or NULL).
    OnlyAcme,
    /// 200 and no rows at all.
    NoRows,
    /// 200 with one count, equal to acme's number of orders.
    AcmeOrderCount,
}

use Expect::{AcmeOrderCount, NoRows, OnlyAcme, Refused};

#[rustfmt::skip]
const BYPASSES: &[(&str, &str, Expect)] = &[
    ("plain read", "SELECT org_id FROM orders", OnlyAcme),
    ("OR 1=1 in the user's WHERE", "SELECT org_id FROM orders WHERE org_id = 'globex' OR 1=1", OnlyAcme),
    ("count", "SELECT count(*) FROM orders", AcmeOrderCount),
    ("count of a join", "SELECT count(*) FROM orders o JOIN products p ON p.product_id = o.product_id AND p.org_id = o.org_id", AcmeOrderCount),
    ("join", "SELECT p.org_id, o.org_id AS org2 FROM orders o JOIN products p ON p.product_id = o.product_id", OnlyAcme),
    ("cross join", "SELECT o.org_id, g.org_id AS g FROM orders o, orgs g", OnlyAcme),
    ("left join from a constant", "SELECT o.org_id FROM (SELECT 'globex' AS x) LEFT JOIN orders o ON o.org_id = x", OnlyAcme),
    ("subquery in FROM", "SELECT org_id FROM (SELECT * FROM orders) AS t", OnlyAcme),
    ("scalar subquery", "SELECT (SELECT count(*) FROM orders) AS n", AcmeOrderCount),
    ("IN subquery", "SELECT org_id FROM orgs WHERE org_id IN (SELECT org_id FROM orders WHERE org_id <> 'acme')", NoRows),
    ("foreign tenant asked by name", "SELECT * FROM orders WHERE org_id = 'globex'", NoRows),
    ("UNION", "SELECT org_id FROM orders UNION SELECT org_id FROM orgs UNION SELECT org_id FROM products", OnlyAcme),
    ("UNION ALL with a constant", "SELECT org_id FROM orders UNION ALL SELECT 'acme'", OnlyAcme),
    ("window", "SELECT org_id, count(*) OVER () AS n FROM orders LIMIT 1", OnlyAcme),
    ("temp-qualified", "SELECT org_id FROM temp.orders", OnlyAcme),
    ("case-changed name", "SELECT org_id FROM ORDERS", OnlyAcme),
    ("CTE over the view", "WITH x AS (SELECT * FROM orders) SELECT org_id FROM x", OnlyAcme),
    ("CTE shadowing the name", "WITH orders AS (SELECT * FROM main.orders) SELECT org_id FROM orders", Refused(403)),
    ("CTE shadowing, count only", "WITH orders AS (SELECT * FROM main.orders) SELECT count(*) FROM orders", Refused(403)),
    ("recursive CTE shadowing", "WITH RECURSIVE orders(org_id) AS (SELECT org_id FROM main.orders) SELECT org_id FROM orders", Refused(403)),
    ("CTE reading itself (circular)", "WITH orders AS (SELECT * FROM orders) SELECT org_id FROM orders", Refused(400)),
    ("main.orders", "SELECT org_id FROM main.orders", Refused(403)),
    ("main.orders count", "SELECT count(*) FROM main.orders", Refused(403)),
    ("quoted MAIN", r#"SELECT org_id FROM "MAIN"."orders""#, Refused(403)),
    ("comment between schema and table", "SELECT org_id FROM main/**/.orders", Refused(403)),
    ("main in a scalar subquery", "SELECT (SELECT count(*) FROM main.orders) AS n", Refused(403)),
    ("main in IN", "SELECT org_id FROM orders WHERE org_id IN (SELECT org_id FROM main.orgs)", Refused(403)),
    ("main in a UNION", "SELECT org_id FROM orders UNION SELECT org_id FROM main.orders", Refused(403)),
    ("main joined with USING only", "SELECT count(*) FROM (SELECT 'globex' AS org_id) JOIN main.orders USING (org_id)", Refused(403)),
    ("main NATURAL JOIN", "SELECT count(*) FROM (SELECT 'globex' AS org_id) NATURAL JOIN main.orders", Refused(403)),
    ("main self-join USING", "SELECT 1 FROM main.orders JOIN main.orders AS x USING (order_id) LIMIT 1", Refused(403)),
    ("schema table", "SELECT * FROM sqlite_schema", Refused(403)),
    ("sqlite_master", "SELECT sql FROM main.sqlite_master", Refused(403)),
    ("temp schema (view names)", "SELECT sql FROM sqlite_temp_master", Refused(403)),
    ("pragma", "PRAGMA table_info(orders)", Refused(400)),
    ("pragma database_list", "PRAGMA database_list", Refused(400)),
    ("pragma function", "SELECT * FROM pragma_table_info('orders')", Refused(400)),
    ("json_each table", "SELECT * FROM json_each('[1]')", Refused(400)),
    ("attach", "ATTACH DATABASE ':memory:' AS other", Refused(400)),
    ("attach a file", "ATTACH DATABASE '/etc/passwd' AS other", Refused(400)),
    ("detach", "DETACH DATABASE main", Refused(400)),
    ("load_extension", "SELECT load_extension('/tmp/evil')", Refused(400)),
    ("readfile", "SELECT readfile('/etc/passwd')", Refused(400)),
    ("writefile", "SELECT writefile('/tmp/x', 'y')", Refused(400)),
    ("fts3_tokenizer", "SELECT fts3_tokenizer('simple')", Refused(400)),
    ("sqlite_version", "SELECT sqlite_version()", Refused(400)),
    ("delete", "DELETE FROM orders", Refused(400)),
    ("insert", "INSERT INTO orders (order_id) VALUES (1)", Refused(400)),
    ("update", "UPDATE orders SET amount = 0", Refused(400)),
    ("drop", "DROP TABLE orders", Refused(400)),
    ("create temp view", "CREATE TEMP VIEW mine AS SELECT * FROM main.orders", Refused(400)),
    ("create temp table", "CREATE TEMP TABLE mine AS SELECT 1", Refused(400)),
    ("begin", "BEGIN", Refused(400)),
    ("vacuum into", "VACUUM INTO '/tmp/tbff-leak.db'", Refused(400)),
    ("two statements", "SELECT 1; SELECT 2", Refused(400)),
    ("a write after a read", "SELECT 1; DELETE FROM orders", Refused(400)),
    ("explain", "EXPLAIN SELECT * FROM orders", Refused(400)),
    ("explain query plan", "EXPLAIN QUERY PLAN SELECT * FROM orders", Refused(400)),
];

#[tokio::test]
async fn every_bypass_attempt_is_refused_or_sees_only_its_tenant() {
    let server = spawn_local().await;
    let token = acme();
    let admin = admin_key_text();
    let acme_orders = count(
        &server,
        &admin,
        "SELECT count(*) FROM orders WHERE org_id = 'acme'",
    )
    .await;
    let all_orders = count(&server, &admin, "SELECT count(*) FROM orders").await;
    assert!(0 < acme_orders && acme_orders < all_orders);
    for (what, q, expect) in BYPASSES {
        let (status, body) = sql(&server, &token, q).await;
        match expect {
            Refused(want) => {
                assert_eq!(status, *want, "{what}: {q}\n{body}");
                let error: Value = serde_json::from_str(&body).unwrap();
                assert!(error["error"].is_string(), "{what}: {body}");
                assert!(
                    !body.contains("tbrls_"),
                    "{what} leaked a view name: {body}"
                );
            }
            OnlyAcme => {
                assert_eq!(status, 200, "{what}: {q}\n{body}");
                let body: Value = serde_json::from_str(&body).unwrap();
                let data = body["data"].as_array().unwrap();
                assert!(!data.is_empty(), "{what}: no rows at all");
                for row in data {
                    for (column, value) in row.as_object().unwrap() {
                        if column.starts_with("org") || column == "g" {
                            // NULL is an outer join finding nothing, not a foreign row.
                            assert!(
                                value == "acme" || value.is_null(),
                                "{what}: {q}\nforeign row {row}"
                            );
                        }
                    }
                }
            }
            NoRows => {
                assert_eq!(status, 200, "{what}: {q}\n{body}");
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["data"], json!([]), "{what}: {q}");
            }
            AcmeOrderCount => {
                assert_eq!(status, 200, "{what}: {q}\n{body}");
                assert_eq!(count(&server, &token, q).await, acme_orders, "{what}: {q}");
            }
        }
    }
}

#[tokio::test]
async fn a_hostile_tenant_id_is_one_string_and_matches_nothing() {
    #[derive(serde::Deserialize)]
    struct Config {
        grants: Vec<GrantConfig>,
    }
    let config: Config = toml::from_str(
        r#"
[[grants]]
name = "tenant-sql"
[grants.match]
any_user = true
[grants.datasources]
orders = "org_id = {{ user.tenant }}"
"#,
    )
    .unwrap();
    let grants = Grants::compile(&config.grants).unwrap();
    let key = admin_key();
    let plan = TokenPlan {
        name: "mallory".into(),
        ttl: std::time::Duration::from_secs(600),
        rps: None,
    };
    let params = MintParams {
        workspace_id: WORKSPACE,
        signing_key: key.secret(),
        plan: &plan,
    };
    let server = spawn_local().await;
    for tenant in [
        "x' OR '1'='1",
        "acme' --",
        "') OR ('1'='1",
        "acme\\' OR 1=1 --",
    ] {
        let user = User {
            id: "mallory".into(),
            tenant: Some(tenant.into()),
            roles: vec![],
            attributes: Default::default(),
        };
        let access = grants.evaluate(&user).unwrap();
        let minted = mint(&access, &params, now());
        let filter = minted.claims.scopes[0].filter.clone().unwrap();
        assert!(
            filter.starts_with("org_id = '") && filter.ends_with('\''),
            "{filter}"
        );
        let n = count(&server, &minted.token, "SELECT count(*) FROM orders").await;
        assert_eq!(n, 0, "tenant {tenant:?} (filter {filter}) read rows");
    }
    // The same path with an honest tenant does read rows.
    let user = User {
        id: "alice".into(),
        tenant: Some("acme".into()),
        roles: vec![],
        attributes: Default::default(),
    };
    let minted = mint(&grants.evaluate(&user).unwrap(), &params, now());
    assert!(count(&server, &minted.token, "SELECT count(*) FROM orders").await > 0);
}
