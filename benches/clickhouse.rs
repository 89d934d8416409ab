//! What the ClickHouse translation costs, next to what the queries cost to run
//! (`cargo bench --bench clickhouse`; numbers recorded in docs/benchmarks.md).
//!
//! - `translate`: parsing and translating one query, uncached (what a new SQL text costs);
//! - `translate_cached`: the same through the per-text cache (what a repeated pipe costs);
//! - `run`: running the translated query on the demo data (40,000 orders);
//! - `pipe_before` / `pipe_after`: one top_products call in-process (render, translate,
//!   run), with the demo's previous SQLite pipe and with today's two-node ClickHouse pipe.
//!
//! No assertions: the differential tests check the answers.

use std::sync::{Arc, OnceLock};

use tinybird_bff::tinybird::params::Params;
use tinybird_local::clickhouse::translate;
use tinybird_local::data::{Database, DemoData};
use tinybird_local::pipes::PipeSet;
use tinybird_local::query::{self, QueryLimits};
use tinybird_local::template::{PipeTemplate, RenderedSql};

fn main() {
    divan::main();
}

const QUERIES: &[(&str, &str)] = &[
    ("count", "SELECT count() FROM orders WHERE org_id = 'acme'"),
    (
        "group_by_day",
        "SELECT toStartOfDay(ts) AS d, countIf(amount > 100) AS big, round(sum(amount), 2) AS revenue FROM orders WHERE org_id = 'acme' GROUP BY d ORDER BY d",
    ),
    (
        "join_top",
        "SELECT p.product_name, sum(o.quantity) AS units FROM orders AS o JOIN products AS p ON p.org_id = o.org_id AND p.product_id = o.product_id WHERE o.org_id = 'globex' AND o.day > today() - 30 GROUP BY p.product_name ORDER BY units DESC LIMIT 5",
    ),
    (
        "limit_by",
        "SELECT org_id, customer, sum(amount) AS s FROM orders GROUP BY org_id, customer ORDER BY s DESC LIMIT 2 BY org_id",
    ),
    (
        "quantiles",
        "SELECT product_id, quantile(0.9)(amount) AS p90, uniq(customer) AS u FROM orders WHERE org_id = 'initech' GROUP BY product_id ORDER BY product_id",
    ),
];

fn db() -> &'static Arc<Database> {
    static DB: OnceLock<Arc<Database>> = OnceLock::new();
    DB.get_or_init(|| Database::generate(&DemoData::default()).unwrap())
}

fn sql_of(name: &str) -> &'static str {
    QUERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, q)| *q)
        .unwrap()
}

/// Uncached translation of each query.
#[divan::bench(args = ["count", "group_by_day", "join_top", "limit_by", "quantiles"])]
fn translate_uncached(bencher: divan::Bencher<'_, '_>, name: &str) {
    let catalog = db().translator.catalog().clone();
    let sql = sql_of(name);
    bencher.bench(|| translate(divan::black_box(sql), &catalog).unwrap());
}

/// A cache hit: what every repeated pipe or query pays.
#[divan::bench(args = ["count", "join_top"])]
fn translate_cached(bencher: divan::Bencher<'_, '_>, name: &str) {
    let translator = &db().translator;
    let sql = sql_of(name);
    translator.query(sql).unwrap();
    bencher.bench(|| translator.query(divan::black_box(sql)).unwrap());
}

/// Running the translated query on the demo data.
#[divan::bench(args = ["count", "group_by_day", "join_top", "limit_by", "quantiles"])]
fn run(bencher: divan::Bencher<'_, '_>, name: &str) {
    let db = db();
    let translated = db.translator.query(sql_of(name)).unwrap();
    let conn = db.try_acquire().unwrap();
    let rendered = RenderedSql {
        sql: translated.sql.clone(),
        binds: Vec::new(),
    };
    let columns = translated.columns.as_deref();
    bencher.bench_local(|| {
        query::run_typed(&conn, &rendered, columns, QueryLimits::default()).unwrap()
    });
}

/// The demo's top_products before this change: one SQLite node, rendered and run as is.
const TOP_PRODUCTS_SQLITE: &str = "%
SELECT p.product_id, p.product_name, sum(o.quantity) AS units, round(sum(o.amount), 2) AS revenue, o.org_id
FROM orders AS o
JOIN products AS p ON p.org_id = o.org_id AND p.product_id = o.product_id
WHERE o.org_id = {{ String(org_id) }}
  AND julianday(o.day) > julianday((SELECT max(day) FROM orders)) - {{ Int32(days, 30) }}
GROUP BY p.product_id, p.product_name, o.org_id
ORDER BY revenue DESC
LIMIT {{ Int32(limit, 10) }}";

#[divan::bench]
fn pipe_before(bencher: divan::Bencher<'_, '_>) {
    let db = db();
    let template = PipeTemplate::compile(TOP_PRODUCTS_SQLITE).unwrap();
    let params = Params::parse("org_id=acme").unwrap();
    let conn = db.try_acquire().unwrap();
    bencher.bench_local(|| {
        let sql = template.render(&params).unwrap();
        query::run(&conn, &sql, QueryLimits::default()).unwrap()
    });
}

#[divan::bench]
fn pipe_after(bencher: divan::Bencher<'_, '_>) {
    let db = db();
    let source = include_str!("../demo/endpoints/top_products.pipe");
    let (pipes, _) = PipeSet::from_sources(&[("top_products.pipe", source)]);
    let pipe = pipes.get("top_products").unwrap();
    let params = Params::parse("org_id=acme").unwrap();
    let conn = db.try_acquire().unwrap();
    bencher.bench_local(|| {
        let prepared = pipe.prepare(&params, &db.translator).unwrap();
        query::run_prepared(&conn, &prepared, QueryLimits::default()).unwrap()
    });
}
