//! `tinybird-bff init`, run as a new team would: the files it writes pass `check` once the
//! admin token is in `.env`, and `serve` on them logs the printed user in and mints their
//! tenant's token.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::admin_key_text;

const BIN: &str = env!("CARGO_BIN_EXE_tinybird-bff");

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tbff-init-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `script` in `sh` in `dir`, as the printed instructions are run (`. ./.env` included),
/// with no signing key inherited from the test's environment.
fn sh(dir: &Path, script: &str) -> (bool, String, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("BFF", BIN)
        .env_remove("TINYBIRD_SIGNING_KEY")
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
fn init_writes_files_that_pass_check_once_the_token_is_filled_in() {
    let dir = scratch();
    let (ok, stdout, stderr) = sh(&dir, "\"$BFF\" init --dir app");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("first user: alice / "), "{stdout}");
    let app = dir.join("app");
    for file in ["tinybird-bff.toml", "users.toml", ".env"] {
        assert!(app.join(file).is_file(), "{file} written");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.join(".env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the secrets file is its owner's alone");

    // As written, the one thing missing is the token, and check says so.
    let check = "set -a; . ./.env; set +a; \"$BFF\" check --config tinybird-bff.toml";
    let (ok, _, stderr) = sh(&app, check);
    assert!(!ok);
    assert!(stderr.contains("has 1 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("TINYBIRD_SIGNING_KEY: the signing key is empty"),
        "{stderr}"
    );

    let env = std::fs::read_to_string(app.join(".env")).unwrap();
    let filled = env.replace(
        "TINYBIRD_SIGNING_KEY=\n",
        &format!("TINYBIRD_SIGNING_KEY={}\n", admin_key_text()),
    );
    assert_ne!(env, filled, "the template has the line to fill in");
    std::fs::write(app.join(".env"), filled).unwrap();
    let (ok, stdout, stderr) = sh(&app, check);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok (1 users"), "{stdout}");

    // A second init writes nothing over a team's files.
    let before = std::fs::read_to_string(app.join("users.toml")).unwrap();
    let (ok, _, stderr) = sh(&dir, "\"$BFF\" init --dir app");
    assert!(
        !ok && stderr.contains("already exists: nothing was written"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(app.join("users.toml")).unwrap(),
        before
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn init_refuses_values_that_would_break_its_files() {
    let dir = scratch();
    for (args, says) in [
        ("--tenant 'a\"b'", "--tenant"),
        ("--pipes 'top,x y'", "--pipes"),
        ("--host api.tinybird.co", "--host"),
    ] {
        let (ok, _, stderr) = sh(&dir, &format!("\"$BFF\" init --dir app {args}"));
        assert!(!ok && stderr.contains(says), "{args}: {stderr}");
    }
    assert!(!dir.join("app").exists(), "nothing written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn serve_on_the_init_files_logs_the_printed_user_in_and_pins_their_tenant() {
    let dir = scratch();
    let (ok, stdout, stderr) = sh(
        &dir,
        "\"$BFF\" init --dir . --user dana --tenant initech --pipes top_products,sales_by_day",
    );
    assert!(ok, "{stderr}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("first user: dana / "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the password is printed")
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(dir.join("tinybird-bff.toml"))
        .unwrap()
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.join("tinybird-bff.toml"), config).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", "tinybird-bff.toml"])
        .current_dir(&dir)
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve listens");
    let login = client
        .post(format!("{base}/api/login"))
        .header("X-BFF-CSRF", "1")
        .json(&serde_json::json!({"username": "dana", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token: serde_json::Value = client
        .post(format!("{base}/api/token"))
        .header("X-BFF-CSRF", "1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = tinybird_bff::tinybird::claims::verify(
        token["token"].as_str().unwrap(),
        admin_key_text().as_bytes(),
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
    let scopes: Vec<(&str, &serde_json::Value)> = claims
        .scopes
        .iter()
        .map(|s| {
            (
                s.resource.as_str(),
                &s.fixed_params.as_ref().unwrap()["org_id"],
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [
            ("sales_by_day", &serde_json::json!("initech")),
            ("top_products", &serde_json::json!("initech"))
        ]
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}
