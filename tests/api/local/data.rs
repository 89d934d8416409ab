//! What the endpoint serves: the generated demo dataset (three tenants, deterministic), a
//! SQLite file of the user's own, and a pipe directory where one file is broken.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde_json::{Value, json};
use tinybird_local::data::DemoData;
use tinybird_local::{LocalConfig, LocalEndpoint};

use super::{get, serve, without_statistics};
use crate::helpers::{admin_key, admin_key_text, jwt_for, spawn_local, spawn_local_with};

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-api-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo_at(anchor: NaiveDate, seed: u64) -> LocalConfig {
    LocalConfig {
        demo: DemoData {
            anchor,
            seed,
            ..DemoData::default()
        },
        ..LocalConfig::new(admin_key())
    }
}

#[tokio::test]
async fn the_demo_has_three_tenants_and_tens_of_thousands_of_orders() {
    let server = spawn_local().await;
    let r = get(
        &server.url,
        "/v0/pipes/orgs_overview.json",
        Some(&admin_key_text()),
    )
    .await;
    let mut orgs = r.org_ids();
    orgs.sort();
    assert_eq!(
        orgs,
        ["acme", "globex", "initech"],
        "the cross-tenant pipe returns every org"
    );
    let orders: Vec<u64> = r
        .rows()
        .iter()
        .map(|row| row["orders"].as_str().unwrap().parse().unwrap())
        .collect();
    let total: u64 = orders.iter().sum();
    assert!(
        (10_000..100_000).contains(&total),
        "tens of thousands of orders: {total}"
    );
    assert!(
        orders.iter().all(|n| *n > 1_000),
        "every tenant has real data: {orders:?}"
    );
    assert!(
        r.rows()
            .iter()
            .all(|row| !row["org_name"].as_str().unwrap().is_empty())
    );
    // Tenants' numbers never coincide, so a leak between them shows.
    let revenues: Vec<f64> = r
        .rows()
        .iter()
        .map(|row| row["revenue"].as_f64().unwrap())
        .collect();
    assert!(
        revenues.windows(2).all(|w| w[0] > w[1]),
        "distinct, ordered by revenue: {revenues:?}"
    );
}

#[tokio::test]
async fn the_same_seed_and_anchor_give_the_same_answers() {
    let anchor = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
    let a = spawn_local_with(demo_at(anchor, 42)).await;
    let b = spawn_local_with(demo_at(anchor, 42)).await;
    let other_seed = spawn_local_with(demo_at(anchor, 7)).await;
    let token = jwt_for(
        "acme-user",
        &["top_products", "recent_orders"],
        Some("acme"),
    );
    let top = |url: String| {
        let token = token.clone();
        async move {
            without_statistics(
                get(
                    &url,
                    "/v0/pipes/top_products.json?days=90&limit=12",
                    Some(&token),
                )
                .await
                .json(),
            )
        }
    };
    let (ta, tb, tc) = (
        top(a.url.clone()).await,
        top(b.url.clone()).await,
        top(other_seed.url.clone()).await,
    );
    assert_eq!(ta["rows"], 12);
    assert_eq!(ta, tb, "same seed, same top products");
    assert_ne!(ta["data"], tc["data"], "another seed, other numbers");
    let recent = |url: String| {
        let token = token.clone();
        async move {
            without_statistics(
                get(&url, "/v0/pipes/recent_orders.json", Some(&token))
                    .await
                    .json(),
            )
        }
    };
    let (ra, rb) = (recent(a.url.clone()).await, recent(b.url.clone()).await);
    assert_eq!(ra, rb);
    // Dates count back from the anchor: the latest order is on the anchor day.
    assert!(
        ra["data"][0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-31"),
        "{}",
        ra["data"][0]
    );
}

#[tokio::test]
async fn the_default_demo_stays_recent() {
    let before = chrono::Utc::now();
    let server = spawn_local().await;
    let r = get(
        &server.url,
        "/v0/pipes/recent_orders.json?limit=1&org_id=acme",
        Some(&admin_key_text()),
    )
    .await;
    let latest = r.rows()[0]["ts"].as_str().unwrap().to_owned();
    let latest = chrono::NaiveDateTime::parse_from_str(&latest, "%Y-%m-%d %H:%M:%S").unwrap();
    let yesterday = before.date_naive() - chrono::Duration::days(1);
    assert!(
        latest.date() == yesterday
            || latest.date() == chrono::Utc::now().date_naive() - chrono::Duration::days(1),
        "latest order {latest}: the data ends yesterday"
    );
    assert!(
        latest < before.naive_utc(),
        "no order is in the future: {latest}"
    );
}

/// A small database with the tables the demo pipes read: two tenants, four orders.
fn write_database(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE orgs (org_id TEXT PRIMARY KEY, org_name TEXT NOT NULL, plan TEXT NOT NULL);
         CREATE TABLE products (org_id TEXT NOT NULL, product_id INTEGER NOT NULL, product_name TEXT NOT NULL,
                                category TEXT NOT NULL, price REAL NOT NULL, PRIMARY KEY (org_id, product_id));
         CREATE TABLE orders (order_id INTEGER PRIMARY KEY, org_id TEXT NOT NULL, ts DATETIME NOT NULL, day DATE NOT NULL,
                              customer TEXT NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL, amount REAL NOT NULL);
         INSERT INTO orgs VALUES ('north', 'North Ltd', 'pro'), ('south', 'South plc', 'free');
         INSERT INTO products VALUES ('north', 1, 'Kayak', 'boats', 500.0), ('north', 2, 'Paddle, carbon', 'gear', 50.0),
                                     ('south', 1, 'Tent', 'gear', 200.0);
         INSERT INTO orders VALUES
           (1, 'north', '2026-03-10 10:00:00', '2026-03-10', 'Ada', 1, 1, 500.0),
           (2, 'north', '2026-03-10 11:00:00', '2026-03-10', 'Bob', 2, 3, 150.0),
           (3, 'north', '2026-03-09 09:00:00', '2026-03-09', 'Cy', 2, 1, 50.0),
           (4, 'south', '2026-03-10 12:00:00', '2026-03-10', 'Di', 1, 2, 400.0);",
    )
    .unwrap();
}

#[tokio::test]
async fn a_data_file_is_served_instead_of_the_demo() {
    let dir = TempDir::new("data");
    let db = dir.0.join("shop.sqlite");
    write_database(&db);
    let server = spawn_local_with(LocalConfig {
        data: Some(db.clone()),
        ..LocalConfig::new(admin_key())
    })
    .await;
    let token = jwt_for(
        "north-user",
        &["top_products", "sales_by_day", "recent_orders"],
        Some("north"),
    );

    let top = get(
        &server.url,
        "/v0/pipes/top_products.json?org_id=south",
        Some(&token),
    )
    .await;
    assert_eq!(
        top.rows(),
        [
            json!({"product_id": "1", "product_name": "Kayak", "units": "1", "revenue": 500.0, "org_id": "north"}),
            json!({"product_id": "2", "product_name": "Paddle, carbon", "units": "4", "revenue": 200.0, "org_id": "north"}),
        ]
    );
    let days = get(&server.url, "/v0/pipes/sales_by_day.json", Some(&token))
        .await
        .json();
    assert_eq!(days["meta"][0], json!({"name": "day", "type": "Date"}));
    assert_eq!(
        days["data"],
        json!([
            {"day": "2026-03-09", "orders": "1", "revenue": 50.0, "org_id": "north"},
            {"day": "2026-03-10", "orders": "2", "revenue": 650.0, "org_id": "north"},
        ])
    );
    let gear = get(
        &server.url,
        "/v0/pipes/sales_by_day.json?category=gear",
        Some(&token),
    )
    .await;
    assert_eq!(gear.rows().len(), 2);
    assert_eq!(gear.rows()[1]["revenue"], 150.0);
    let recent = get(&server.url, "/v0/pipes/recent_orders.json", Some(&token))
        .await
        .json();
    assert_eq!(recent["meta"][1], json!({"name": "ts", "type": "DateTime"}));
    let ids: Vec<&Value> = recent["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["order_id"])
        .collect();
    assert_eq!(ids, [&json!("2"), &json!("1"), &json!("3")], "newest first");
    let csv = get(&server.url, "/v0/pipes/top_products.csv", Some(&token)).await;
    assert!(
        csv.body.contains("2,\"Paddle, carbon\",4,200"),
        "{}",
        csv.body
    );

    let overview = get(
        &server.url,
        "/v0/pipes/orgs_overview.json",
        Some(&admin_key_text()),
    )
    .await;
    assert_eq!(
        overview.rows(),
        [
            json!({"org_id": "north", "org_name": "North Ltd", "orders": "3", "revenue": 700.0}),
            json!({"org_id": "south", "org_name": "South plc", "orders": "1", "revenue": 400.0}),
        ]
    );
    let free = get(
        &server.url,
        "/v0/pipes/orgs_overview.json?plan=free",
        Some(&admin_key_text()),
    )
    .await;
    assert_eq!(free.org_ids(), ["south"]);
    // The file is only read: serving it changed nothing.
    drop(server);
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(
        conn.query_row("SELECT count(*) FROM orders", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn a_missing_or_non_database_data_file_stops_the_start_naming_it() {
    let dir = TempDir::new("baddata");
    let not_db = dir.0.join("notes.sqlite");
    std::fs::write(
        &not_db,
        "this is not a database, just text that is long enough to have a header",
    )
    .unwrap();
    for path in [not_db, dir.0.join("missing.sqlite")] {
        let err = LocalEndpoint::new(LocalConfig {
            data: Some(path.clone()),
            ..LocalConfig::new(admin_key())
        })
        .err()
        .unwrap_or_else(|| panic!("{} was accepted", path.display()));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

const BROKEN: &str = "DESCRIPTION >
    A pipe with a typo in a function name.

NODE endpoint
SQL >
    %
    SELECT org_id, count(*) AS orders
    FROM orders
    WHERE org_id = {{ Strng(org_id) }}
    GROUP BY org_id

TYPE endpoint
";

#[tokio::test]
async fn a_broken_pipe_file_is_reported_with_file_and_line_and_the_rest_still_serve() {
    let dir = TempDir::new("pipes");
    let top = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/demo/endpoints/top_products.pipe"
    ))
    .unwrap();
    std::fs::write(dir.0.join("top_products.pipe"), top).unwrap();
    std::fs::write(dir.0.join("broken.pipe"), BROKEN).unwrap();
    std::fs::write(dir.0.join("README.md"), "not a pipe").unwrap();
    let config = LocalConfig {
        pipes_dir: Some(dir.0.clone()),
        ..LocalConfig::new(admin_key())
    };
    let (endpoint, problems) =
        LocalEndpoint::new(config).expect("one broken file does not stop the start");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, dir.0.join("broken.pipe"));
    assert_eq!(
        problems[0].line, 9,
        "the line of the typo in the file: {}",
        problems[0]
    );
    let shown = problems[0].to_string();
    assert!(
        shown.contains("broken.pipe:9") && shown.contains("Strng"),
        "{shown}"
    );
    assert_eq!(endpoint.pipe_names(), ["top_products"]);

    let server = serve(endpoint).await;
    let token = jwt_for("acme-user", &["top_products", "broken"], Some("acme"));
    let orgs = get(&server.url, "/v0/pipes/top_products.json", Some(&token))
        .await
        .org_ids();
    assert!(!orgs.is_empty() && orgs.iter().all(|o| o == "acme"));
    get(&server.url, "/v0/pipes/broken.json", Some(&token))
        .await
        .assert_error(404, &["broken"]);
    // The embedded demo pipes are not mixed in when a directory is given.
    get(
        &server.url,
        "/v0/pipes/recent_orders.json",
        Some(&admin_key_text()),
    )
    .await
    .assert_error(404, &["recent_orders"]);
}

#[tokio::test]
async fn a_missing_pipes_directory_stops_the_start_naming_it() {
    let dir = std::env::temp_dir().join(format!("tbff-api-nopipes-{}", uuid::Uuid::new_v4()));
    let err = LocalEndpoint::new(LocalConfig {
        pipes_dir: Some(dir.clone()),
        ..LocalConfig::new(admin_key())
    })
    .err()
    .expect("a missing directory is an error");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
}
