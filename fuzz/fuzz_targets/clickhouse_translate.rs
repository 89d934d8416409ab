//! Fuzzes the ClickHouse-to-SQLite translator (`tinybird_local::clickhouse`).
//!
//! Input: ClickHouse SQL text. `translate` must never panic or overflow its stack, whatever it
//! is given (the depth and node limits hold). What it
//! translates then runs in the `/v0/sql` sandbox as a tenant of the demo (row filter
//! `org_id = 'acme'` on every data source): the answer is a refusal or rows in which no other
//! tenant's id appears. The translator is not the security boundary, but its output must
//! never be a way around the one that is.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;
use tinybird_local::clickhouse::TranslateLimits;
use tinybird_local::data::{Database, DemoData};
use tinybird_local::query::QueryLimits;
use tinybird_local::sql::{SqlAccess, sandbox};

fn db() -> &'static Arc<Database> {
    static DB: OnceLock<Arc<Database>> = OnceLock::new();
    DB.get_or_init(|| {
        Database::generate(&DemoData {
            orders: 200,
            ..DemoData::default()
        })
        .expect("demo data")
    })
}

fn acme() -> SqlAccess {
    SqlAccess::Filtered(
        ["orders", "products", "orgs"]
            .into_iter()
            .map(|t| (t.to_owned(), Some("org_id = 'acme'".to_owned())))
            .collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let db = db();
    // The fuzzer's thread has an 8 MiB stack, less than a translation thread's (see
    // `local::offload`): a shallower depth limit keeps sanitized frames inside it.
    let translate_limits = TranslateLimits {
        max_ast_depth: 200,
        ..TranslateLimits::default()
    };
    let Ok(translated) = db.translator.query_within(sql, &translate_limits) else {
        return;
    };
    let Some(conn) = db.try_acquire() else {
        return;
    };
    let limits = QueryLimits {
        timeout: std::time::Duration::from_millis(200),
        max_rows: 2_000,
        ..QueryLimits::default()
    };
    let deadline = std::time::Instant::now() + limits.timeout;
    // A tenant name the query writes itself (`SELECT 'globex'`) comes back as written: that
    // is the query's own text, not another tenant's row.
    let lower = sql.to_ascii_lowercase();
    let names_another_tenant = lower.contains("globex") || lower.contains("initech");
    let columns = translated.columns.as_deref();
    if let Ok(out) = sandbox::run_typed(&conn, &translated.sql, columns, &acme(), limits, deadline) {
        for row in &out.rows {
            for value in row {
                if let Value::Text(text) = value
                    && !names_another_tenant
                {
                    assert!(
                        !text.contains("globex") && !text.contains("initech"),
                        "another tenant's row escaped the sandbox: {text:?}\nquery: {sql}\nsqlite: {}",
                        translated.sql
                    );
                }
            }
        }
    }
});
