//! The real `tinybird-bff local` as a child process, for what only a process shows: whether
//! one query aborts it, and how much memory it keeps (issue #25, items 6, 8 and 10).
//!
//! The child runs under an address-space limit (`ulimit -v`, 4 GiB): a build that tries to
//! allocate a terabyte aborts at once (as it does on a machine without overcommit) instead of
//! eating the test machine's memory first.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tinybird_bff::tinybird::claims::{Claims, Scope, ScopeType};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{WORKSPACE, admin_key_text, now, sign_claims};

const BIN: &str = env!("CARGO_BIN_EXE_tinybird-bff");

/// Address space the child may map: far above what it needs (about 100 MB resident, plus
/// the translation threads' reserved stacks), far below a terabyte.
const ADDRESS_SPACE_KIB: u64 = 4 * 1024 * 1024;

/// A running `tinybird-bff local`; killed when dropped.
pub struct LocalProcess {
    child: Child,
    /// Base URL of the endpoint.
    pub url: String,
}

impl LocalProcess {
    /// Starts `tinybird-bff local` with `args` on a free port under the address-space limit.
    pub async fn start(args: &[&str]) -> LocalProcess {
        let script = format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\"");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script, BIN, "local", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("TINYBIRD_SIGNING_KEY", admin_key_text())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("tinybird:") {
                    return url.trim().to_owned();
                }
            }
            panic!("tinybird-bff local exited before it served")
        })
        .await
        .expect("the endpoint starts within a minute");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        LocalProcess { child, url }
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            / 1024
    }

    /// `POST /v0/sql` with `query` as the body and `token`: status and body.
    pub async fn sql(&self, token: &str, query: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/v0/sql", self.url))
            .bearer_auth(token)
            .body(query.to_owned())
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match response {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, format!("no answer: {e}")),
        }
    }

    /// Asserts the process is still running and answers a plain query.
    pub async fn assert_alive(&mut self, after: &str) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            self.exited().is_none(),
            "the endpoint died after {after}: {:?}",
            self.exited()
        );
        let (status, body) = self.sql(&alice(), "SELECT count() AS n FROM orders").await;
        assert_eq!(status, 200, "after {after}: {body}");
    }
}

/// Alice's JWT for SQL: `orders` filtered to her tenant (what the BFF mints for her).
pub fn alice() -> String {
    sign_claims(Claims {
        workspace_id: WORKSPACE.into(),
        name: "alice@acme".into(),
        exp: now() + 600,
        iat: None,
        scopes: vec![Scope {
            scope_type: ScopeType::DatasourcesRead,
            resource: "orders".into(),
            fixed_params: None,
            filter: Some("org_id = 'acme'".into()),
        }],
        limits: None,
    })
}

/// The error message of a Tinybird error body.
fn error_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

#[tokio::test]
async fn a_terabyte_repeat_is_a_400_not_an_abort() {
    let mut local = LocalProcess::start(&[]).await;
    let (status, body) = local
        .sql(
            &alice(),
            "SELECT repeat(repeat('x', 1048576), 1048576) AS s",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = error_of(&body);
    assert!(
        message.contains("repeat would build a value of 1099511627776 bytes")
            && message.contains("16777216 bytes per value"),
        "{message}"
    );
    local.assert_alive("repeat(repeat(...))").await;
}

#[tokio::test]
async fn a_result_larger_than_its_byte_budget_is_refused_and_memory_stays_bounded() {
    let mut local = LocalProcess::start(&[]).await;
    let before = local.rss_mib();
    // 200 rows of 1 MiB: 200 MiB of result, over the 64 MiB default.
    let q = "SELECT repeat('x', 1048576) AS s FROM orders LIMIT 200";
    let (status, body) = local.sql(&alice(), q).await;
    assert_eq!(status, 400, "{}", &body[..body.len().min(300)]);
    assert!(
        error_of(&body).contains("larger than the 67108864 bytes allowed"),
        "{body}"
    );
    let after = local.rss_mib();
    assert!(
        after < before + 200,
        "resident memory grew from {before} MiB to {after} MiB"
    );
    // A result within the budget still comes back whole.
    let q = "SELECT repeat('x', 1048576) AS s FROM orders LIMIT 20";
    let (status, body) = local.sql(&alice(), q).await;
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    local.assert_alive("a refused result").await;
}

#[tokio::test]
async fn unauthenticated_megabyte_posts_leave_no_memory_behind() {
    let local = LocalProcess::start(&[]).await;
    let http = reqwest::Client::new();
    let body = format!("q={}", "x".repeat(1024 * 1024 - 2));
    // Warm up the allocator and the connection pool with a few, then measure 300.
    for _ in 0..5 {
        let r = http
            .post(format!("{}/v0/sql", local.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let before = local.rss_mib();
    for _ in 0..300 {
        let r = http
            .post(format!("{}/v0/sql", local.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let after = local.rss_mib();
    assert!(
        after < before + 64,
        "300 unauthenticated 1 MB POSTs grew the endpoint from {before} MiB to {after} MiB"
    );
}

#[tokio::test]
async fn long_and_deep_sums_answer_or_are_refused_without_an_abort() {
    let mut local = LocalProcess::start(&[]).await;
    let sum = |terms: usize| format!("SELECT {} AS n", vec!["1"; terms].join("+"));
    // 700 terms (1.4 KB) overflowed an async worker's stack: SIGABRT.
    let (status, body) = local.sql(&alice(), &sum(700)).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["data"][0]["n"], json!("700"));
    // Past max_ast_depth (1000): a 400 that names the limit.
    let (status, body) = local.sql(&alice(), &sum(5000)).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("max_ast_depth"), "{body}");
    // The longest query the size limit allows, all one chain: refused, nothing overflows.
    let (status, body) = local.sql(&alice(), &sum(131_000)).await;
    assert_eq!(status, 400, "{body}");
    // Past max_query_size: refused before parsing.
    let (status, body) = local.sql(&alice(), &sum(140_000)).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("max_query_size"), "{body}");
    local.assert_alive("long sums").await;
}

#[tokio::test]
async fn limits_are_set_on_the_command_line_and_nonsense_is_refused() {
    let mut local = LocalProcess::start(&[
        "--max-value-bytes",
        "64KiB",
        "--max-ast-depth",
        "50",
        "--max-result-rows",
        "3",
    ])
    .await;
    let (status, body) = local.sql(&alice(), "SELECT repeat('x', 65537) AS s").await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("65536 bytes per value"), "{body}");
    let deep = format!("SELECT {} AS n", vec!["1"; 60].join("+"));
    let (status, body) = local.sql(&alice(), &deep).await;
    assert!(
        status == 400 && error_of(&body).contains("50 levels"),
        "{body}"
    );
    let (status, body) = local
        .sql(&alice(), "SELECT order_id FROM orders LIMIT 4")
        .await;
    assert!(
        status == 400 && error_of(&body).contains("more than 3 rows"),
        "{body}"
    );
    local.assert_alive("small limits").await;

    let refused = std::process::Command::new(BIN)
        .args([
            "local",
            "--max-ast-depth",
            "3",
            "--max-result-bytes",
            "lots",
        ])
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--max-result-bytes") && stderr.contains("not a size"),
        "{stderr}"
    );
    let refused = std::process::Command::new(BIN)
        .args(["local", "--max-ast-depth", "3"])
        .env("TINYBIRD_SIGNING_KEY", admin_key_text())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("--max-ast-depth 3 is too small"),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_sixty_term_sums_neither_hang_nor_starve_the_bff() {
    use crate::attacks::binary::{Bin, config};
    let bin = Bin::serve(&config(&[]), &[("TINYBIRD_SIGNING_KEY", &admin_key_text())]).await;
    // 127 bytes each; translated in 2^60 steps on an async worker, two of them held both.
    let q = format!("SELECT {} AS n", vec!["1"; 60].join("+"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sums: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, q) = (http.clone(), format!("{}/v0/sql", bin.tinybird), q.clone());
            tokio::spawn(async move {
                let r = http.post(url).bearer_auth(alice()).body(q).send().await;
                match r {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = http
        .get(format!("{}healthz", bin.url))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(
        health.as_ref().is_ok_and(|r| r.status() == 200),
        "the BFF's /healthz did not answer while two sums ran: {health:?}"
    );
    for sum in sums {
        let (status, body) = sum.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""n":"60""#), "{body}");
    }
}
