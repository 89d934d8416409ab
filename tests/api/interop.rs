//! Clients we did not write, against the local endpoint: only the base URL changes.
//!
//! - curl, with `?token=` and with `Authorization: Bearer`, GET and form POST.
//! - PyJWT mints a token our server accepts, and verifies a token we signed.
//! - Tinybird's TypeScript SDK (`@tinybirdco/sdk`, pinned in tests/interop/package.json):
//!   `createTinybirdApi({ baseUrl, token }).query(...)` and `createJWT` (the Token API).
//!
//! Missing tools are failures with the command that installs them, never silent skips: CI
//! runs `pip install pyjwt` and `npm ci --prefix tests/interop` before the tests.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use tinybird_bff::tinybird::claims::{Claims, Limits, Scope};
use tokio::process::Command;

use crate::helpers::{WORKSPACE, admin_key_text, client, jwt_for, now, sign_claims, spawn_local};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs a child process with a time limit; panics with `install` if it cannot start.
async fn run(command: &mut Command, install: &str) -> Output {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let child = command.output();
    match tokio::time::timeout(Duration::from_secs(90), child).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("cannot run {command:?} ({err}): {install}"),
        Err(_) => panic!("{command:?} did not finish in 90 s"),
    }
}

fn stdout_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn org_ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .map(|r| r["org_id"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_only(orgs: &[String], org: &str) {
    assert!(!orgs.is_empty(), "no rows");
    assert!(
        orgs.iter().all(|o| o == org),
        "rows of other tenants: {orgs:?}"
    );
}

// ---- curl ----------------------------------------------------------------------------------

/// `curl -sS <args>`: the body and the status code.
async fn curl(args: &[&str]) -> (u16, String) {
    let output = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
            .args(args),
        "install curl",
    )
    .await;
    let text = stdout_of(&output, "curl");
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (
        status.trim().parse().expect("numeric status"),
        body.to_owned(),
    )
}

#[tokio::test]
async fn curl_reads_a_pipe_with_the_token_param_or_the_bearer_header() {
    let server = spawn_local().await;
    let token = jwt_for(
        "curl-user",
        &["top_products", "recent_orders"],
        Some("globex"),
    );
    let url = format!(
        "{}/v0/pipes/top_products.json?org_id=acme&limit=3&token={token}",
        server.url
    );
    let (status, body) = curl(&[&url]).await;
    assert_eq!(status, 200, "{body}");
    let by_param: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(by_param["rows"], 3);
    assert_only(&org_ids(&by_param), "globex");

    let bearer = format!("Authorization: Bearer {token}");
    let url = format!(
        "{}/v0/pipes/top_products.json?org_id=acme&limit=3",
        server.url
    );
    let (status, body) = curl(&["-H", &bearer, &url]).await;
    assert_eq!(status, 200, "{body}");
    let by_header: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(by_header["data"], by_param["data"]);

    // Form POST, as clients do when the URL gets long.
    let url = format!("{}/v0/pipes/recent_orders.json", server.url);
    let (status, body) = curl(&[
        "-H",
        &bearer,
        "--data-urlencode",
        "org_id=acme",
        "--data-urlencode",
        "limit=4",
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    let posted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(posted["rows"], 4);
    assert_only(&org_ids(&posted), "globex");

    let csv_url = format!("{}/v0/pipes/top_products.csv?limit=2", server.url);
    let (status, csv) = curl(&["-H", &bearer, &csv_url]).await;
    assert_eq!(status, 200);
    assert_eq!(
        csv.lines().next(),
        Some("product_id,product_name,units,revenue,org_id")
    );
    assert_eq!(csv.lines().count(), 3);

    let (status, body) = curl(&[
        "-H",
        &bearer,
        &format!("{}/v0/pipes/orgs_overview.json", server.url),
    ])
    .await;
    assert_eq!(status, 403);
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("orgs_overview")
    );
}

// ---- PyJWT ---------------------------------------------------------------------------------

const PYJWT: &str = r#"
import json, os, sys, time
import jwt
key = os.environ["TB_KEY"]
mode = sys.argv[1]
if mode == "mint":
    claims = {
        "workspace_id": os.environ["TB_WORKSPACE"],
        "name": "pyjwt-user",
        "exp": int(time.time()) + 600,
        "scopes": [{"type": "PIPES:READ", "resource": "top_products", "fixed_params": {"org_id": "initech"}}],
    }
    print(jwt.encode(claims, key, algorithm="HS256"))
elif mode == "decode":
    print(json.dumps(jwt.decode(os.environ["TB_TOKEN"], key, algorithms=["HS256"])))
elif mode == "decode-with-wrong-key":
    try:
        jwt.decode(os.environ["TB_TOKEN"], key + "x", algorithms=["HS256"])
        print("accepted")
    except jwt.InvalidSignatureError:
        print("rejected")
"#;

/// Runs the PyJWT script in `mode`; the key and token go through the environment, not argv.
async fn pyjwt(mode: &str, token: Option<&str>) -> String {
    let mut command = Command::new("python3");
    command
        .args(["-c", PYJWT, mode])
        .env("TB_KEY", admin_key_text())
        .env("TB_WORKSPACE", WORKSPACE);
    if let Some(token) = token {
        command.env("TB_TOKEN", token);
    }
    let output = run(&mut command, "install python3").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'jwt'"),
        "PyJWT is missing: run `pip install pyjwt`"
    );
    stdout_of(&output, "the PyJWT script").trim().to_owned()
}

#[tokio::test]
async fn a_token_minted_by_pyjwt_reads_only_its_tenant() {
    let server = spawn_local().await;
    let token = pyjwt("mint", None).await;
    assert_eq!(token.split('.').count(), 3, "{token}");
    let r = client()
        .get(format!(
            "{}/v0/pipes/top_products.json?org_id=acme",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_only(&org_ids(&body), "initech");
    let other = client()
        .get(format!(
            "{}/v0/pipes/recent_orders.json?token={token}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
}

#[tokio::test]
async fn pyjwt_verifies_a_token_we_signed() {
    let mut fixed = serde_json::Map::new();
    fixed.insert("org_id".into(), json!("acme"));
    let claims = Claims {
        workspace_id: WORKSPACE.into(),
        name: "alice@acme".into(),
        exp: now() + 600,
        iat: Some(now()),
        scopes: vec![Scope::pipe("top_products", fixed)],
        limits: Some(Limits { rps: 5 }),
    };
    let token = sign_claims(claims.clone());
    let decoded: Value = serde_json::from_str(&pyjwt("decode", Some(&token)).await).unwrap();
    assert_eq!(decoded, serde_json::to_value(&claims).unwrap());
    assert!(
        decoded["exp"].is_i64(),
        "an integer exp, as Tinybird requires"
    );
    assert_eq!(
        pyjwt("decode-with-wrong-key", Some(&token)).await,
        "rejected",
        "PyJWT really checks the signature"
    );
}

// ---- @tinybirdco/sdk -----------------------------------------------------------------------

#[tokio::test]
async fn tinybirds_typescript_sdk_queries_and_creates_tokens() {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@tinybirdco/sdk/package.json")
            .exists(),
        "{} is missing: run `npm ci --prefix tests/interop`",
        dir.join("node_modules").display()
    );
    let server = spawn_local().await;
    let token = jwt_for("sdk-user", &["top_products"], Some("globex"));
    let output = run(
        Command::new("node")
            .arg("sdk_query.mjs")
            .current_dir(&dir)
            .env("TB_BASE_URL", &server.url)
            .env("TB_TOKEN", &token)
            .env("TB_ADMIN_TOKEN", admin_key_text()),
        "install Node.js 20+",
    )
    .await;
    let out: Value = serde_json::from_str(stdout_of(&output, "node sdk_query.mjs").trim()).unwrap();

    // query(): the SDK's org_id=acme lost to the JWT's globex; its limit=5 was honoured.
    let query = &out["query"];
    assert_eq!(query["rows"], 5);
    assert_only(&org_ids(query), "globex");
    assert_eq!(
        query["meta"][0],
        json!({"name": "product_id", "type": "UInt32"})
    );
    assert!(query["statistics"]["elapsed"].is_number());

    // Errors surface as the SDK's TinybirdApiError with our status and message.
    assert_eq!(out["forbidden"]["status"], 403);
    assert!(
        out["forbidden"]["message"]
            .as_str()
            .unwrap()
            .contains("orgs_overview"),
        "{}",
        out["forbidden"]
    );

    // createJWT() went through POST /v0/tokens/ and the token it got back works.
    let created = out["created_token"].as_str().unwrap();
    assert_eq!(created.split('.').count(), 3);
    let created_query = &out["created_query"];
    assert_eq!(created_query["rows"], 7);
    assert_only(&org_ids(created_query), "initech");
}
