//! The key store contract, run on both engines for real: an SQLite file and a PostgreSQL
//! server (a throwaway cluster, `super::pg`).

use std::sync::Arc;
use std::time::Duration;

use tinybird_bff::keys::record::{KeyRecord, KeyScopes, Period, Quota};
use tinybird_bff::keys::secret;
use tinybird_bff::keys::store::postgres::Postgres;
use tinybird_bff::keys::store::sqlite::Sqlite;
use tinybird_bff::keys::store::{KeyStore, StoreError, Used};

use super::pg::PgServer;

pub fn record(tenant: &str, name: &str, created_at: i64) -> KeyRecord {
    let made = secret::new_secret(&secret::new_id());
    KeyRecord {
        id: made.id,
        tenant: tenant.into(),
        name: name.into(),
        secret_hash: made.hash,
        previous: None,
        scopes: KeyScopes {
            pipes: vec!["top_products".into()],
            datasources: vec!["orders".into()],
        },
        attributes: [("region".to_owned(), "eu".to_owned())].into(),
        expires_at: Some(created_at + 3600),
        rps: Some(5),
        quota: Some(Quota {
            requests: 100,
            period: Period::Day,
        }),
        created_at,
        created_by: "alice".into(),
        last_used_at: None,
        revoked: None,
        rolled_at: None,
    }
}

async fn contract(store: Arc<dyn KeyStore>) {
    assert!(
        store.migrate().await.unwrap().is_empty(),
        "migrated once already"
    );
    store.ping().await.unwrap();
    let a = record("acme", "export", 1_000);
    let b = record("globex", "bi tool", 1_001);
    let c = record("acme", "dashboard", 1_002);
    store.insert(&a, 2).await.unwrap();
    store.insert(&b, 2).await.unwrap();
    store.insert(&c, 2).await.unwrap();
    assert_eq!(
        store.get(&a.id).await.unwrap().as_ref(),
        Some(&a),
        "round trip"
    );
    assert_eq!(store.get("000000000000").await.unwrap(), None);
    let acme: Vec<String> = store
        .list(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(
        acme,
        ["dashboard", "export"],
        "a tenant's keys, newest first"
    );
    assert_eq!(store.list(None).await.unwrap().len(), 3);
    let d = record("acme", "one too many", 1_003);
    match store.insert(&d, 2).await {
        Err(StoreError::TooManyKeys { tenant, max: 2 }) => assert_eq!(tenant, "acme"),
        other => panic!("expected the per-tenant limit, got {other:?}"),
    }
    let mut many = store
        .get_many(&[a.id.clone(), b.id.clone(), "000000000000".into()])
        .await
        .unwrap();
    many.sort_by_key(|k| k.created_at);
    assert_eq!(many, [a.clone(), b.clone()]);

    let revoked = store.revoke(&a.id, 2_000, "alice").await.unwrap().unwrap();
    assert_eq!(revoked.revoked, Some((2_000, "alice".into())));
    let again = store.revoke(&a.id, 3_000, "bob").await.unwrap().unwrap();
    assert_eq!(
        again.revoked,
        Some((2_000, "alice".into())),
        "the first revocation stands"
    );
    // A revoked key no longer counts against the limit.
    store.insert(&d, 2).await.unwrap();
    assert!(
        store
            .roll(&a.id, secret::new_secret(&a.id).hash, 9_000, 2_100)
            .await
            .unwrap()
            .is_none()
    );
    let new = secret::new_secret(&b.id);
    let rolled = store
        .roll(&b.id, new.hash, 5_000, 2_200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rolled.secret_hash, new.hash);
    assert_eq!(rolled.previous, Some((b.secret_hash, 5_000)));
    assert_eq!(rolled.rolled_at, Some(2_200));

    let used = |id: &str, requests, errors, at| Used {
        id: id.to_owned(),
        periods: vec!["2026-05-20".into(), "2026-05".into()],
        requests,
        errors,
        last_used_at: at,
    };
    let totals = store.record(&[used(&b.id, 3, 1, 2_500)]).await.unwrap();
    assert_eq!(totals.len(), 2);
    let totals = store
        .record(&[used(&b.id, 2, 0, 2_400), used(&c.id, 1, 1, 2_450)])
        .await
        .unwrap();
    let b_day = totals
        .iter()
        .find(|t| t.id == b.id && t.period == "2026-05-20")
        .unwrap();
    assert_eq!(
        (b_day.requests, b_day.errors),
        (5, 1),
        "instances' counts add up"
    );
    assert_eq!(
        store.get(&b.id).await.unwrap().unwrap().last_used_at,
        Some(2_500),
        "last use only moves forward"
    );
    let counts = store
        .counts(
            &[b.id.clone(), c.id.clone(), a.id.clone()],
            &["2026-05".into()],
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), 2, "keys without usage are absent: {counts:?}");
}

#[tokio::test]
async fn sqlite_keeps_keys_in_a_file_that_outlives_the_process() {
    let dir = std::env::temp_dir().join(format!("tbff-keys-{}", uuid::Uuid::new_v4()));
    let path = dir.join("nested/keys.db");
    let store = Arc::new(Sqlite::open(&path).unwrap());
    assert_eq!(store.migrate().await.unwrap(), [1]);
    contract(store).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "only its owner reads the key file: {mode:o}"
        );
    }
    // Reopened (a restart): the keys are still there, the schema is not migrated again.
    let again = Sqlite::open(&path).unwrap();
    assert!(again.migrate().await.unwrap().is_empty());
    assert_eq!(again.list(None).await.unwrap().len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_keeps_the_same_contract_and_instances_migrate_once() {
    let pg = PgServer::start();
    let url = pg.database().await;
    let a = Arc::new(Postgres::new(&url, 2, Duration::from_secs(5)).unwrap());
    let b = Arc::new(Postgres::new(&url, 2, Duration::from_secs(5)).unwrap());
    // Two instances starting together: one applies the migration, the other waits for it.
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = [ma.unwrap(), mb.unwrap()];
    applied.sort();
    assert_eq!(applied, [vec![], vec![1]]);
    contract(a).await;
}

#[tokio::test]
async fn postgres_outage_is_a_clear_error_and_the_store_reconnects() {
    let mut pg = PgServer::start();
    let url = pg.database().await;
    let store = Postgres::new(&url, 1, Duration::from_secs(2)).unwrap();
    store.migrate().await.unwrap();
    pg.stop();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("bff@"), "no URL in errors: {err}");
    pg.restart();
    store
        .ping()
        .await
        .expect("a new connection after the outage");
}
