//! The binary's subcommands, run as a user would run them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::{admin_key_text, jwt_for};

/// The example config reads usage with a static token from here.
const USAGE_TOKEN: &str = "p.usage-cli-test";

const BIN: &str = env!("CARGO_BIN_EXE_tinybird-bff");

/// A temp dir with the demo config and users, for the config-driven commands.
fn config_dir(config: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tbff-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tinybird-bff.toml"), config).unwrap();
    std::fs::write(dir.join("users.toml"), tinybird_bff::demo::USERS).unwrap();
    dir
}

fn run(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .env("TINYBIRD_USAGE_TOKEN", USAGE_TOKEN)
        .env_remove("TINYBIRD_SIGNING_KEY_FILE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_accepts_the_example_config() {
    let dir = config_dir(&crate::helpers::single_workspace_config());
    let (ok, stdout, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok (4 users"), "{stdout}");
}

#[test]
fn check_lists_every_problem_with_its_key_and_fix() {
    let broken = crate::helpers::single_workspace_config()
        .replace(
            "host = \"local\"",
            "host = \"api.tinybird.co/v0\"\nregion = \"eu\"",
        )
        .replace("ttl = \"10m\"", "ttl = \"ten minutes\"")
        .replace("\"top_products\", ", "\"top_prodcts\", ")
        .replace(
            "org_id = \"{{ user.tenant }}\"",
            "org_id = \"{{ user.attributes.org }}\"",
        );
    let dir = config_dir(&broken);
    let (ok, _, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(!ok);
    // One run lists them all: an unknown key no longer hides the others.
    for needle in [
        "tinybird.region: unknown key",
        "tinybird.host: must be your workspace's API host",
        "token.ttl: \"ten minutes\" is not a duration",
        "user.attributes.org is not an attribute",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // The unknown pipe is only knowable with a pipe list (the remote host has none here).
    let with_pipes = crate::helpers::single_workspace_config()
        .replace("\"top_products\", ", "\"top_prodcts\", ");
    std::fs::write(dir.join("tinybird-bff.toml"), with_pipes).unwrap();
    let (ok, _, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(!ok);
    assert!(
        stderr.contains("pipe \"top_prodcts\" does not exist"),
        "{stderr}"
    );
}

/// The three mistakes of issue #29 planted in one file: `check` used to report the first only.
#[test]
fn check_finds_an_unknown_key_a_bad_duration_and_a_missing_attribute_in_one_run() {
    let broken = crate::helpers::single_workspace_config()
        .replace("[session]\n", "[session]\nstroe = \"memory\"\n")
        .replace("lockout = \"15m\"", "lockout = \"15 mins please\"")
        .replace(
            "org_id = \"{{ user.tenant }}\"",
            "org_id = \"{{ user.attributes.org }}\"",
        );
    let dir = config_dir(&broken);
    let (ok, stdout, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("has 3 problem(s)"), "{stderr}");
    for needle in [
        "session.stroe: unknown key; did you mean `store`? ([session] takes store,",
        "login.lockout: \"15 mins please\" is not a duration",
        "grants (tenant-dashboards).fixed_params: user.attributes.org is not an attribute of any user",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn check_says_what_to_write_for_a_value_of_the_wrong_type() {
    let broken = crate::helpers::single_workspace_config()
        .replace("ttl = \"10m\"", "ttl = 600")
        .replace("max_failures = 5", "max_failures = \"5\"");
    let dir = config_dir(&broken);
    let (ok, _, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(!ok);
    assert!(stderr.contains("has 2 problem(s)"), "{stderr}");
    for needle in [
        "token.ttl: is the number 600, but durations are strings with a unit: write ttl = \"600s\"",
        "login.max_failures: is the string \"5\", but it is not a string: write max_failures = 5 (no quotes)",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    // A TOML syntax error stops the reading: it is reported alone, with its line.
    std::fs::write(
        dir.join("tinybird-bff.toml"),
        broken.replace("[token]", "[token"),
    )
    .unwrap();
    let (ok, _, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(!ok);
    assert!(
        stderr.contains("has 1 problem(s)") && stderr.contains("TOML parse error at line"),
        "{stderr}"
    );
}

#[test]
fn secrets_come_only_from_the_environment() {
    let dir = config_dir(&crate::helpers::single_workspace_config());
    let out = Command::new(BIN)
        .args(["check", "--config", "tinybird-bff.toml"])
        .current_dir(&dir)
        .env_remove("TINYBIRD_SIGNING_KEY")
        .env_remove("TINYBIRD_SIGNING_KEY_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set TINYBIRD_SIGNING_KEY (or TINYBIRD_SIGNING_KEY_FILE)"),
        "{stderr}"
    );
    std::fs::write(dir.join("key"), format!("{}\n", admin_key_text())).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", "tinybird-bff.toml"])
        .current_dir(&dir)
        .env_remove("TINYBIRD_SIGNING_KEY")
        .env("TINYBIRD_SIGNING_KEY_FILE", "key")
        .env("TINYBIRD_USAGE_TOKEN", USAGE_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_key = crate::helpers::single_workspace_config()
        .replace("[token]", "signing_key = \"p.secret\"\n\n[token]");
    std::fs::write(dir.join("tinybird-bff.toml"), with_key).unwrap();
    let (ok, _, stderr) = run(&["check", "--config", "tinybird-bff.toml"], &dir);
    assert!(
        !ok && stderr
            .contains("tinybird.signing_key: unknown key; did you mean `signing_key_env`?"),
        "{stderr}"
    );
}

#[test]
fn mint_prints_a_verifiable_token_and_explains_it() {
    let dir = config_dir(&crate::helpers::single_workspace_config());
    let (ok, stdout, stderr) = run(
        &["mint", "--config", "tinybird-bff.toml", "--user", "alice"],
        &dir,
    );
    assert!(ok, "{stderr}");
    let claims = tinybird_bff::tinybird::claims::verify(
        stdout.trim(),
        admin_key_text().as_bytes(),
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
    assert_eq!(claims.name, "alice@acme");
    assert_eq!(claims.scopes.len(), 6, "3 pipes + 3 data sources");
    let (ok, stdout, _) = run(
        &[
            "mint",
            "--config",
            "tinybird-bff.toml",
            "--user",
            "admin",
            "--explain",
        ],
        &dir,
    );
    assert!(ok);
    assert!(stdout.contains("\"workspace_id\""), "{stdout}");
    assert!(
        stdout.contains("PIPES:READ orgs_overview <- platform-admin"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "PIPES:READ top_products <- tenant-dashboards (fixed params {\"org_id\":\"acme\"})"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("eyJ"),
        "--explain prints claims, not the token"
    );
    let (ok, _, stderr) = run(
        &["mint", "--config", "tinybird-bff.toml", "--user", "nobody"],
        &dir,
    );
    assert!(!ok && stderr.contains("no user \"nobody\""), "{stderr}");
}

#[test]
fn hash_password_prints_an_argon2id_hash_that_verifies() {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = tinybird_bff::auth::users::UserDirectory::from_toml(
        &format!("[[users]]\nid = \"u\"\npassword_hash = \"{hash}\"\n"),
        "t",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt.block_on(users.verify("u", "s3cret pass")).is_some());
    assert!(rt.block_on(users.verify("u", "s3cret")).is_none());
}

/// Starts the binary and reads stdout until `prefix` lines are all seen.
fn start(args: &[&str], env_key: bool, prefixes: &[&str]) -> (Child, Vec<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    if env_key {
        cmd.env("TINYBIRD_SIGNING_KEY", admin_key_text());
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut found = Vec::new();
    for prefix in prefixes {
        loop {
            let line = lines
                .next()
                .expect("process printed its addresses")
                .unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                found.push(rest.trim().to_owned());
                break;
            }
        }
    }
    // Keep reading: a closed pipe would kill the process at its next line of output.
    std::thread::spawn(move || lines.for_each(drop));
    (child, found)
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

#[tokio::test]
async fn local_runs_standalone_and_serves_only_the_tokens_tenant() {
    let (child, found) = start(
        &["local", "--listen", "127.0.0.1:0"],
        true,
        &["tinybird:", "workspace_id:"],
    );
    let url = &found[0];
    assert_eq!(found[1], crate::helpers::WORKSPACE);
    let token = jwt_for("cli", &["top_products"], Some("initech"));
    let body: Value = reqwest::get(format!(
        "{url}/v0/pipes/top_products.json?org_id=acme&token={token}"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let data = body["data"].as_array().unwrap();
    assert!(
        !data.is_empty() && data.iter().all(|r| r["org_id"] == "initech"),
        "{body}"
    );
    assert!(terminate(child).success(), "SIGTERM shuts down cleanly");
}

#[tokio::test]
async fn local_accepts_static_tokens_scoped_to_pipe_stats_rt() {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "local",
        "--listen",
        "127.0.0.1:0",
        "--static-token-env",
        "TB_USAGE_TOKEN=DATASOURCES:READ:tinybird.pipe_stats_rt",
    ])
    .env("TINYBIRD_SIGNING_KEY", admin_key_text())
    .env("TB_USAGE_TOKEN", "p.cli-usage-token")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .find_map(|l| {
            l.unwrap()
                .strip_prefix("tinybird:")
                .map(|u| u.trim().to_owned())
        })
        .expect("the address is printed");
    std::thread::spawn(move || lines.for_each(drop));
    let token = jwt_for("cli-stats", &["top_products"], Some("acme"));
    let r = reqwest::get(format!("{url}/v0/pipes/top_products.json?token={token}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let q = "SELECT token_name, status_code FROM tinybird.pipe_stats_rt";
    let body: Value = crate::helpers::client()
        .get(format!("{url}/v0/sql"))
        .query(&[("q", q)])
        .bearer_auth("p.cli-usage-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"][0]["token_name"], "cli-stats", "{body}");
    assert!(terminate(child).success());
    let bad = Command::new(BIN)
        .args(["local", "--static-token-env", "TB_USAGE_TOKEN=ADMIN"])
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .env("TB_USAGE_TOKEN", "p.x")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("DATASOURCES:READ:<data source>"), "{err}");
}

#[test]
fn local_without_a_key_says_how_to_set_one() {
    let out = Command::new(BIN)
        .args(["local", "--listen", "127.0.0.1:0"])
        .env_remove("TINYBIRD_SIGNING_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set TINYBIRD_SIGNING_KEY"));
}

#[tokio::test]
async fn the_demo_starts_with_no_arguments_needed_and_stops_on_sigterm() {
    let (child, found) = start(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--local-listen",
            "127.0.0.1:0",
        ],
        false,
        &["app:", "tinybird:", "  alice"],
    );
    let page = reqwest::get(&found[0]).await.unwrap();
    assert_eq!(page.status(), 200);
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v0/pipes/top_products.json", found[1]),
        )
        .header("origin", found[0].trim_end_matches('/'))
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert!(
        found[2].contains("alice-demo"),
        "prints the demo logins: {:?}",
        found[2]
    );
    assert!(terminate(child).success());
}

/// `check` and `mint` with the demo's two regions (EU and US workspaces, a key each).
fn run_regions(args: &[&str], dir: &Path, keys: &[(&str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("TINYBIRD_SIGNING_KEY")
        .env_remove("TINYBIRD_SIGNING_KEY_EU_FILE")
        .env_remove("TINYBIRD_SIGNING_KEY_US_FILE");
    for (var, key) in keys {
        cmd.env(var, key);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn with_two_regions_mint_explains_the_workspace_and_check_flags_pipes_missing_there() {
    let key = |ws: &str| {
        let key = tinybird_bff::tinybird::AdminToken::generate(ws);
        secrecy::ExposeSecret::expose_secret(key.secret()).to_owned()
    };
    let (eu, us) = (key("ws-eu-1"), key("ws-us-1"));
    let keys = [
        ("TINYBIRD_SIGNING_KEY_EU", eu.clone()),
        ("TINYBIRD_SIGNING_KEY_US", us.clone()),
    ];
    let dir = config_dir(tinybird_bff::demo::CONFIG);
    let config = ["--config", "tinybird-bff.toml"];
    let (ok, stdout, stderr) = run_regions(&[&["check"][..], &config].concat(), &dir, &keys);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("workspace eu = ws-eu-1, us = ws-us-1"),
        "{stdout}"
    );
    let mint = [&["mint", "--explain", "--user", "bob"][..], &config].concat();
    let (ok, stdout, stderr) = run_regions(&mint, &dir, &keys);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "workspace: us (ws-us-1, local (127.0.0.1:7182)) <- tinybird.workspace = \"{{ user.attributes.region }}\" renders \"us\""
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\"workspace_id\": \"ws-us-1\""), "{stdout}");
    // A missing key names its variable; one key for both workspaces is refused.
    let (ok, _, stderr) = run_regions(
        &["check", "--config", "tinybird-bff.toml"],
        &dir,
        &keys[..1],
    );
    assert!(
        !ok && stderr.contains("set TINYBIRD_SIGNING_KEY_US (or TINYBIRD_SIGNING_KEY_US_FILE)"),
        "{stderr}"
    );
    let same = [keys[0].clone(), ("TINYBIRD_SIGNING_KEY_US", eu.clone())];
    let (ok, _, stderr) = run_regions(&["check", "--config", "tinybird-bff.toml"], &dir, &same);
    assert!(
        !ok && stderr.contains("has the same signing key as workspace \"eu\""),
        "{stderr}"
    );
    // The US workspace lacks a pipe bob's grants give him: check says whose and where.
    let lacking = tinybird_bff::demo::CONFIG.replace(
        "signing_key_env = \"TINYBIRD_SIGNING_KEY_US\"",
        "signing_key_env = \"TINYBIRD_SIGNING_KEY_US\"\npipes = [\"top_products\", \"recent_orders\", \"orgs_overview\"]",
    );
    std::fs::write(dir.join("tinybird-bff.toml"), lacking).unwrap();
    let (ok, _, stderr) = run_regions(&["check", "--config", "tinybird-bff.toml"], &dir, &keys);
    assert!(!ok);
    assert!(
        stderr.contains(
            "pipe \"sales_by_day\" does not exist in workspace \"us\", user bob's workspace"
        ),
        "{stderr}"
    );
    // A rule that puts a user in no workspace.
    let no_rule = tinybird_bff::demo::CONFIG.replace(
        "workspace = \"{{ user.attributes.region }}\"",
        "workspace = \"{{ user.tenant }}\"",
    );
    std::fs::write(dir.join("tinybird-bff.toml"), no_rule).unwrap();
    let (ok, _, stderr) = run_regions(&["check", "--config", "tinybird-bff.toml"], &dir, &keys);
    assert!(!ok);
    assert!(
        stderr.contains("user alice: tinybird.workspace = \"{{ user.tenant }}\" renders \"acme\", which is not a workspace"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_flags_a_usage_token_that_reads_more_than_pipe_stats() {
    use tinybird_local::auth::{StaticScope, StaticToken};
    let mut config = tinybird_local::LocalConfig::new(crate::helpers::admin_key());
    let scoped = |pipes: &[&str]| {
        let mut scopes = vec![StaticScope::DatasourcesRead(
            "tinybird.pipe_stats_rt".into(),
        )];
        scopes.extend(pipes.iter().map(|p| StaticScope::PipesRead((*p).into())));
        scopes
    };
    for (name, pipes) in [("WIDE", &["top_products"][..]), ("NARROW", &[][..])] {
        config.static_tokens.push(StaticToken {
            name: name.into(),
            token: secrecy::SecretString::from(format!("p.{name}")),
            scopes: scoped(pipes),
        });
    }
    let local = crate::helpers::spawn_local_with(config).await;
    let remote = format!(
        "{}{}",
        crate::helpers::single_workspace_config(),
        tinybird_bff::demo::USAGE
    )
    .replace("host = \"local\"", &format!("host = \"{}\"", local.url))
    .replace(
        "local_listen = \"127.0.0.1:7181\"",
        "pipes = [\"top_products\", \"sales_by_day\", \"recent_orders\", \"orgs_overview\"]",
    );
    let dir = config_dir(&remote);
    let check = |token: &'static str| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(BIN)
                .args(["check", "--config", "tinybird-bff.toml"])
                .current_dir(&dir)
                .env("TINYBIRD_SIGNING_KEY", admin_key_text())
                .env("TINYBIRD_USAGE_TOKEN", token)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let (ok, stderr) = check("p.WIDE").await.unwrap();
    assert!(!ok, "a token reading a pipe is flagged");
    assert!(
        stderr.contains("can read more than tinybird.pipe_stats_rt (pipes top_products)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("p.WIDE"),
        "the token itself is never printed"
    );
    let (ok, stderr) = check("p.NARROW").await.unwrap();
    assert!(ok, "{stderr}");
}

#[test]
fn mint_into_a_reader_that_stops_early_exits_quietly() {
    let dir = config_dir(&crate::helpers::single_workspace_config());
    for args in [
        &[
            "mint",
            "--config",
            "tinybird-bff.toml",
            "--user",
            "admin",
            "--explain",
        ][..],
        &["mint", "--config", "tinybird-bff.toml", "--user", "admin"][..],
    ] {
        // As `mint --explain | head -0`: the reader is gone before the first write.
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("TINYBIRD_SIGNING_KEY", admin_key_text())
            .env_remove("TINYBIRD_SIGNING_KEY_FILE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
