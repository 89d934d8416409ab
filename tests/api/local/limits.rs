//! `limits.rps`: one bucket per workspace, pipe and JWT `name` (shared by every token with
//! that name), one second with a burst of `rps`, with the 429 headers servers read;
//! `rps <= 0` is no limit. Also the per-query time and row budget.

use std::time::{Duration, Instant};

use tinybird_bff::tinybird::claims::{Claims, Scope};
use tinybird_local::LocalConfig;
use tinybird_local::query::QueryLimits;

use super::{Reply, get};
use crate::helpers::{
    WORKSPACE, admin_key, limits, now, sign_claims, spawn_local, spawn_local_with,
};

const PIPE: &str = "/v0/pipes/top_products.json?limit=1";

/// A token named `name` with `rps`; `variant` makes otherwise-identical tokens differ.
fn token(name: &str, rps: i64, variant: i64) -> String {
    let mut fixed = serde_json::Map::new();
    fixed.insert("org_id".into(), "acme".into());
    sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: name.into(),
        exp: now() + 600 + variant,
        iat: Some(now()),
        scopes: vec![Scope::pipe("top_products", fixed)],
        limits: limits(rps),
    })
}

fn header_u64(r: &Reply, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// Runs `attempt` until it fits well inside one refill interval (at 2 rps a request comes back
/// every 500 ms, which would legitimately let a later call through on a slow machine).
async fn within_one_window<F, Fut>(mut attempt: F)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = bool>,
{
    for round in 0..5 {
        let started = Instant::now();
        let checked = attempt(round).await;
        if started.elapsed() < Duration::from_millis(400) {
            assert!(
                checked,
                "round {round} ran within one window but its checks did not hold"
            );
            return;
        }
    }
    panic!("could not fit the requests in one second: machine too slow for this test");
}

#[tokio::test]
async fn tokens_sharing_a_name_share_a_bucket_and_the_429_says_when_to_retry() {
    let server = spawn_local().await;
    within_one_window(|round| {
        let url = server.url.clone();
        async move {
            let name = format!("tenant-a-{round}");
            let (first, second) = (token(&name, 2, 1), token(&name, 2, 2));
            assert_ne!(first, second);
            let a = get(&url, PIPE, Some(&first)).await;
            let b = get(&url, PIPE, Some(&second)).await;
            let c = get(&url, PIPE, Some(&first)).await;
            let other_name =
                get(&url, PIPE, Some(&token(&format!("tenant-b-{round}"), 2, 1))).await;
            if a.status != 200 || b.status != 200 || other_name.status != 200 || c.status != 429 {
                return false;
            }
            assert_eq!(header_u64(&a, "x-ratelimit-limit"), 2);
            assert_eq!(header_u64(&a, "x-ratelimit-remaining"), 1);
            assert_eq!(
                header_u64(&b, "x-ratelimit-remaining"),
                0,
                "the second token drew from the same bucket"
            );
            c.assert_error(429, &["too many requests", "2"]);
            let retry_after = header_u64(&c, "retry-after");
            assert_eq!(
                retry_after, 1,
                "at 2 rps a request comes back within half a second"
            );
            assert_eq!(header_u64(&c, "x-ratelimit-limit"), 2);
            assert_eq!(header_u64(&c, "x-ratelimit-remaining"), 0);
            assert!(header_u64(&c, "x-ratelimit-reset") <= 1);
            true
        }
    })
    .await;
}

#[tokio::test]
async fn each_pipe_has_its_own_bucket_for_a_name() {
    let server = spawn_local().await;
    within_one_window(|round| {
        let url = server.url.clone();
        async move {
            let mut fixed = serde_json::Map::new();
            fixed.insert("org_id".into(), "acme".into());
            let both = sign_claims(Claims {
                workspace_id: WORKSPACE.into(),
                name: format!("per-pipe-{round}"),
                exp: now() + 600,
                iat: None,
                scopes: vec![
                    Scope::pipe("top_products", fixed.clone()),
                    Scope::pipe("recent_orders", fixed),
                ],
                limits: limits(1),
            });
            let first = get(&url, PIPE, Some(&both)).await;
            let spent = get(&url, PIPE, Some(&both)).await;
            let other = get(&url, "/v0/pipes/recent_orders.json?limit=1", Some(&both)).await;
            if first.status != 200 || spent.status != 429 {
                return false;
            }
            assert_eq!(
                other.status, 200,
                "recent_orders has its own bucket: {}",
                other.body
            );
            assert_eq!(header_u64(&other, "x-ratelimit-remaining"), 0);
            true
        }
    })
    .await;
}

#[tokio::test]
async fn after_retry_after_the_bucket_is_full_again() {
    let server = spawn_local().await;
    let t = token("patient", 1, 0);
    let mut refused = None;
    for _ in 0..3 {
        let r = get(&server.url, PIPE, Some(&t)).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a 1 rps token is refused within three quick calls");
    tokio::time::sleep(
        Duration::from_secs(header_u64(&refused, "retry-after")) + Duration::from_millis(50),
    )
    .await;
    assert_eq!(get(&server.url, PIPE, Some(&t)).await.status, 200);
}

#[tokio::test]
async fn zero_or_negative_rps_means_no_limit() {
    let server = spawn_local().await;
    for rps in [0, -1] {
        let t = token(&format!("unlimited{rps}"), rps, 0);
        for i in 0..15 {
            let r = get(&server.url, PIPE, Some(&t)).await;
            assert_eq!(r.status, 200, "rps {rps}, call {i}: {}", r.body);
            assert!(r.header("x-ratelimit-limit").is_none());
        }
    }
}

#[tokio::test]
async fn a_token_without_limits_is_never_throttled_by_its_name() {
    let server = spawn_local().await;
    within_one_window(|round| {
        let url = server.url.clone();
        async move {
            let name = format!("mixed-{round}");
            let limited = token(&name, 1, 0);
            let mut fixed = serde_json::Map::new();
            fixed.insert("org_id".into(), "acme".into());
            let free = sign_claims(Claims {
                workspace_id: WORKSPACE.into(),
                name: name.clone(),
                exp: now() + 600,
                iat: None,
                scopes: vec![Scope::pipe("top_products", fixed)],
                limits: None,
            });
            if get(&url, PIPE, Some(&limited)).await.status != 200 {
                return false;
            }
            if get(&url, PIPE, Some(&limited)).await.status != 429 {
                return false;
            }
            assert_eq!(get(&url, PIPE, Some(&free)).await.status, 200);
            true
        }
    })
    .await;
}

#[tokio::test]
async fn a_query_over_its_time_budget_is_a_408_and_over_its_row_budget_a_400() {
    let slow = spawn_local_with(LocalConfig {
        query_limits: QueryLimits {
            timeout: Duration::from_nanos(1),
            ..QueryLimits::default()
        },
        ..LocalConfig::new(admin_key())
    })
    .await;
    let t = token("budget", 0, 0);
    get(&slow.url, "/v0/pipes/top_products.json?days=90", Some(&t))
        .await
        .assert_error(408, &["limit"]);
    let capped = spawn_local_with(LocalConfig {
        query_limits: QueryLimits {
            max_rows: 5,
            ..QueryLimits::default()
        },
        ..LocalConfig::new(admin_key())
    })
    .await;
    assert_eq!(
        get(&capped.url, "/v0/pipes/top_products.json?limit=5", Some(&t))
            .await
            .rows()
            .len(),
        5
    );
    get(&capped.url, "/v0/pipes/top_products.json?limit=6", Some(&t))
        .await
        .assert_error(400, &["more than 5 rows"]);
}
