//! A key's usage over both paths, as Tinybird records it (`pipe_stats_rt`, read by the
//! `[usage]` poller from the real local endpoint): direct calls with the key's JWT and calls
//! through the proxy land under its tenant as the user `key:<id>`, in `/api/admin/usage` and
//! on the key's line in `/api/keys`; and the key's secret never reaches the process's output.

use std::time::Duration;

use serde_json::{Value, json};

use crate::attacks::binary::{Bin, config};
use crate::helpers::{client, cookie_client};
use crate::scale::support::Instance;
use crate::usage::{eventually, find, usage_settings};

#[tokio::test]
async fn a_keys_direct_and_proxy_calls_show_under_its_tenant() {
    let (settings, _local) = usage_settings().await;
    let a = Instance::start(settings).await;
    let alice = cookie_client();
    assert_eq!(a.login(&alice, "alice", "alice-demo").await, 200);
    let made: Value = a
        .post(
            &alice,
            "api/keys",
            json!({"name": "bi", "pipes": ["top_products"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let (id, key) = (
        made["key"]["id"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    let minted: Value = client()
        .post(format!("{}api/token", a.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for _ in 0..2 {
        let r = client()
            .get(format!(
                "{}/v0/pipes/top_products.json",
                minted["host"].as_str().unwrap()
            ))
            .bearer_auth(minted["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = client()
        .get(format!("{}api/pipes/top_products.json", a.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let admin = cookie_client();
    assert_eq!(a.login(&admin, "admin", "admin-demo").await, 200);
    let principal = format!("key:{id}");
    eventually("the key's calls in the usage report", || async {
        let r: Value = a
            .get(&admin, "api/admin/usage?window=15m")
            .await
            .json()
            .await
            .ok()?;
        let acme = find(&r["tenants"], "tenant", "acme")?;
        let user = find(&acme["users"], "user", &principal)?;
        (user["direct"] == 2 && user["proxy"] == 1).then_some(())
    })
    .await;
    let listed: Value = a.get(&alice, "api/keys").await.json().await.unwrap();
    let line = &listed["keys"][0]["tinybird_usage_24h"];
    assert_eq!(
        line["requests"], 3,
        "both paths on the key's line: {listed}"
    );
    assert!(line["read_bytes"].as_u64().unwrap() > 0, "{line}");
}

#[tokio::test]
async fn a_keys_secret_never_reaches_the_process_output() {
    let key_text = crate::helpers::admin_key_text();
    let mut bin = Bin::serve(&config(&[]), &[("TINYBIRD_SIGNING_KEY", key_text.as_str())]).await;
    let alice = cookie_client();
    let login = alice
        .post(format!("{}api/login", bin.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"username": "alice", "password": "alice-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let made: Value = alice
        .post(format!("{}api/keys", bin.url))
        .header("x-bff-csrf", "1")
        .json(&json!({"name": "k", "pipes": ["top_products"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, key) = (
        made["key"]["id"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    let forged = format!("{}{}", &key[..22], "B".repeat(43));
    let use_key = |k: String, path: &'static str| {
        let url = format!("{}{path}", bin.url);
        async move {
            client()
                .get(url)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        use_key(key.to_owned(), "api/pipes/top_products.json").await,
        200
    );
    assert_eq!(
        use_key(forged.clone(), "api/pipes/top_products.json").await,
        401
    );
    assert_eq!(use_key(key.to_owned(), "api/me").await, 401);
    let revoked = alice
        .post(format!("{}api/keys/{id}/revoke", bin.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        use_key(key.to_owned(), "api/pipes/top_products.json").await,
        401
    );
    bin.terminate();
    assert_eq!(bin.wait(Duration::from_secs(20)).await, Some(0));
    let output = bin.output();
    assert!(
        output.contains("TRACE") && output.contains("key.revoked"),
        "logs and audit captured"
    );
    for secret in [key, forged.as_str()] {
        assert!(
            !output.contains(&secret[22..]),
            "a key's secret in the output"
        );
    }
}
