//! Password guessing against the throttles: a known password does not reset a client's
//! count, parallel guesses through two instances on one Redis cannot all pass the check
//! before any is counted, and oversized fields are refused before anything keys on them.

use serde_json::json;

use super::{app, reply};
use crate::helpers::client;
use crate::scale::support::{Instance, RedisServer, base_settings, with_redis};

#[tokio::test]
async fn a_right_password_between_guesses_never_resets_the_clients_count() {
    let app = app().await;
    // 19 wrong passwords over 19 accounts (each under its own limit of 5), one right login,
    // again and again: the client's limit of 20 must bite in the second round.
    let mut statuses = Vec::new();
    for round in 0..3 {
        for i in 0..19 {
            let user = format!("guess{round}-{i}");
            statuses.push(app.login(&user, "wrong").await.status().as_u16());
        }
        statuses.push(app.login("alice", "alice-demo").await.status().as_u16());
    }
    let first_refusal = statuses.iter().position(|&s| s == 429);
    assert_eq!(
        first_refusal,
        Some(21),
        "19 failures + 1 success, then the 20th failure locks the client: {statuses:?}"
    );
    assert_eq!(
        *statuses.last().unwrap(),
        429,
        "alice too, from this client"
    );
    app.stop().await;
}

#[tokio::test]
async fn parallel_guesses_on_two_instances_get_at_most_max_failures_checks() {
    let redis = RedisServer::start().await;
    let settings = with_redis(base_settings(), &redis);
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    // 40 guesses at once, half on each instance, for one account (limit 5 per window).
    let guesses = (0..40).map(|i| {
        let instance = if i % 2 == 0 { &a } else { &b };
        let c = client();
        async move { instance.login(&c, "carol", "wrong").await }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(
        (checked, refused),
        (5, 35),
        "only max_failures guesses reach the password check: {statuses:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn oversized_usernames_and_passwords_are_refused_before_they_are_keyed_on() {
    let app = app().await;
    let login = |username: String, password: String| {
        let url = format!("{}api/login", app.url);
        async move {
            reply(
                client()
                    .post(url)
                    .header("x-bff-csrf", "1")
                    .json(&json!({"username": username, "password": password}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let long_name = login("u".repeat(257), "pw".into()).await;
    assert_eq!(long_name.status, 400, "{}", long_name.body);
    assert!(
        long_name.body.contains("max_username_bytes"),
        "{}",
        long_name.body
    );
    let long_password = login("alice".into(), "p".repeat(1025)).await;
    assert_eq!(long_password.status, 400, "{}", long_password.body);
    assert!(
        long_password.body.contains("max_password_bytes"),
        "{}",
        long_password.body
    );
    // A 2 MB username is not even read whole.
    let huge = login("u".repeat(2 * 1024 * 1024), "pw".into()).await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    huge.assert_json_error("a huge login body");
    // None of them counted as a failure: alice still logs in from this client after 30 more.
    for _ in 0..30 {
        let _ = login("u".repeat(300), "pw".into()).await;
    }
    assert_eq!(login("alice".into(), "alice-demo".into()).await.status, 200);
    // At the caps exactly, a login is checked as usual.
    assert_eq!(login("u".repeat(256), "p".repeat(1024)).await.status, 401);
    app.stop().await;
}
