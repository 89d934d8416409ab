//! No secret in any log line, error body or metric: the real binary at `RUST_LOG=trace`
//! (every crate's most talkative level, hyper, reqwest and tower-sessions included) with JSON
//! logs and the audit log on stdout, driven through logins (right and wrong passwords),
//! token mints, direct and proxied reads with `token=` in the query, an IdP-style bearer
//! token, logout and replay. Then every secret the run handled is searched for in everything
//! the process wrote, every error body and `/metrics`: the signing key, every minted token,
//! every session id, every password and the bearer token, each also by its last segment,
//! and any JWT-shaped string at all (which catches tokens the proxy minted server-side).

use std::time::Duration;

use serde_json::{Value, json};

use super::binary::{Bin, config};
use super::{Reply, reply, set_session_cookie};
use crate::helpers::{client, cookie_client};

/// Every error body seen, for the search.
#[derive(Default)]
struct Seen {
    errors: Vec<String>,
}

impl Seen {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> Reply {
        let r = reply(request.send().await.unwrap()).await;
        if r.status >= 400 {
            self.errors.push(format!("{} {}", r.status, r.body));
        }
        r
    }
}

/// The last `.`-separated segment of a token (its signature: unique to it).
fn tail(token: &str) -> &str {
    token.rsplit('.').next().unwrap()
}

/// JWT-looking strings in `text`: `eyJ...` header, then two more base64url segments.
fn jwt_like(text: &str) -> Vec<String> {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    for (i, _) in text.match_indices("eyJ") {
        let rest = &text[i..];
        let end = rest
            .find(|c: char| !(b64(c) || c == '.'))
            .unwrap_or(rest.len());
        let candidate = &rest[..end];
        let parts: Vec<&str> = candidate.split('.').collect();
        if parts.len() == 3 && parts.iter().all(|p| p.len() >= 8) {
            found.push(candidate.to_owned());
        }
    }
    found
}

#[tokio::test]
async fn no_secret_reaches_a_log_an_error_body_or_a_metric() {
    let key = tinybird_bff::tinybird::AdminToken::generate(&uuid::Uuid::new_v4().to_string());
    let key = secrecy::ExposeSecret::expose_secret(key.secret()).to_owned();
    let mut bin = Bin::serve(&config(&[]), &[("TINYBIRD_SIGNING_KEY", &key)]).await;
    let mut seen = Seen::default();
    let wrong = format!("Wr0ng-{}", uuid::Uuid::new_v4().simple());
    let login = |c: &reqwest::Client, user: &str, password: &str| {
        c.post(format!("{}api/login", bin.url))
            .header("x-bff-csrf", "1")
            .json(&json!({"username": user, "password": password}))
    };
    // Logins: wrong passwords (known and unknown user, and one that fails parsing), then
    // right ones.
    let alice = cookie_client();
    let bob = cookie_client();
    for (user, password) in [("alice", wrong.as_str()), ("mallory", wrong.as_str())] {
        assert_eq!(seen.send(login(&alice, user, password)).await.status, 401);
    }
    let garbled = alice
        .post(format!("{}api/login", bin.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": wrong, "otp": wrong}));
    assert_eq!(seen.send(garbled).await.status, 422);
    let mut cookies = Vec::new();
    for (c, user) in [(&alice, "alice"), (&bob, "bob")] {
        let r = seen.send(login(c, user, &format!("{user}-demo"))).await;
        assert_eq!(r.status, 200);
        cookies.push(set_session_cookie(&r.headers).unwrap());
    }
    // Tokens.
    let mut tokens = Vec::new();
    for c in [&alice, &alice, &bob] {
        let r = seen
            .send(
                c.post(format!("{}api/token", bin.url))
                    .header("x-bff-csrf", "1"),
            )
            .await;
        tokens.push(r.json()["token"].as_str().unwrap().to_owned());
    }
    let (alices, bobs) = (tokens[0].clone(), tokens[2].clone());
    // Direct reads: token in the query, in the header, and a tampered one. These go to the
    // (emulated) Tinybird, not the BFF: like Tinybird's server it echoes a token it refuses
    // back to whoever sent it, so its bodies are checked for that, not searched for leaks.
    let tampered = format!("{}x", &alices[..alices.len() - 1]);
    for query in [
        format!("token={alices}"),
        format!("token={tampered}&org_id=globex"),
    ] {
        let url = format!("{}/v0/pipes/top_products.json?{query}", bin.tinybird);
        let r = reply(client().get(url).send().await.unwrap()).await;
        if query.contains(&tampered) {
            assert_eq!(r.status, 403);
            assert!(
                r.body.contains(&format!("b'{tampered}'")),
                "Tinybird's echo: {}",
                r.body
            );
        } else {
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    let url = format!("{}/v0/pipes/recent_orders.json", bin.tinybird);
    seen.send(client().get(url).bearer_auth(&bobs)).await;
    // Proxied reads with someone else's token in the query and the form, and SQL.
    let pipes = format!("{}api/pipes/top_products.json", bin.url);
    assert_eq!(
        seen.send(alice.get(format!("{pipes}?token={bobs}&days=7")))
            .await
            .status,
        200
    );
    let form = alice
        .post(&pipes)
        .header("x-bff-csrf", "1")
        .form(&[("token", &bobs)]);
    assert_eq!(seen.send(form).await.status, 200);
    let sql = format!(
        "{}api/sql?q=SELECT+count(*)+FROM+orders&token={bobs}",
        bin.url
    );
    seen.send(alice.get(sql)).await;
    // An identity provider's access token (none is configured: refused, never logged).
    let idp = format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImlzcyI6Imh0dHBzOi8vaWRwLmV4YW1wbGUifQ.{}",
        uuid::Uuid::new_v4().simple()
    );
    for path in ["api/token", "api/pipes/top_products.json"] {
        let r = seen
            .send(
                client()
                    .post(format!("{}{path}", bin.url))
                    .bearer_auth(&idp),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // Logout, then replay the dead cookie.
    let r = seen
        .send(
            alice
                .post(format!("{}api/logout", bin.url))
                .header("x-bff-csrf", "1"),
        )
        .await;
    assert_eq!(r.status, 204);
    let replay = client()
        .post(format!("{}api/token", bin.url))
        .header("x-bff-csrf", "1")
        .header("cookie", &cookies[0]);
    assert_eq!(seen.send(replay).await.status, 401);
    let metrics = bin.metrics().await;
    assert!(metrics.contains("tbff_tokens_minted_total"), "{metrics}");
    bin.terminate();
    assert_eq!(bin.wait(Duration::from_secs(20)).await, Some(0));
    let output = bin.output();
    assert!(
        output.contains("\"event\":\"token.minted\""),
        "audit on stdout: {output:.2000}"
    );
    assert!(
        output.contains("TRACE"),
        "trace logs captured: {output:.2000}"
    );

    let mut secrets: Vec<(String, String)> = vec![
        ("signing key".into(), key.clone()),
        ("signing key signature".into(), tail(&key).into()),
        ("wrong password".into(), wrong.clone()),
        ("alice's password".into(), "alice-demo".into()),
        ("bob's password".into(), "bob-demo".into()),
        ("IdP token".into(), idp.clone()),
        ("IdP token signature".into(), tail(&idp).into()),
    ];
    for (i, t) in tokens.iter().chain([&tampered]).enumerate() {
        secrets.push((format!("minted token {i}"), t.clone()));
        secrets.push((format!("minted token {i} signature"), tail(t).into()));
    }
    for c in &cookies {
        let id = c.split_once('=').unwrap().1;
        secrets.push(("session id".into(), id.into()));
    }
    let places = [
        ("process output", output.clone()),
        ("error bodies", seen.errors.join("\n")),
        ("/metrics", metrics),
    ];
    let mut leaks = Vec::new();
    for (place, text) in &places {
        for (what, secret) in &secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let line = text[..at].rsplit('\n').next().unwrap_or("");
                leaks.push(format!("{what} in {place}: ...{:.300}", line));
            }
        }
        for jwt in jwt_like(text) {
            leaks.push(format!("a JWT in {place}: {jwt:.60}..."));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    // The audit log traces tokens by hash, which is how an operator finds one.
    let hashes: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "token.minted")
        .map(|v| v["token_sha256"].clone())
        .collect();
    use sha2::Digest;
    let want = hex::encode(sha2::Sha256::digest(alices.as_bytes()));
    assert!(hashes.contains(&Value::String(want)), "{hashes:?}");
}

#[test]
fn the_jwt_finder_finds_jwts_and_nothing_else() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZw";
    assert_eq!(jwt_like(&format!("x token={jwt}&y")), [jwt]);
    assert!(jwt_like("eyJ alone, and eyJabc.def").is_empty());
}
