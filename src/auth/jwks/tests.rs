//! JWKS cache behaviour against a real HTTP server on port 0, plus fixtures other auth tests
//! reuse (two Ed25519 test keys and a JWKS server that counts its fetches).

use std::sync::Mutex;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use super::*;

/// Test-only Ed25519 keys: PKCS#8 DER in base64 (from `openssl genpkey -algorithm ed25519`),
/// and the public `x` of each.
pub(crate) const KEY_A: &str = "MC4CAQAwBQYDK2VwBCIEIJnAZYfSMgGSSFjcfQ7f/nkW/8D+zErirdu3xDPxINGH";
pub(crate) const KEY_A_X: &str = "N19Z6pHAAeXFv4TjQYFjDBlVuxTN64tqoVnUFWqb6M4";
pub(crate) const KEY_B: &str = "MC4CAQAwBQYDK2VwBCIEIGHNuaCXjRZvBjlvTie4JqDmPk426pZCeZSvzdOWmIl9";
pub(crate) const KEY_B_X: &str = "QZhPF8pl-9BSD2p1aFZFy9k2viw3S81mRT3gALDAReU";

/// The public JWK of a test key.
pub(crate) fn jwk(kid: &str, x: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"})
}

/// Signs `claims` with a test key (EdDSA) under `kid`.
pub(crate) fn sign(key: &str, kid: &str, claims: &Value) -> String {
    use base64::Engine;
    let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let der = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// What the fake provider serves and how often it was asked.
#[derive(Default)]
pub(crate) struct Served {
    pub jwks: Value,
    pub fetches: u64,
    pub failing: bool,
}

/// A JWKS (and discovery) server on port 0; returns its base URL and shared state.
pub(crate) async fn serve_jwks(jwks: Value) -> (Url, Arc<Mutex<Served>>) {
    let served = Arc::new(Mutex::new(Served {
        jwks,
        ..Served::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let state = Arc::clone(&served);
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let state = Arc::clone(&state);
            async move {
                let mut s = state.lock().unwrap();
                s.fetches += 1;
                if s.failing {
                    Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                } else {
                    Ok(axum::Json(s.jwks.clone()))
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, served)
}

fn cache(url: Url, cooldown_ms: u64) -> JwksCache {
    JwksCache::new(
        reqwest::Client::new(),
        Some(url.join("jwks").unwrap()),
        Duration::from_millis(cooldown_ms),
        Duration::from_secs(3600),
    )
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_once_per_cooldown() {
    let (url, served) = serve_jwks(json!({"keys": [jwk("a", KEY_A_X)]})).await;
    let jwks = Arc::new(cache(url, 60_000));
    assert_eq!(jwks.health().status, JwksStatus::NotLoaded);
    assert_eq!(
        jwks.keys_for(Some("a"), Algorithm::EdDSA)
            .await
            .unwrap()
            .len(),
        1
    );
    let flood = (0..50).map(|i| {
        let jwks = Arc::clone(&jwks);
        tokio::spawn(async move {
            jwks.keys_for(Some(&format!("bogus-{i}")), Algorithm::EdDSA)
                .await
        })
    });
    for task in flood {
        assert!(matches!(
            task.await.unwrap(),
            Err(JwksError::UnknownKey { .. })
        ));
    }
    assert_eq!(
        served.lock().unwrap().fetches,
        1,
        "the first fetch is within the cool-down"
    );
    assert!(
        jwks.keys_for(Some("a"), Algorithm::RS256).await.is_err(),
        "EdDSA key, RS256 token"
    );
    assert_eq!(jwks.health().status, JwksStatus::Ok);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_cooldown() {
    let (url, served) = serve_jwks(json!({"keys": [jwk("a", KEY_A_X)]})).await;
    let jwks = cache(url, 200);
    jwks.keys_for(Some("a"), Algorithm::EdDSA).await.unwrap();
    served.lock().unwrap().jwks = json!({"keys": [jwk("b", KEY_B_X)]});
    assert!(
        jwks.keys_for(Some("b"), Algorithm::EdDSA).await.is_err(),
        "within cool-down"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        jwks.keys_for(Some("b"), Algorithm::EdDSA)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(served.lock().unwrap().fetches, 2);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_keys_and_shows_in_health() {
    let (url, served) = serve_jwks(json!({"keys": [jwk("a", KEY_A_X)]})).await;
    let jwks = cache(url, 0);
    jwks.keys_for(Some("a"), Algorithm::EdDSA).await.unwrap();
    served.lock().unwrap().failing = true;
    assert!(jwks.keys_for(Some("new"), Algorithm::EdDSA).await.is_err());
    let health = jwks.health();
    assert_eq!(health.status, JwksStatus::Stale);
    assert!(health.last_error.unwrap().contains("503"));
    assert_eq!(
        jwks.keys_for(Some("a"), Algorithm::EdDSA)
            .await
            .unwrap()
            .len(),
        1,
        "old key still works"
    );
}

#[tokio::test]
async fn no_keys_at_all_reads_as_unavailable() {
    let (url, served) = serve_jwks(json!({"keys": []})).await;
    served.lock().unwrap().failing = true;
    let jwks = cache(url, 0);
    let err = jwks
        .keys_for(Some("a"), Algorithm::EdDSA)
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::Unavailable(_)), "{err}");
    assert_eq!(jwks.health().status, JwksStatus::Down);
}

#[test]
fn shared_secret_and_encryption_keys_are_never_used() {
    let parse = |v: Value| verification_key(&serde_json::from_value(v).unwrap());
    assert!(parse(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})).is_none());
    assert!(parse(json!({"kty": "OKP", "crv": "Ed25519", "x": KEY_A_X, "use": "enc"})).is_none());
    let key = parse(jwk("a", KEY_A_X)).unwrap();
    assert_eq!(key.algorithms, [Algorithm::EdDSA]);
}
