//! Hostile and broken requests: malformed JWTs, oversized headers and query strings, path
//! tricks, invalid UTF-8 and duplicated params. Each gets a 4xx with the usual envelope, never
//! data, and the server keeps serving afterwards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::{get, raw_get, raw_http, send};
use crate::helpers::{LocalServer, WORKSPACE, admin_key_text, client, jwt_for, now, spawn_local};

const TOP: &str = "/v0/pipes/top_products.json";

/// The server still answers a normal call correctly.
async fn still_serves(server: &LocalServer) {
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let orgs = get(&server.url, TOP, Some(&token)).await.org_ids();
    assert!(
        !orgs.is_empty() && orgs.iter().all(|o| o == "acme"),
        "after the bad request: {orgs:?}"
    );
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn malformed_jwts_are_403s() {
    let server = spawn_local().await;
    let claims = json!({"workspace_id": WORKSPACE, "name": "x", "exp": now() + 600,
                        "scopes": [{"type": "PIPES:READ", "resource": "top_products"}]});
    let valid = jwt_for("acme-user", &["top_products"], Some("acme"));
    let (header, payload, signature) = {
        let parts: Vec<&str> = valid.split('.').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    let cases = [
        ("two parts", format!("{header}.{payload}")),
        ("four parts", format!("{valid}.{signature}")),
        ("one part", "eyJhbGciOiJIUzI1NiJ9".to_owned()),
        ("empty parts", "..".to_owned()),
        ("bad base64", "!!!.@@@.###".to_owned()),
        ("bad base64 signature", format!("{header}.{payload}.***")),
        (
            "payload not JSON",
            format!(
                "{header}.{}.{signature}",
                URL_SAFE_NO_PAD.encode("not json")
            ),
        ),
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        (
            "alg none, copied signature",
            format!(
                "{}.{}.{signature}",
                b64(&json!({"alg": "none"})),
                b64(&claims)
            ),
        ),
        (
            "payload swapped under a valid signature",
            format!("{header}.{}.{signature}", b64(&claims)),
        ),
        ("truncated signature", valid[..valid.len() - 4].to_owned()),
    ];
    for (case, token) in cases {
        let r = get(&server.url, TOP, Some(&token)).await;
        assert_eq!(r.status, 403, "{case}: {}", r.body);
        let message = r.assert_error(403, &["token"]);
        assert!(!message.contains(&admin_key_text()), "{case}");
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn huge_headers_are_refused_with_a_4xx_and_the_server_survives() {
    let server = spawn_local().await;
    let jwt = jwt_for("acme-user", &["top_products"], Some("acme"));
    let valid_call = format!("GET {TOP} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}");
    // The same valid call answers 200 over this raw path, so the 4xx below is the size alone.
    assert_eq!(raw_http(server.addr, valid_call.as_bytes()).await.0, 200);
    for size in [512 * 1024, 1024 * 1024] {
        let mut head = format!("{valid_call}\r\nX-Padding: ").into_bytes();
        head.extend(std::iter::repeat_n(b'a', size));
        let (status, _) = raw_http(server.addr, &head).await;
        assert!((400..500).contains(&status), "{size}-byte header: {status}");
    }
    let mut many = valid_call.clone().into_bytes();
    for i in 0..500 {
        many.extend(format!("\r\nX-H{i}: v").into_bytes());
    }
    let (status, _) = raw_http(server.addr, &many).await;
    assert!((400..500).contains(&status), "500 headers: {status}");
    let huge_bearer = format!("{jwt}{}", "A".repeat(200_000));
    let r = send(
        client()
            .get(format!("{}{TOP}", server.url))
            .bearer_auth(huge_bearer),
    )
    .await;
    assert!(
        (400..500).contains(&r.status),
        "a 200 KB token: {}",
        r.status
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn huge_query_strings_are_refused_or_ignored_never_a_crash() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    // Below any URI limit: many unknown params are ignored.
    let junk: String = (0..2_000).map(|i| format!("&junk{i}=x")).collect();
    let r = get(&server.url, &format!("{TOP}?limit=2{junk}"), Some(&token)).await;
    assert_eq!(r.rows().len(), 2);
    // Far beyond: a 4xx before any work is done.
    for size in [100 * 1024, 2 * 1024 * 1024] {
        let path = format!("{TOP}?limit=2&pad={}", "a".repeat(size));
        let (status, _) = raw_get(server.addr, path.as_bytes(), &token).await;
        assert!((400..500).contains(&status), "{size}-byte query: {status}");
    }
    still_serves(&server).await;
}

#[tokio::test]
async fn path_tricks_never_reach_data() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let tricks: &[&[u8]] = &[
        b"/v0/pipes/../pipes/top_products.json",
        b"/v0/pipes/..%2Ftop_products.json",
        b"/v0/pipes/..%2F..%2Fetc%2Fpasswd.json",
        b"/v0/pipes/%2E%2E%2Ftop_products.json",
        b"/v0/pipes/sub%2Ftop_products.json",
        b"/v0/pipes/top_products%2F.json",
        b"/v0/pipes/.json",
        b"/v0/pipes/..json",
        b"/v0/pipes/.",
        b"/v0/pipes/top_products..json",
        b"/v0/pipes/top_products.json.json",
        b"/v0/pipes/top%20products.json",
        b"/v0/pipes/top_products%00.json",
        b"/v0/pipes//top_products.json",
        b"/v0//pipes/top_products.json",
    ];
    for trick in tricks {
        for bearer in [&admin, &token] {
            let (status, body) = raw_get(server.addr, trick, bearer).await;
            let shown = String::from_utf8_lossy(trick);
            assert!((400..500).contains(&status), "{shown}: {status} {body}");
            assert!(!body.contains("\"data\""), "{shown} returned data: {body}");
            assert!(
                body.contains("\"error\""),
                "{shown}: not the JSON error envelope: {body}"
            );
        }
    }
    // A 200-character name is refused, and the message does not echo all of it back.
    let long = format!("/v0/pipes/{}.json", "a".repeat(200));
    let r = get(&server.url, &long, Some(&admin)).await;
    let message = r.assert_error(404, &["not found"]);
    assert!(message.len() < 200, "{message}");
    still_serves(&server).await;
}

#[tokio::test]
async fn a_non_utf8_pipe_name_gets_the_json_error_envelope() {
    let server = spawn_local().await;
    let (status, body) = raw_get(server.addr, b"/v0/pipes/%FF.json", &admin_key_text()).await;
    assert!((400..500).contains(&status), "{status} {body}");
    // BUG: crates/tinybird-local/src/routes.rs `pipe` extracts `Path<String>`, so axum's own rejection answers
    // here: 400 text/plain "Invalid URL: Invalid UTF-8 in `file`" instead of the
    // `{"error": ...}` envelope every client parses (take `RawPathParams`, or map the
    // `PathRejection` into an ApiError).
    assert!(
        body.contains("\"error\""),
        "not the JSON error envelope: {body}"
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn invalid_utf8_is_a_400_naming_the_param() {
    let server = spawn_local().await;
    let admin = admin_key_text();
    get(&server.url, &format!("{TOP}?org_id=%FF"), Some(&admin))
        .await
        .assert_error(400, &["org_id", "UTF-8"]);
    get(
        &server.url,
        &format!("{TOP}?org_id=acme&limit=%C3%28"),
        Some(&admin),
    )
    .await
    .assert_error(400, &["limit", "UTF-8"]);
    get(
        &server.url,
        &format!("{TOP}?org_id=acme&%FE=1"),
        Some(&admin),
    )
    .await
    .assert_error(400, &["UTF-8"]);
    // A JWT's fixed params do not hide a broken request: still a 400, not silently fixed.
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    get(&server.url, &format!("{TOP}?org_id=%FF"), Some(&token))
        .await
        .assert_error(400, &["org_id", "UTF-8"]);
    let form = send(
        client()
            .post(format!("{}{TOP}", server.url))
            .bearer_auth(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"limit=3&category=\xff\xfe".to_vec()),
    )
    .await;
    form.assert_error(400, &["UTF-8"]);
    // Raw non-ASCII bytes in the request line never reach a pipe.
    let (status, body) = raw_get(
        server.addr,
        b"/v0/pipes/top_products.json?org_id=\xff",
        &admin,
    )
    .await;
    assert!((400..500).contains(&status), "{status} {body}");
    // Valid non-ASCII UTF-8 is fine (and matches no tenant).
    let r = get(&server.url, &format!("{TOP}?org_id=%C3%A9"), Some(&admin)).await;
    assert!(r.rows().is_empty());
    still_serves(&server).await;
}

#[tokio::test]
async fn duplicated_params_take_the_first_value_and_never_error() {
    let server = spawn_local().await;
    let token = jwt_for("acme-user", &["top_products"], Some("acme"));
    let r = get(&server.url, &format!("{TOP}?limit=3&limit=5"), Some(&token)).await;
    assert_eq!(r.rows().len(), 3);
    let form = super::post_form(&server.url, &format!("{TOP}?limit=2"), &token, "limit=6").await;
    assert_eq!(
        form.rows().len(),
        2,
        "the query string comes before the form body"
    );
    // A duplicated token: the first one counts, so junk first is a 403, not a fallback.
    let r = get(
        &server.url,
        &format!("{TOP}?token=junk&token={token}"),
        None,
    )
    .await;
    r.assert_error(403, &["Not enough segments"]);
    let r = get(
        &server.url,
        &format!("{TOP}?token={token}&token=junk"),
        None,
    )
    .await;
    assert!(!r.rows().is_empty());
}
