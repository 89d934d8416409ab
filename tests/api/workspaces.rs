//! Tenants in several workspaces (regions), and keys and config reloaded without a restart.
//!
//! The demo has two regions: an EU and a US workspace, each with its own local endpoint and
//! admin token; bob's tenant (globex) is in the US, everyone else in the EU.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tinybird_bff::config::Settings;
use tinybird_bff::tinybird::AdminToken;
use tinybird_bff::tinybird::claims::verify;
use tinybird_bff::tinybird::mint::NameTemplate;
use tinybird_local::LocalConfig;

use crate::attacks::binary::{Bin, config};
use crate::helpers::{client, now, spawn_local_at, spawn_local_with, spawn_regions};

fn key_text(key: &AdminToken) -> String {
    secrecy::ExposeSecret::expose_secret(key.secret()).to_owned()
}

/// `(name, key)` of each of the demo's workspaces, in name order.
fn keys(settings: &Settings) -> Vec<(String, AdminToken)> {
    settings
        .tinybird
        .workspaces
        .iter()
        .map(|w| (w.name.clone(), w.signing_key.clone()))
        .collect()
}

async fn token_answer(app: &crate::helpers::TestApp, c: &reqwest::Client) -> (u16, Value) {
    let r = c
        .post(format!("{}api/token", app.url))
        .header("x-bff-csrf", "1")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The rows of `sql` on `base` read with `token`.
async fn sql(base: &str, token: &str, sql: &str) -> Value {
    let r = client()
        .get(format!("{base}/v0/sql"))
        .query(&[("q", format!("{sql} FORMAT JSON"))])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["data"].clone()
}

#[tokio::test]
async fn each_tenant_gets_tokens_for_its_own_workspace_and_the_proxy_calls_its_host() {
    let mut keys_of = Vec::new();
    let app = spawn_regions(|s| keys_of = keys(s)).await;
    let (eu_key, us_key) = (&keys_of[0].1, &keys_of[1].1);
    let urls = &app.running().workspaces;
    assert_eq!(
        urls.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["eu", "us"]
    );
    let (eu_url, us_url) = (&urls[0].1, &urls[1].1);
    assert_ne!(eu_url, us_url);

    let alice = app.session_for("alice").await;
    let bob = app.session_for("bob").await;
    let (status, alice_token) = token_answer(&app, &alice).await;
    assert_eq!(status, 200, "{alice_token}");
    let (status, bob_token) = token_answer(&app, &bob).await;
    assert_eq!(status, 200, "{bob_token}");
    // The answer names each user's host: the browser calls the right region directly.
    assert_eq!(alice_token["host"], eu_url.as_str());
    assert_eq!(bob_token["host"], us_url.as_str());
    // And /api/me names the workspace, for the page's region badge (no token needed).
    for (c, name, url) in [(&alice, "eu", eu_url), (&bob, "us", us_url)] {
        let me: Value = c
            .get(format!("{}api/me", app.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["workspace"], json!({"name": name, "host": url}));
    }
    let (a, c) = (
        alice_token["token"].as_str().unwrap(),
        bob_token["token"].as_str().unwrap(),
    );
    // Signed with the workspace's own key, never the other's.
    let claims = verify(c, us_key.bytes(), now()).unwrap();
    assert_eq!(Some(claims.workspace_id), us_key.workspace_id());
    assert!(
        verify(c, eu_key.bytes(), now()).is_err(),
        "a US token verifies with the EU key"
    );
    assert!(verify(a, eu_key.bytes(), now()).is_ok());
    assert!(verify(a, us_key.bytes(), now()).is_err());
    // Direct: each region's endpoint takes its own tenants' tokens only.
    let direct = |base: &str, token: &str| {
        client()
            .get(format!("{base}/v0/pipes/top_products.json"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(direct(us_url, c).await.unwrap().status(), 200);
    assert_eq!(direct(eu_url, c).await.unwrap().status(), 403);
    assert_eq!(direct(eu_url, a).await.unwrap().status(), 200);

    // Proxy: bob's call goes to the US host, with a US token; alice's to the EU host.
    for (who, c) in [("bob", &bob), ("alice", &alice)] {
        let r = c
            .get(format!("{}api/pipes/sales_by_day.json", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{who}: {}", r.text().await.unwrap());
    }
    let calls = "SELECT token_name, count() AS n FROM tinybird.pipe_stats_rt \
                 WHERE pipe_name = 'sales_by_day' GROUP BY token_name ORDER BY token_name";
    let us_calls = sql(us_url, &key_text(us_key), calls).await;
    let eu_calls = sql(eu_url, &key_text(eu_key), calls).await;
    // UInt64 counts are quoted in JSON, as ClickHouse writes them.
    assert_eq!(us_calls, json!([{"token_name": "bob@globex", "n": "1"}]));
    assert_eq!(eu_calls, json!([{"token_name": "alice@acme", "n": "1"}]));
    app.stop().await;
}

#[tokio::test]
async fn a_user_the_rule_puts_in_no_workspace_gets_a_403_that_names_the_rule() {
    let app = spawn_regions(|s| {
        s.tinybird.rule = Some(NameTemplate::compile("{{ user.tenant }}").unwrap());
    })
    .await;
    let alice = app.session_for("alice").await;
    let (status, body) = token_answer(&app, &alice).await;
    assert_eq!(status, 403, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("tinybird.workspace = \"{{ user.tenant }}\" rendered \"acme\", which is not one of \"eu\", \"us\""),
        "{error}"
    );
    let r = alice
        .get(format!("{}api/pipes/top_products.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

/// A config dir for `serve` against a remote Tinybird at `host`, its key in a file.
#[derive(Clone)]
struct Deployment {
    dir: PathBuf,
    key_file: PathBuf,
}

impl Deployment {
    fn new(host: &str, key: &AdminToken) -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-reload-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = config(&[
            ("host = \"local\"", &format!("host = \"{host}/\"")),
            ("watch = \"2s\"", "watch = \"100ms\""),
        ]);
        std::fs::write(dir.join("tinybird-bff.toml"), config).unwrap();
        std::fs::write(dir.join("users.toml"), tinybird_bff::demo::USERS).unwrap();
        let key_file = dir.join("tinybird-key");
        std::fs::write(&key_file, format!("{}\n", key_text(key))).unwrap();
        Self { dir, key_file }
    }

    /// The settings as `serve` reads them, with the key from the file.
    fn load(&self) -> Result<Settings, Vec<tinybird_bff::config::Problem>> {
        let text = std::fs::read_to_string(self.dir.join("tinybird-bff.toml")).unwrap();
        let env =
            |name: &str| (name == "TINYBIRD_SIGNING_KEY_FILE").then(|| "tinybird-key".to_owned());
        let mut settings = Settings::from_toml(&text, "tinybird-bff.toml", &self.dir, &env, None)?;
        settings
            .sources
            .insert(0, self.dir.join("tinybird-bff.toml"));
        Ok(settings)
    }

    fn rotate(&self, key: &str) {
        // As a secret mount changes: a new file moved over the old one.
        let next = self.dir.join("tinybird-key.next");
        std::fs::write(&next, key).unwrap();
        std::fs::rename(next, &self.key_file).unwrap();
    }
}

fn key_for(workspace: &str) -> AdminToken {
    AdminToken::generate(workspace)
}

/// `/readyz`'s fingerprint of the `default` workspace's key (`base`: either listener).
async fn fingerprint(base: &str) -> String {
    let body: Value = client()
        .get(format!("{base}readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["workspaces"]["default"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key fingerprint in {body}"))
        .to_owned()
}

async fn wait_for_fingerprint(base: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let seen = fingerprint(base).await;
        if seen == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}: key fingerprint is still {seen}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_replaced_key_file_signs_new_tokens_without_a_restart_and_drops_proxy_tokens() {
    let workspace = uuid::Uuid::new_v4().to_string();
    let (old, new) = (key_for(&workspace), key_for(&workspace));
    let mut local = LocalConfig::new(old.clone());
    local.workspace_id = Some(workspace.clone());
    let tinybird = spawn_local_with(local).await;
    let deployment = Deployment::new(&tinybird.url, &old);
    let loader = {
        let d = deployment.clone();
        std::sync::Arc::new(move || d.load()) as tinybird_bff::run::Loader
    };
    let settings = deployment.load().unwrap();
    let mut app = crate::helpers::spawn_settings(settings).await;
    app.running_mut().watch(loader);
    let alice = app.session_for("alice").await;
    let proxied = || {
        alice
            .get(format!("{}api/pipes/top_products.json", app.url))
            .send()
    };
    assert_eq!(proxied().await.unwrap().status(), 200);
    let before = app.token_for(&alice).await;
    assert!(verify(&before, old.bytes(), now()).is_ok());
    let old_print = fingerprint(&app.url).await;
    assert!(old_print.starts_with("sha256:"));
    assert!(!old_print.contains(&key_text(&old)));

    // Rotate: Tinybird now knows only the new key (every outstanding JWT is a 403)...
    let addr = tinybird.addr;
    drop(tinybird);
    let mut local = LocalConfig::new(new.clone());
    local.workspace_id = Some(workspace.clone());
    let tinybird = loop {
        // The old endpoint lets go of its port as it stops.
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio::spawn(spawn_local_at(local.clone(), addr)),
        )
        .await
        {
            Ok(Ok(server)) => break server,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // ...and the operator replaces the mounted key file.
    deployment.rotate(&key_text(&new));
    let new_print = tinybird_bff::tinybird::workspaces::fingerprint(&new);
    assert_ne!(new_print, old_print);
    wait_for_fingerprint(&app.url, &new_print).await;

    let after = app.token_for(&alice).await;
    assert!(
        verify(&after, new.bytes(), now()).is_ok(),
        "signed with the new key"
    );
    assert!(verify(&after, old.bytes(), now()).is_err());
    let direct = |token: String| {
        client()
            .get(format!("{}/v0/pipes/top_products.json", tinybird.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        direct(before).await.unwrap().status(),
        403,
        "Tinybird refuses old tokens"
    );
    assert_eq!(direct(after).await.unwrap().status(), 200);
    // The proxy's cached JWT (old key) was dropped: no failed call after the reload.
    assert_eq!(proxied().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_reload_changes_nothing_and_says_why() {
    let workspace = uuid::Uuid::new_v4().to_string();
    let key = key_for(&workspace);
    let mut local = LocalConfig::new(key.clone());
    local.workspace_id = Some(workspace.clone());
    let tinybird = spawn_local_with(local).await;
    let deployment = Deployment::new(&tinybird.url, &key);
    let app = crate::helpers::spawn_settings(deployment.load().unwrap()).await;
    let print = fingerprint(&app.url).await;
    let other_workspace = key_for(&uuid::Uuid::new_v4().to_string());
    for (bad, why) in [
        (String::new(), "the signing key is empty"),
        (
            "not-an-admin-token".to_owned(),
            "is not a Tinybird admin token",
        ),
        (
            format!("{} ", key_text(&key)),
            "leading or trailing whitespace",
        ),
        (
            key_text(&other_workspace),
            "is the admin token of workspace",
        ),
    ] {
        deployment.rotate(&bad);
        let problems = app.running().reload(deployment.load()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{why:?} not in {problems:?}"
        );
        assert!(
            !problems.iter().any(|p| p.contains(&key_text(&key))),
            "{problems:?}"
        );
        assert_eq!(fingerprint(&app.url).await, print, "the old key stays");
    }
    // The config itself broken: the same, every problem listed.
    let config_file = deployment.dir.join("tinybird-bff.toml");
    let good = std::fs::read_to_string(&config_file).unwrap();
    deployment.rotate(&key_text(&key));
    std::fs::write(
        &config_file,
        good.replace("ttl = \"10m\"", "ttl = \"soon\""),
    )
    .unwrap();
    let problems = app.running().reload(deployment.load()).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("token.ttl")),
        "{problems:?}"
    );
    // A host change needs a restart: refused, named.
    std::fs::write(
        &config_file,
        good.replace(&tinybird.url, "https://api.us-east.aws.tinybird.co"),
    )
    .unwrap();
    let problems = app.running().reload(deployment.load()).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("host changed")),
        "{problems:?}"
    );
    let alice = app.session_for("alice").await;
    let token = app.token_for(&alice).await;
    assert!(verify(&token, key.bytes(), now()).is_ok());
    // Fixed again: the reload goes through, and a changed user list is in force.
    let users = tinybird_bff::demo::USERS.replace("id = \"bob\"", "id = \"robert\"");
    std::fs::write(deployment.dir.join("users.toml"), users).unwrap();
    std::fs::write(&config_file, &good).unwrap();
    let done = app.running().reload(deployment.load()).unwrap();
    assert!(done.keys_changed.is_empty());
    let r = app.login("bob", "bob-demo").await;
    assert_eq!(r.status(), 401, "bob is gone after the reload");
    app.stop().await;
}

#[tokio::test]
async fn sighup_reloads_a_running_binary_and_two_instances_converge() {
    let workspace = uuid::Uuid::new_v4().to_string();
    let (old, new) = (key_for(&workspace), key_for(&workspace));
    let mut local = LocalConfig::new(old.clone());
    local.workspace_id = Some(workspace);
    let tinybird = spawn_local_with(local).await;
    // Two instances, one key file (a shared secret mount); one only reloads on SIGHUP.
    let deployment = Deployment::new(&tinybird.url, &old);
    let text = std::fs::read_to_string(deployment.dir.join("tinybird-bff.toml")).unwrap();
    let sighup_only = text.replace("watch = \"100ms\"", "watch = \"off\"");
    let key_path = deployment.key_file.to_string_lossy().into_owned();
    let env = [("TINYBIRD_SIGNING_KEY_FILE", key_path.as_str())];
    let watching = Bin::serve(&text, &env).await;
    let on_signal = Bin::serve(&sighup_only, &env).await;
    let old_print = fingerprint(&watching.admin).await;
    assert_eq!(fingerprint(&on_signal.admin).await, old_print);

    deployment.rotate(&key_text(&new));
    let new_print = tinybird_bff::tinybird::workspaces::fingerprint(&new);
    wait_for_fingerprint(&watching.admin, &new_print).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fingerprint(&on_signal.admin).await,
        old_print,
        "watch = off"
    );
    on_signal.signal("HUP");
    wait_for_fingerprint(&on_signal.admin, &new_print).await;
    for bin in [&watching, &on_signal] {
        let out = bin.output();
        assert!(out.contains("config.reloaded"), "an audit event: {out}");
        assert!(out.contains(&new_print));
        assert!(!out.contains(&key_text(&new)) && !out.contains(&key_text(&old)));
    }
    // A bad key file: reported, logged with every problem, the running key kept.
    deployment.rotate("");
    on_signal.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !on_signal.output().contains("config.reload_failed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            on_signal.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(on_signal.output().contains("the signing key is empty"));
    assert_eq!(fingerprint(&on_signal.admin).await, new_print);
}
