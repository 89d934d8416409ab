//! The key service on a shared PostgreSQL, as two instances see it: revocation reaches the
//! other instance within the delay, usage and quotas add up across instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tinybird_bff::audit::{Audit, AuditOutput};
use tinybird_bff::grants::Grants;
use tinybird_bff::keys::record::{KeyScopes, Period, Quota};
use tinybird_bff::keys::{Actor, Keys, KeysSettings, NewKey, StoreSettings};
use tinybird_bff::metrics::Metrics;

use super::pg::PgServer;

pub fn demo_grants() -> Arc<Grants> {
    let options = tinybird_bff::demo::DemoOptions::default();
    tinybird_bff::demo::settings(&options).unwrap().grants
}

/// A key service (an "instance") on the PostgreSQL database at `url`.
pub async fn instance(url: &str) -> Arc<Keys> {
    let mut settings = KeysSettings::in_memory(&["viewer"]);
    settings.store = StoreSettings::Postgres {
        url: url.to_owned().into(),
        pool: 2,
    };
    let metrics = Metrics::new();
    let audit = Arc::new(Audit::open(&AuditOutput::Off, metrics.clone()).unwrap());
    let keys = Keys::open(settings, audit, metrics).await.unwrap();
    keys.start();
    keys
}

pub fn export_key(tenant: &str) -> NewKey {
    NewKey {
        name: "nightly export".into(),
        tenant: Some(tenant.into()),
        scopes: KeyScopes {
            pipes: vec!["top_products".into()],
            datasources: vec![],
        },
        attributes: Some([("region".to_owned(), "eu".to_owned())].into()),
        ..NewKey::default()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_on_the_other_within_a_second() {
    let pg = PgServer::start();
    let url = pg.database().await;
    let (a, b) = (instance(&url).await, instance(&url).await);
    let grants = demo_grants();
    let issued = a
        .create(&grants, Actor::Operator("ops"), export_key("acme"), now())
        .await
        .unwrap();
    // B has it cached and trusted.
    let key = b.authenticate(&issued.secret, None, now()).await.unwrap();
    assert_eq!(key.tenant, "acme");
    a.revoke(Actor::Operator("ops"), &key.id, now())
        .await
        .unwrap();
    let revoked = Instant::now();
    // B asks every 10 ms; what counts is when an accepted ask began (a lookup's own time in
    // the database, long on a loaded machine, is the store's, not the delay the cache adds).
    let mut last_accepted = None;
    let why = loop {
        let asked = revoked.elapsed();
        match b.authenticate(&issued.secret, None, now()).await {
            Ok(_) if asked < Duration::from_secs(3) => {
                last_accepted = Some(asked);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => panic!("still accepted 3 s after the revocation"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(why.contains("revoked"), "{why}");
    // None: refused at the first ask (a refresh read the revocation first), as good.
    if let Some(last_accepted) = last_accepted {
        assert!(
            last_accepted <= Duration::from_millis(1_005),
            "still accepted when asked {last_accepted:?} after the revocation: \
             keys.revocation_delay is 1 s"
        );
    }
}

#[tokio::test]
async fn a_quota_counts_every_instance_and_usage_is_written_in_batches() {
    let pg = PgServer::start();
    let url = pg.database().await;
    let (a, b) = (instance(&url).await, instance(&url).await);
    let mut new = export_key("acme");
    new.quota = Some(Quota {
        requests: 6,
        period: Period::Day,
    });
    let issued = a
        .create(&demo_grants(), Actor::Operator("ops"), new, now())
        .await
        .unwrap();
    let key = a.authenticate(&issued.secret, None, now()).await.unwrap();
    for _ in 0..3 {
        a.admit(&key, now()).await.unwrap();
        b.admit(&key, now()).await.unwrap();
    }
    // Each instance knows its own count at once, the other's after its next flush (1 s).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for instance in [&a, &b] {
        let err = instance.admit(&key, now()).await.unwrap_err();
        match err {
            tinybird_bff::error::AppError::TooManyRequests {
                retry_after,
                message,
            } => {
                assert!(message.contains("6 requests per day"), "{message}");
                assert!((1..=86_400).contains(&retry_after), "{retry_after}");
            }
            other => panic!("expected a 429, got {other:?}"),
        }
    }
    let listed = a
        .list(&Actor::Operator("ops"), Some("acme"), now())
        .await
        .unwrap();
    let (view, usage) = &listed[0];
    assert_eq!(
        usage.today_requests, 6,
        "both instances' requests: {usage:?}"
    );
    assert!(
        view.last_used_at.is_some_and(|t| now() - t < 10),
        "{view:?}"
    );
}

/// One instance on an in-memory SQLite store.
async fn embedded() -> Arc<Keys> {
    let metrics = Metrics::new();
    let audit = Arc::new(Audit::open(&AuditOutput::Off, metrics.clone()).unwrap());
    Keys::open(KeysSettings::in_memory(&["viewer"]), audit, metrics)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_a_roll_both_secrets_work_until_the_grace_ends() {
    let keys = embedded().await;
    let t0 = now();
    let old = keys
        .create(
            &demo_grants(),
            Actor::Operator("ops"),
            export_key("acme"),
            t0,
        )
        .await
        .unwrap();
    let new = keys
        .roll(
            Actor::Operator("ops"),
            &old.view.id,
            Duration::from_secs(60),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(new.view.id, old.view.id, "the same key, a new secret");
    for at in [t0, t0 + 59] {
        keys.authenticate(&old.secret, None, at).await.unwrap();
        keys.authenticate(&new.secret, None, at).await.unwrap();
    }
    let err = keys
        .authenticate(&old.secret, None, t0 + 60)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("replaced by a roll"), "{err}");
    keys.authenticate(&new.secret, None, t0 + 60).await.unwrap();
    // With no grace the old secret stops at once.
    let newer = keys
        .roll(
            Actor::Operator("ops"),
            &old.view.id,
            Duration::ZERO,
            t0 + 61,
        )
        .await
        .unwrap();
    assert!(keys.authenticate(&new.secret, None, t0 + 61).await.is_err());
    keys.authenticate(&newer.secret, None, t0 + 61)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_stops_at_its_expiry_and_unknown_keys_say_so() {
    let keys = embedded().await;
    let t0 = now();
    let mut new = export_key("acme");
    new.expires_at = Some(t0 + 30);
    let issued = keys
        .create(&demo_grants(), Actor::Operator("ops"), new, t0)
        .await
        .unwrap();
    keys.authenticate(&issued.secret, None, t0 + 29)
        .await
        .unwrap();
    let err = keys
        .authenticate(&issued.secret, None, t0 + 30)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has expired"), "{err}");
    assert!(
        !err.to_string().contains("acme"),
        "never whose it was: {err}"
    );
    // A past expiry cannot be given.
    let mut past = export_key("acme");
    past.expires_at = Some(t0 - 1);
    assert!(
        keys.create(&demo_grants(), Actor::Operator("ops"), past, t0)
            .await
            .is_err()
    );
    // Another secret for the same id, and a value that is no key at all.
    let forged = format!("{}{}", &issued.secret[..22], "A".repeat(43));
    for bad in [forged.as_str(), "tbk_live_nothing"] {
        let err = keys.authenticate(bad, None, t0).await.unwrap_err();
        assert!(err.to_string().contains("unknown"), "{err}");
    }
}
