//! The real `tinybird-bff serve` as a child process, for what only a process shows: its
//! whole output (logs on stderr, audit lines on stdout), its memory (`VmRSS`), and how it
//! exits on SIGTERM. The config is the demo's with ports on 0, JSON logs, audit on stdout
//! and the admin listener on, plus whatever a test changes.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tinybird-bff");

/// The demo config with `edits` (`(find, replace)`, each must match) applied on top of the
/// test defaults: free ports, memory sessions, JSON logs, audit on stdout, `/metrics` on.
pub fn config(edits: &[(&str, &str)]) -> String {
    let mut text = crate::helpers::single_workspace_config();
    let defaults = [
        ("listen = \"127.0.0.1:3000\"", "listen = \"127.0.0.1:0\""),
        (
            "public_url = \"http://127.0.0.1:3000\"",
            "public_url = \"http://127.0.0.1:0\"",
        ),
        (
            "local_listen = \"127.0.0.1:7181\"",
            "local_listen = \"127.0.0.1:0\"",
        ),
        (
            "# admin_listen = \"127.0.0.1:9300\"",
            "admin_listen = \"127.0.0.1:0\"",
        ),
        ("store = \"file\"", "store = \"memory\""),
        ("output = \"off\"", "output = \"stdout\""),
        ("format = \"text\"", "format = \"json\""),
    ];
    for (find, replace) in defaults.iter().chain(edits) {
        assert!(text.contains(find), "the demo config has no {find:?}");
        text = text.replacen(find, replace, 1);
    }
    text
}

/// A running `tinybird-bff serve`; killed when dropped.
pub struct Bin {
    child: Child,
    /// BFF base URL with a trailing slash.
    pub url: String,
    /// The Tinybird base URL the BFF uses (the embedded endpoint, or the configured host).
    pub tinybird: String,
    /// Admin listener base URL with a trailing slash.
    pub admin: String,
    /// Everything written to stdout and stderr so far, one line per line.
    output: Arc<Mutex<String>>,
    /// The temp directory holding the config and users file.
    pub dir: PathBuf,
}

impl Bin {
    /// Writes `config` and the demo users to a temp dir and starts `serve` with `env` and
    /// `RUST_LOG=trace`; returns once the process says where it serves.
    pub async fn serve(config: &str, env: &[(&str, &str)]) -> Bin {
        Self::serve_with_fd_limit(config, env, None).await
    }

    /// [`Bin::serve`], with the process's open-file limit (soft and hard) set to `nofile`
    /// (as a container or systemd unit sets it), through `prlimit`.
    pub async fn serve_with_fd_limit(
        config: &str,
        env: &[(&str, &str)],
        nofile: Option<u32>,
    ) -> Bin {
        let dir = std::env::temp_dir().join(format!("tbff-attacks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tinybird-bff.toml"), config).unwrap();
        std::fs::write(dir.join("users.toml"), tinybird_bff::demo::USERS).unwrap();
        let mut cmd = match nofile {
            None => Command::new(BIN),
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}")).arg("--").arg(BIN);
                cmd
            }
        };
        cmd.args(["serve", "--config", "tinybird-bff.toml"])
            .current_dir(&dir)
            .env("RUST_LOG", "trace")
            .env_remove("TINYBIRD_SIGNING_KEY_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stderr),
        ] {
            let output = Arc::clone(&output);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let serving = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Some(line) = output
                    .lock()
                    .unwrap()
                    .lines()
                    .find(|l| l.contains("tinybird-bff serving"))
                {
                    return serde_json::from_str::<Value>(line).unwrap();
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("serve exited with {status}: {}", output.lock().unwrap());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("serve did not start: {}", output.lock().unwrap()));
        let field = |name: &str| serving["fields"][name].as_str().unwrap_or("").to_owned();
        let admin = field("admin");
        let admin = admin.trim_start_matches("Some(").trim_end_matches(')');
        Bin {
            child,
            url: format!("{}/", field("app").trim_end_matches('/')),
            tinybird: field("tinybird"),
            admin: format!("http://{admin}/"),
            output,
            dir,
        }
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The process's resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Sends SIGTERM (as an orchestrator would).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal (`"TERM"`, `"HUP"`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub async fn wait(&mut self, limit: Duration) -> Option<i32> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("the process exits in time")
            .unwrap();
        status.code()
    }

    /// `/metrics` on the admin listener.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
