//! `tinybird-bff keys create|list|roll|revoke`, run as an operator would, against the SQLite
//! file the server uses; and `check` reaching the store.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::admin_key_text;

const BIN: &str = env!("CARGO_BIN_EXE_tinybird-bff");

/// The one-workspace demo config with its keys in `keys.db` next to it, audit on stdout.
fn config_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tbff-keys-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = crate::helpers::single_workspace_config()
        .replace("path = \"data/keys.db\"", "path = \"keys.db\"")
        .replace("[audit]\noutput = \"off\"", "[audit]\noutput = \"stdout\"");
    assert!(
        config.contains("path = \"keys.db\""),
        "the demo config has [keys]"
    );
    std::fs::write(dir.join("tinybird-bff.toml"), config).unwrap();
    std::fs::write(dir.join("users.toml"), tinybird_bff::demo::USERS).unwrap();
    dir
}

fn keys(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .args(["--config", "tinybird-bff.toml", "--by", "ops-test"])
        .current_dir(dir)
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
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
fn an_operator_creates_lists_rolls_and_revokes_keys_from_the_cli() {
    let dir = config_dir();
    let (ok, stdout, stderr) = keys(
        &dir,
        &[
            "create",
            "--tenant",
            "globex",
            "--name",
            "bi tool",
            "--pipe",
            "top_products",
            "--datasource",
            "orders",
            "--quota",
            "1000/day",
            "--rps",
            "5",
            "--expires-in",
            "30d",
            "--attribute",
            "region=us",
        ],
    );
    assert!(ok, "{stderr}");
    let secret = stdout.trim().to_owned();
    assert!(
        secret.starts_with("tbk_live_"),
        "stdout holds the key only: {stdout:?}"
    );
    let id = secret["tbk_live_".len().."tbk_live_".len() + 12].to_owned();
    assert!(stderr.contains("shown this once"), "{stderr}");
    assert!(
        stderr.contains("key.created") && stderr.contains("operator:ops-test"),
        "audit on stderr: {stderr}"
    );
    assert!(
        !stderr.contains(&secret[22..]),
        "no secret in the audit line: {stderr}"
    );
    assert!(dir.join("keys.db").is_file(), "keys are durable: a file");

    let (ok, table, stderr) = keys(&dir, &["list"]);
    assert!(ok, "{stderr}");
    assert!(
        table.contains(&id) && table.contains("globex") && table.contains("active"),
        "{table}"
    );
    let (ok, json, _) = keys(&dir, &["list", "--tenant", "globex", "--json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json[0]["key"]["scopes"]["datasources"],
        serde_json::json!(["orders"])
    );
    assert_eq!(
        json[0]["key"]["quota"],
        serde_json::json!({"requests": 1000, "period": "day"})
    );
    assert!(!json.to_string().contains(&secret[22..]));
    let (_, none, _) = keys(&dir, &["list", "--tenant", "acme"]);
    assert_eq!(none.trim(), "no keys");

    let (ok, rolled, stderr) = keys(&dir, &["roll", &id, "--grace", "15m"]);
    assert!(ok, "{stderr}");
    assert!(rolled.trim().starts_with(&format!("tbk_live_{id}_")) && rolled.trim() != secret);
    assert!(
        stderr.contains("key.rolled") && stderr.contains("works for 15m"),
        "{stderr}"
    );

    let (ok, _, stderr) = keys(&dir, &["revoke", &id]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("key.revoked") && stderr.contains("revoked"),
        "{stderr}"
    );
    let (_, table, _) = keys(&dir, &["list"]);
    assert!(table.contains("revoked"), "{table}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_cli_says_what_to_fix() {
    let dir = config_dir();
    let (ok, _, stderr) = keys(
        &dir,
        &[
            "create", "--tenant", "acme", "--name", "x", "--pipe", "nope",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("pipe nope"), "{stderr}");
    let (ok, _, stderr) = keys(
        &dir,
        &[
            "create",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--pipe",
            "top_products",
            "--quota",
            "lots",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("1000/day"), "{stderr}");
    let (ok, _, stderr) = keys(&dir, &["revoke", "000000000000"]);
    assert!(!ok);
    assert!(stderr.contains("no API key 000000000000"), "{stderr}");
    let out = Command::new(BIN)
        .args(["check", "--config", "tinybird-bff.toml"])
        .current_dir(&dir)
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .env("TINYBIRD_USAGE_TOKEN", "p.usage-cli-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("keys: the sqlite key store answers"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}
