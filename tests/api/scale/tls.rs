//! Managed Redis as teams run it (docs/operations.md, "Redis over TLS"): a real `redis-server`
//! listening only on TLS, with a certificate made now by `openssl` from a CA of its own, an ACL
//! user and a password. Two instances share a session and a rate limit through it when the
//! CA is configured; without it (the platform's roots do not know that CA) nothing is trusted
//! and the session store answers 503 fast.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tinybird_bff::config::SessionStoreKind;
use tinybird_bff::redis::{RedisConfig, validate};
use tokio::process::{Child, Command};

use super::support::{Instance, base_settings, with_limits};
use crate::helpers::cookie_client;

const PASSWORD: &str = "tls-test-password";

/// Runs `openssl` with `args` in `dir`, failing the test with its output.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for 127.0.0.1 it signed, in `dir`.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=tbff test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

/// `redis-server` on TLS only, the default user off and the ACL user `bff`.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    _child: Child,
}

impl TlsRedis {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-redis-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        certificates(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--user", "default", "off"])
            .args([
                "--user",
                "bff",
                "on",
                &format!(">{PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    port,
                    dir,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server with TLS did not listen on {port}");
    }

    /// `[redis]` for it: the ACL user in the URL, the password from the environment.
    fn settings(&self, ca: bool) -> tinybird_bff::redis::RedisSettings {
        let raw = RedisConfig {
            url: format!("rediss://bff@127.0.0.1:{}/0", self.port),
            password_env: "REDIS_PASSWORD".into(),
            key_prefix: "tbff:".into(),
            timeout: "500ms".into(),
            ca_file: ca.then(|| "ca.pem".into()),
            ..RedisConfig::with_url("")
        };
        let env = |k: &str| (k == "REDIS_PASSWORD").then(|| PASSWORD.to_owned());
        validate(&raw, &self.dir, &env).unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn rediss_with_an_acl_user_and_a_configured_ca_shares_sessions_and_limits() {
    let redis = TlsRedis::start().await;
    let mut settings = with_limits(base_settings(), r#"user.token = "1/m burst 2""#);
    settings.redis = Some(redis.settings(true));
    settings.session_store = SessionStoreKind::Redis;
    let (a, b) = (
        Instance::start(settings.clone()).await,
        Instance::start(settings).await,
    );
    let browser = cookie_client();
    assert_eq!(a.login(&browser, "alice", "alice-demo").await, 200);
    assert_eq!(
        b.get(&browser, "api/me").await.status(),
        200,
        "the session, through TLS"
    );
    let statuses = [
        a.token(&browser).await.status().as_u16(),
        b.token(&browser).await.status().as_u16(),
        a.token(&browser).await.status().as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 429], "one limit for both instances");
    let ready: serde_json::Value = reqwest::get(format!("{}readyz", a.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["redis"]["ok"], true, "{ready}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn without_the_ca_the_server_is_not_trusted_and_sessions_fail_closed_fast() {
    let redis = TlsRedis::start().await;
    let mut settings = base_settings();
    settings.redis = Some(redis.settings(false));
    settings.session_store = SessionStoreKind::Redis;
    let a = Instance::start(settings).await;
    let started = std::time::Instant::now();
    let login = a.login(&cookie_client(), "alice", "alice-demo").await;
    assert_eq!(
        login, 503,
        "a certificate the platform's roots do not know is refused"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    a.stop().await;
}
