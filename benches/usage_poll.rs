//! The usage poller's cost per poll, without the network: parse the SQL API's JSON answer,
//! keep the rows not seen before, attribute them to their owners, fold them into one-minute
//! cells and apply those to the store, for 10,000 and 100,000 new rows of `pipe_stats_rt`
//! (1,000 users in 100 tenants, 5 pipes, a tenth proxied). Numbers go to docs/benchmarks.md.

use std::collections::HashMap;

use tinybird_bff::usage::Owner;
use tinybird_bff::usage::poller::attribute;
use tinybird_bff::usage::rows::{Cursor, parse};
use tinybird_bff::usage::store::Store;

fn main() {
    divan::main();
}

fn answer(rows: usize) -> (Vec<u8>, HashMap<String, Owner>, HashMap<String, Owner>) {
    let start = chrono::Utc::now().timestamp() - 600;
    let mut data = Vec::with_capacity(rows);
    let mut names = HashMap::new();
    let mut proxied = HashMap::new();
    for i in 0..rows {
        let (user, tenant) = (i % 1000, i % 100);
        let name = format!("user{user}@tenant{tenant}");
        let owner = Owner {
            user: format!("user{user}"),
            tenant: Some(format!("tenant{tenant}")),
            plan: None,
        };
        let id = format!("01JREQ{i:020}");
        if i % 10 == 0 {
            proxied.insert(id.clone(), owner.clone());
        }
        names.insert(name.clone(), owner);
        let at = chrono::DateTime::from_timestamp(start + (i * 600 / rows) as i64, 0).unwrap();
        data.push(serde_json::json!({
            "start_datetime": at.format("%Y-%m-%d %H:%M:%S").to_string(),
            "pipe_name": format!("pipe_{}", i % 5),
            "duration": 0.001 * (i % 400) as f64,
            "read_bytes": (i * 37 % 100_000).to_string(),
            "read_rows": (i % 1000).to_string(),
            "request_id": id,
            "token_name": name,
            "status_code": if i % 50 == 0 { 429 } else { 200 },
        }));
    }
    let body =
        serde_json::to_vec(&serde_json::json!({"meta": [], "data": data, "rows": rows})).unwrap();
    (body, names, proxied)
}

/// One poll's work for `rows` new rows.
#[divan::bench(args = [10_000, 100_000], sample_count = 10)]
fn poll(bencher: divan::Bencher<'_, '_>, rows: usize) {
    let (body, names, proxied) = answer(rows);
    let now = chrono::Utc::now().timestamp();
    bencher.bench(|| {
        let mut cursor = Cursor::default();
        let fresh = cursor.admit(parse(divan::black_box(&body)).unwrap(), 120, 1_000_000);
        let batch = attribute(&fresh, &names, &proxied, "default");
        let mut store = Store::new(1_000_000);
        store.apply(&batch, now);
        store.len()
    });
}
