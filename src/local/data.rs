//! The local endpoint's database: the generated demo dataset, or a SQLite file from `--data`.
//!
//! The demo data lives in a shared-cache in-memory SQLite database so that a small pool of
//! read-only connections can query it at once. It is generated from a seed (same seed, same
//! rows), with dates counted back from an anchor day so "recent" pipes stay recent.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};

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

/// A fixed pool of read-only connections to one database.
pub struct Database {
    /// Kept open so an in-memory database lives as long as the endpoint.
    _owner: Mutex<Connection>,
    pool: Mutex<Vec<Connection>>,
    available: tokio::sync::Semaphore,
}

/// A connection borrowed from the pool; returned on drop.
pub struct PooledConnection {
    db: Arc<Database>,
    conn: Option<Connection>,
}

impl std::ops::Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.db.pool.lock().expect("pool lock").push(conn);
            self.db.available.add_permits(1);
        }
    }
}

const POOL_SIZE: usize = 4;

impl Database {
    /// Generates the demo dataset in memory.
    pub fn generate(demo: &DemoData) -> rusqlite::Result<Arc<Self>> {
        let uri = format!(
            "file:tbdemo-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut owner = Connection::open_with_flags(&uri, flags)?;
        fill(&mut owner, demo)?;
        Self::with_readers(owner, &uri, flags)
    }

    /// Opens an existing SQLite file read-only (`--data`). URI names are on so that the
    /// in-memory `tinybird` schema can be attached.
    pub fn open(path: &Path) -> rusqlite::Result<Arc<Self>> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let owner = Connection::open_with_flags(path, flags)?;
        // Fail now, not at the first request, if the file is not a database.
        owner.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        Self::with_readers(owner, &path.to_string_lossy(), flags)
    }

    fn with_readers(
        owner: Connection,
        path: &str,
        flags: OpenFlags,
    ) -> rusqlite::Result<Arc<Self>> {
        let read_flags =
            (flags - OpenFlags::SQLITE_OPEN_READ_WRITE - OpenFlags::SQLITE_OPEN_CREATE)
                | OpenFlags::SQLITE_OPEN_READ_ONLY;
        let mut pool = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let conn = Connection::open_with_flags(path, read_flags)?;
            // Pipes only read; this also stops a template from ever writing.
            conn.pragma_update(None, "query_only", true)?;
            pool.push(conn);
        }
        Ok(Arc::new(Self {
            _owner: Mutex::new(owner),
            pool: Mutex::new(pool),
            available: tokio::sync::Semaphore::new(POOL_SIZE),
        }))
    }

    /// Runs `setup` on every pooled connection (before serving: all are in the pool).
    pub fn for_each_connection(
        &self,
        setup: impl Fn(&Connection) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let pool = self.pool.lock().expect("pool lock");
        pool.iter().try_for_each(setup)
    }

    /// Waits for a free connection.
    pub async fn acquire(self: &Arc<Self>) -> PooledConnection {
        self.available
            .acquire()
            .await
            .expect("never closed")
            .forget();
        let conn = self.pool.lock().expect("pool lock").pop();
        PooledConnection {
            db: Arc::clone(self),
            conn,
        }
    }
}

fn fill(conn: &mut Connection, demo: &DemoData) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE orgs (org_id TEXT PRIMARY KEY, org_name TEXT NOT NULL, plan TEXT NOT NULL);
         CREATE TABLE products (org_id TEXT NOT NULL, product_id INTEGER NOT NULL, product_name TEXT NOT NULL,
                                category TEXT NOT NULL, price REAL NOT NULL, PRIMARY KEY (org_id, product_id));
         CREATE TABLE orders (order_id INTEGER PRIMARY KEY, org_id TEXT NOT NULL, ts DATETIME NOT NULL, day DATE NOT NULL,
                              customer TEXT NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL, amount REAL NOT NULL);",
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(demo.seed);
    let tx = conn.transaction()?;
    {
        let mut org = tx.prepare("INSERT INTO orgs VALUES (?, ?, ?)")?;
        let mut product = tx.prepare("INSERT INTO products VALUES (?, ?, ?, ?, ?)")?;
        for (i, (id, name, _)) in DEMO_ORGS.iter().enumerate() {
            org.execute((id, name, ["pro", "enterprise", "free"][i % 3]))?;
            for (pid, (pname, category, price)) in PRODUCTS.iter().enumerate() {
                // Each tenant prices a little differently, so tenants' numbers never coincide.
                let price = (price * (1.0 + 0.07 * i as f64) * 100.0).round() / 100.0;
                product.execute((id, pid as i64 + 1, pname, category, price))?;
            }
        }
        let mut order = tx.prepare("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)")?;
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
    tx.commit()?;
    conn.execute_batch("CREATE INDEX orders_org_day ON orders (org_id, day); ANALYZE;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Database, sql: &str) -> i64 {
        let conn = db.pool.lock().unwrap().pop().unwrap();
        let n = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        db.pool.lock().unwrap().push(conn);
        n
    }

    #[test]
    fn same_seed_same_rows_and_every_tenant_has_data() {
        let demo = DemoData {
            anchor: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            ..DemoData::default()
        };
        let a = Database::generate(&demo).unwrap();
        let b = Database::generate(&demo).unwrap();
        let checksum = "SELECT sum(order_id * quantity) + CAST(sum(amount) AS INTEGER) FROM orders";
        assert_eq!(count(&a, checksum), count(&b, checksum));
        assert_eq!(count(&a, "SELECT count(*) FROM orders"), 40_000);
        for (org, _, _) in DEMO_ORGS {
            assert!(
                count(
                    &a,
                    &format!("SELECT count(*) FROM orders WHERE org_id = '{org}'")
                ) > 5_000
            );
        }
        assert_eq!(
            count(&a, "SELECT count(*) FROM orders WHERE day > '2026-01-31'"),
            0
        );
    }

    #[test]
    fn readers_cannot_write() {
        let db = Database::generate(&DemoData {
            orders: 10,
            ..DemoData::default()
        })
        .unwrap();
        let conn = db.pool.lock().unwrap().pop().unwrap();
        assert!(conn.execute("DELETE FROM orders", []).is_err());
    }
}
