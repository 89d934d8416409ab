//! The Events API (`POST /v0/events?name=<ds>`): NDJSON rows appended to a project's data
//! source through its JSONPaths and DEFAULTs, Tinybird's answers (200 with `wait=true`, 202
//! without, `successful_rows`/`quarantined_rows`), who may append, the body limit, and reads
//! that see the rows right after.

use std::path::PathBuf;

use serde_json::json;
use tinybird_local::LocalConfig;
use tinybird_local::auth::{StaticScope, StaticToken};

use super::{Reply, get, send};
use crate::helpers::{admin_key, admin_key_text, client, jwt_for, spawn_local_with};

/// A project folder under the system temp dir, removed when dropped.
struct Project(PathBuf);

impl Project {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-events-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("datasources")).unwrap();
        std::fs::write(
            dir.join("datasources/hits.datasource"),
            "SCHEMA >\n    `ts` DateTime `json:$.ts`,\n    `tenant` String `json:$.who.tenant`,\n    \
             `path` String `json:$.payload.path` DEFAULT '/home',\n    `n` UInt32 `json:$.n`\n\n\
             ENGINE \"MergeTree\"\nENGINE_SORTING_KEY \"tenant, ts\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("datasources/other.datasource"),
            "SCHEMA >\n    `x` String\n",
        )
        .unwrap();
        Self(dir)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn post_events(base: &str, query: &str, token: Option<&str>, body: &str) -> Reply {
    let mut request = client()
        .post(format!("{base}/v0/events?{query}"))
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

const ROWS: &str = "{\"ts\":\"2026-11-01 10:00:00\",\"who\":{\"tenant\":\"acme\"},\"payload\":{\"path\":\"/docs\"},\"n\":2}\n\
{\"ts\":\"2026-11-01 11:00:00\",\"who\":{\"tenant\":\"globex\"},\"n\":\"3\"}\n\
{\"ts\":\"yesterday\",\"who\":{\"tenant\":\"acme\"}}\n";

#[tokio::test]
async fn events_land_through_jsonpaths_and_defaults_and_are_read_right_after() {
    let project = Project::new();
    let appender = "p.appender-token";
    let server = spawn_local_with(LocalConfig {
        project: Some(project.0.clone()),
        static_tokens: vec![StaticToken {
            name: "appender".into(),
            token: appender.to_owned().into(),
            scopes: vec![StaticScope::parse("DATASOURCES:APPEND:hits").unwrap()],
        }],
        ..LocalConfig::new(admin_key())
    })
    .await;
    let admin = admin_key_text();

    let waited = post_events(&server.url, "name=hits&wait=true", Some(&admin), ROWS).await;
    assert_eq!(waited.status, 200, "{}", waited.body);
    assert_eq!(
        waited.json(),
        json!({"successful_rows": 2, "quarantined_rows": 1})
    );
    let queued = post_events(&server.url, "name=hits", Some(appender), ROWS).await;
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(
        queued.json(),
        json!({"successful_rows": 2, "quarantined_rows": 1})
    );

    let q =
        "SELECT tenant, path, n, count() AS c FROM hits GROUP BY tenant, path, n ORDER BY tenant";
    let read = get(
        &server.url,
        &format!("/v0/sql?q={}", urlencode(q)),
        Some(&admin),
    )
    .await;
    assert_eq!(
        read.rows(),
        [
            json!({"tenant": "acme", "path": "/docs", "n": 2, "c": "2"}),
            json!({"tenant": "globex", "path": "/home", "n": 3, "c": "2"}),
        ]
    );
}

#[tokio::test]
async fn only_the_admin_or_an_append_scope_may_append_and_bad_requests_say_why() {
    let project = Project::new();
    let server = spawn_local_with(LocalConfig {
        project: Some(project.0.clone()),
        max_events_body: 1024,
        static_tokens: vec![StaticToken {
            name: "reader".into(),
            token: "p.reader-token".to_owned().into(),
            scopes: vec![
                StaticScope::parse("DATASOURCES:READ:hits").unwrap(),
                StaticScope::parse("DATASOURCES:APPEND:other").unwrap(),
            ],
        }],
        ..LocalConfig::new(admin_key())
    })
    .await;
    let admin = admin_key_text();
    let jwt = jwt_for("tenant", &["top_products"], Some("acme"));
    for token in [Some("p.reader-token"), Some(jwt.as_str())] {
        post_events(&server.url, "name=hits", token, ROWS)
            .await
            .assert_error(403, &["DATASOURCES:APPEND", "hits"]);
    }
    post_events(&server.url, "name=hits", None, ROWS)
        .await
        .assert_error(403, &["invalid authentication token"]);
    post_events(&server.url, "wait=true", Some(&admin), ROWS)
        .await
        .assert_error(400, &["name"]);
    post_events(&server.url, "name=nope", Some(&admin), ROWS)
        .await
        .assert_error(404, &["nope"]);
    let big = ROWS.repeat(20);
    assert!(big.len() > 1024);
    post_events(&server.url, "name=hits", Some(&admin), &big)
        .await
        .assert_error(413, &["--max-events-body"]);
    get(&server.url, "/v0/events?name=hits", Some(&admin))
        .await
        .assert_error(405, &["POST"]);
    let ok = post_events(&server.url, "name=hits&wait=true", Some(&admin), ROWS).await;
    assert_eq!(
        ok.status, 200,
        "the limit counts bytes, not rows: {}",
        ok.body
    );
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Writes `files` (path, contents) into a fresh project folder.
fn project_with(files: &[(&str, &str)]) -> Project {
    let dir = std::env::temp_dir().join(format!("tbff-mv-{}", uuid::Uuid::new_v4()));
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    Project(dir)
}

#[tokio::test]
async fn materialized_views_and_merging_engines_follow_every_append() {
    let project = project_with(&[
        (
            "datasources/raw.datasource",
            "SCHEMA >\n    `k` String,\n    `n` UInt32,\n    `ts` DateTime\n",
        ),
        (
            "datasources/latest.datasource",
            "SCHEMA >\n    `k` String,\n    `n` UInt32,\n    `ts` DateTime\n\n\
             ENGINE \"ReplacingMergeTree\"\nENGINE_SORTING_KEY \"k\"\nENGINE_VER \"ts\"\n",
        ),
        (
            "datasources/totals.datasource",
            "SCHEMA >\n    `k` String,\n    `n` UInt64,\n    `seen` SimpleAggregateFunction(max, DateTime)\n\n\
             ENGINE \"AggregatingMergeTree\"\nENGINE_SORTING_KEY \"k\"\n",
        ),
        (
            "materializations/to_latest.pipe",
            "NODE m\nSQL >\n    SELECT k, n, ts FROM raw\nTYPE materialized\nDATASOURCE latest\n",
        ),
        (
            "materializations/to_totals.pipe",
            "NODE m\nSQL >\n    SELECT k, maxSimpleState(ts) AS seen FROM raw GROUP BY k\n\
             TYPE materialized\nDATASOURCE totals\n",
        ),
        (
            "fixtures/raw.ndjson",
            "{\"k\":\"a\",\"n\":1,\"ts\":\"2026-11-01 10:00:00\"}\n{\"k\":\"a\",\"n\":2,\"ts\":\"2026-11-01 09:00:00\"}\n",
        ),
    ]);
    let server = spawn_local_with(LocalConfig {
        project: Some(project.0.clone()),
        ..LocalConfig::new(admin_key())
    })
    .await;
    let admin = admin_key_text();
    let rows = "{\"k\":\"a\",\"n\":5,\"ts\":\"2026-11-02 10:00:00\"}\n{\"k\":\"b\",\"n\":7,\"ts\":\"2026-11-01 08:00:00\"}\n";
    let appended = post_events(&server.url, "name=raw&wait=true", Some(&admin), rows).await;
    assert_eq!(appended.status, 200, "{}", appended.body);
    let sql = |q: &str| format!("/v0/sql?q={}", urlencode(q));
    let latest = get(
        &server.url,
        &sql("SELECT k, n, ts FROM latest FINAL ORDER BY k"),
        Some(&admin),
    )
    .await;
    assert_eq!(
        latest.rows(),
        [
            json!({"k": "a", "n": 5, "ts": "2026-11-02 10:00:00"}),
            json!({"k": "b", "n": 7, "ts": "2026-11-01 08:00:00"}),
        ],
        "the highest ts per key, from the fixture and the append together"
    );
    // Merged at rest: a plain read already has one row per key (ClickHouse after its merges).
    let totals = get(
        &server.url,
        &sql("SELECT k, seen FROM totals ORDER BY k"),
        Some(&admin),
    )
    .await;
    assert_eq!(
        totals.rows(),
        [
            json!({"k": "a", "seen": "2026-11-02 10:00:00"}),
            json!({"k": "b", "seen": "2026-11-01 08:00:00"}),
        ]
    );
    get(
        &server.url,
        &sql("SELECT count() FROM raw FINAL"),
        Some(&admin),
    )
    .await
    .assert_error(400, &["doesn't support FINAL"]);
}
