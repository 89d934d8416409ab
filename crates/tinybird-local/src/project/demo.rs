//! The demo's rows, generated from a seed (same seed, same rows) with dates counted back
//! from an anchor day so "recent" pipes stay recent. They go into the tables the demo's
//! `.datasource` files declare, like any project's fixtures.

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

/// The demo's tenants: (org_id, org_name, share of orders in percent).
pub const DEMO_ORGS: &[(&str, &str, u32)] = &[
    ("acme", "Acme Corp", 45),
    ("globex", "Globex", 35),
    ("initech", "Initech", 20),
];

const PRODUCTS: &[(&str, &str, f64)] = &[
    ("Trail Runner Shoes", "footwear", 89.0),
    ("Merino Base Layer", "apparel", 64.5),
    ("Insulated Bottle", "gear", 24.9),
    ("Rain Shell Jacket", "apparel", 149.0),
    ("Headlamp 400lm", "gear", 39.0),
    ("Trekking Poles", "gear", 79.0),
    ("Wool Socks (3-pack)", "apparel", 19.5),
    ("Daypack 22L", "bags", 74.0),
    ("Camp Stove", "gear", 59.9),
    ("Down Vest", "apparel", 129.0),
    ("Approach Shoes", "footwear", 119.0),
    ("Dry Bag 10L", "bags", 17.0),
];

const CUSTOMERS: &[&str] = &[
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Shafi",
    "Leslie",
    "Hedy",
    "Alan",
    "Katherine",
    "Tim",
    "Sophie",
    "John",
    "Anita",
];

/// Shape of the generated dataset.
#[derive(Debug, Clone)]
pub struct DemoData {
    /// Random seed: the same seed gives the same rows.
    pub seed: u64,
    /// Number of orders across all tenants.
    pub orders: usize,
    /// Days of history, counted back from `anchor`.
    pub days: i64,
    /// The most recent day of data (default: yesterday, so no order is in the future).
    pub anchor: NaiveDate,
}

impl Default for DemoData {
    fn default() -> Self {
        Self {
            seed: 42,
            orders: 40_000,
            days: 90,
            // Yesterday (UTC): every generated time of day is then in the past.
            anchor: chrono::Utc::now().date_naive() - Duration::days(1),
        }
    }
}

/// Fills the demo's `orgs`, `products` and `orders` tables (created from its `.datasource`
/// files) with rows generated from `demo.seed`.
pub fn generate(conn: &mut Connection, demo: &DemoData) -> rusqlite::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(demo.seed);
    let tx = conn.transaction()?;
    {
        let mut org = tx.prepare("INSERT INTO orgs (org_id, org_name, plan) VALUES (?, ?, ?)")?;
        let mut product = tx.prepare("INSERT INTO products (org_id, product_id, product_name, category, price) VALUES (?, ?, ?, ?, ?)")?;
        for (i, (id, name, _)) in DEMO_ORGS.iter().enumerate() {
            org.execute((id, name, ["pro", "enterprise", "free"][i % 3]))?;
            for (pid, (pname, category, price)) in PRODUCTS.iter().enumerate() {
                // Each tenant prices a little differently, so tenants' numbers never coincide.
                let price = (price * (1.0 + 0.07 * i as f64) * 100.0).round() / 100.0;
                product.execute((id, pid as i64 + 1, pname, category, price))?;
            }
        }
        let mut order = tx.prepare("INSERT INTO orders (order_id, org_id, ts, day, customer, product_id, quantity, amount) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")?;
        let total_share: u32 = DEMO_ORGS.iter().map(|o| o.2).sum();
        for order_id in 1..=demo.orders as i64 {
            let mut pick = rng.random_range(0..total_share);
            let (org_index, (org_id, _, _)) = DEMO_ORGS
                .iter()
                .enumerate()
                .find(|(_, o)| {
                    let hit = pick < o.2;
                    pick = pick.saturating_sub(o.2);
                    hit
                })
                .expect("shares add up");
            // Popularity follows a skewed distribution, so "top products" has a clear top.
            let pid = ((rng.random::<f64>().powi(2)) * PRODUCTS.len() as f64) as usize;
            let quantity: i64 = rng.random_range(1..=4);
            let price = (PRODUCTS[pid].2 * (1.0 + 0.07 * org_index as f64) * 100.0).round() / 100.0;
            let day = demo.anchor - Duration::days(rng.random_range(0..demo.days));
            let ts = day
                .and_hms_opt(
                    rng.random_range(0..24),
                    rng.random_range(0..60),
                    rng.random_range(0..60),
                )
                .expect("valid time");
            let customer = CUSTOMERS[rng.random_range(0..CUSTOMERS.len())];
            order.execute((
                order_id,
                org_id,
                ts.format("%Y-%m-%d %H:%M:%S").to_string(),
                day.format("%Y-%m-%d").to_string(),
                customer,
                pid as i64 + 1,
                quantity,
                ((price * quantity as f64) * 100.0).round() / 100.0,
            ))?;
        }
    }
    tx.commit()
}
