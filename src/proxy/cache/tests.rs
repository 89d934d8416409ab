//! The response cache: single-flight, expiry, what is kept and what is not.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

fn key(params: &str, who: &str) -> CacheKey {
    CacheKey::new("top_products", "json", &Params::parse(params).unwrap(), who)
}

fn fetcher(
    calls: Arc<AtomicU32>,
    status: u16,
    body: &'static str,
) -> impl Fn() -> BoxFuture<'static, Response> {
    move || {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r
        }
        .boxed()
    }
}

async fn text(r: Response) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn keys_ignore_parameter_order_but_not_values_or_identity() {
    assert_eq!(key("a=1&b=2", "alice@acme"), key("b=2&a=1", "alice@acme"));
    assert_ne!(key("a=1&a=2", "x"), key("a=2&a=1", "x"));
    assert_ne!(key("a=1", "alice@acme"), key("a=1", "bob@globex"));
    assert_ne!(key("org_id=acme", "x"), key("org_id=globex", "x"));
}

#[tokio::test]
async fn concurrent_identical_requests_make_one_call_and_later_ones_hit() {
    let cache = ResponseCache::new(10, 1024);
    let calls = Arc::new(AtomicU32::new(0));
    let fetch = fetcher(Arc::clone(&calls), 200, "rows");
    let results = futures_util::future::join_all(
        (0..10).map(|_| cache.get_or_fetch(key("a=1", "u"), Duration::from_secs(60), &fetch)),
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let statuses: Vec<_> = results.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1
    );
    for (r, _) in results {
        assert_eq!(text(r).await, "rows");
    }
    let (r, status) = cache
        .get_or_fetch(key("a=1", "u"), Duration::from_secs(60), &fetch)
        .await;
    assert_eq!((status, text(r).await.as_str()), (CacheStatus::Hit, "rows"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn entries_expire_and_errors_are_shared_but_never_kept() {
    let cache = ResponseCache::new(10, 1024);
    let calls = Arc::new(AtomicU32::new(0));
    let ok = fetcher(Arc::clone(&calls), 200, "rows");
    let ttl = Duration::from_millis(100);
    cache.get_or_fetch(key("a=1", "u"), ttl, &ok).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, status) = cache.get_or_fetch(key("a=1", "u"), ttl, &ok).await;
    assert_eq!(status, CacheStatus::Miss, "expired");
    let failing = fetcher(Arc::clone(&calls), 429, "slow down");
    let (a, b) = tokio::join!(
        cache.get_or_fetch(key("b=1", "u"), ttl, &failing),
        cache.get_or_fetch(key("b=1", "u"), ttl, &failing)
    );
    assert_eq!(
        (a.0.status(), b.0.status()),
        (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two 200 calls, one shared 429 call"
    );
    let (_, status) = cache.get_or_fetch(key("b=1", "u"), ttl, &failing).await;
    assert_eq!(status, CacheStatus::Miss, "the 429 was not kept");
}

#[tokio::test]
async fn answers_too_big_to_buffer_are_streamed_whole_and_not_kept() {
    let cache = ResponseCache::new(10, 4);
    let calls = Arc::new(AtomicU32::new(0));
    let big = fetcher(Arc::clone(&calls), 200, "0123456789");
    let ((a, _), (b, _)) = tokio::join!(
        cache.get_or_fetch(key("a=1", "u"), Duration::from_secs(60), &big),
        cache.get_or_fetch(key("a=1", "u"), Duration::from_secs(60), &big)
    );
    assert_eq!(text(a).await, "0123456789");
    assert_eq!(text(b).await, "0123456789");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the waiter made its own call"
    );
    assert!(cache.is_empty());
}

#[tokio::test]
async fn the_cache_stays_bounded() {
    let cache = ResponseCache::new(2, 1024);
    let calls = Arc::new(AtomicU32::new(0));
    let ok = fetcher(Arc::clone(&calls), 200, "rows");
    for i in 0..5 {
        cache
            .get_or_fetch(key(&format!("i={i}"), "u"), Duration::from_secs(60), &ok)
            .await;
    }
    assert_eq!(cache.len(), 2);
}
