//! The demo's pipes answer a tenant from its own rows only, including what "the last `days`
//! days" counts back from: `sales_by_day` and `top_products` counted back from the latest
//! order of every tenant, so any tenant could learn when the others last sold (issue #25).

use tinybird_local::LocalConfig;
use tinybird_local::project::DEMO_FILES;

use super::get;
use crate::helpers::{admin_key, jwt_for, spawn_local_with};

/// The demo project with `orders` fixtures: acme's last order on `acme_last`, globex's on
/// `globex_last`.
fn project(acme_last: &str, globex_last: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tbff-tenancy-{}", uuid::Uuid::new_v4()));
    for (path, contents) in DEMO_FILES {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, contents).unwrap();
    }
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    let order = |id: u32, org: &str, day: &str| {
        format!(
            r#"{{"order_id":{id},"org_id":"{org}","ts":"{day} 10:00:00","day":"{day}","customer":"c","product_id":1,"quantity":1,"amount":10.0}}"#
        )
    };
    let orders = [
        order(1, "acme", "2026-01-01"),
        order(2, "acme", acme_last),
        order(3, "globex", "2026-01-01"),
        order(4, "globex", globex_last),
    ];
    std::fs::write(dir.join("fixtures/orders.ndjson"), orders.join("\n")).unwrap();
    let products = [
        r#"{"org_id":"acme","product_id":1,"product_name":"Tent","category":"gear","price":10.0}"#,
        r#"{"org_id":"globex","product_id":1,"product_name":"Lamp","category":"gear","price":10.0}"#,
    ];
    std::fs::write(dir.join("fixtures/products.ndjson"), products.join("\n")).unwrap();
    std::fs::write(
        dir.join("fixtures/orgs.ndjson"),
        r#"{"org_id":"acme","org_name":"Acme","plan":"pro"}"#,
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn the_last_days_count_back_from_the_tenants_own_latest_order() {
    let mut answers = Vec::new();
    // Only globex's latest order moves between the two datasets.
    for globex_last in ["2026-01-20", "2026-06-30"] {
        let dir = project("2026-01-20", globex_last);
        let mut config = LocalConfig::new(admin_key());
        config.project = Some(dir.clone());
        let server = spawn_local_with(config).await;
        let token = jwt_for(
            "alice@acme",
            &["sales_by_day", "top_products"],
            Some("acme"),
        );
        let days = get(
            &server.url,
            "/v0/pipes/sales_by_day.json?days=30",
            Some(&token),
        )
        .await;
        let top = get(
            &server.url,
            "/v0/pipes/top_products.json?days=30",
            Some(&token),
        )
        .await;
        let days: Vec<String> = days
            .rows()
            .iter()
            .map(|r| r["day"].as_str().unwrap().to_owned())
            .collect();
        let units: Vec<String> = top.rows().iter().map(|r| r["units"].to_string()).collect();
        answers.push((days, units));
        let _ = std::fs::remove_dir_all(dir);
    }
    assert_eq!(
        answers[0].0,
        ["2026-01-01", "2026-01-20"],
        "acme's last 30 days, counted back from acme's latest order"
    );
    assert_eq!(
        answers[0], answers[1],
        "another tenant's later orders changed what acme sees"
    );
}
