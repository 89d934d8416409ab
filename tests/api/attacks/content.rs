//! What the BFF sends back when the input is hostile: error bodies never reflect input as
//! HTML (every error on `/api/` and `/auth/` is the JSON envelope, nothing is `text/html`),
//! every page and asset carries the security headers (a CSP that still allows the direct
//! Tinybird origin, `nosniff`, `Referrer-Policy`, no framing), and API answers carry
//! `nosniff` and a CSP that runs nothing.

use reqwest::Method;

use super::{Reply, app, reply, session_cookie_for};
use crate::helpers::{TestApp, client};

const XSS: &str = "<script>alert(1)</script>";
const XSS_ENC: &str = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";

/// A request body: content type and text.
type Body = Option<(&'static str, String)>;

/// Sends `method path` with alice's cookie and the CSRF header, an optional body and type.
async fn hit(app: &TestApp, cookie: &str, method: Method, path: &str, body: Body) -> Reply {
    let mut r = client()
        .request(method, format!("{}{path}", app.url))
        .header("cookie", cookie)
        .header("x-bff-csrf", "1");
    if let Some((content_type, body)) = body {
        r = r.header("content-type", content_type).body(body);
    }
    reply(r.send().await.unwrap()).await
}

/// Every error: never HTML, never the raw payload outside JSON; on the API, the envelope.
/// Every API answer: `nosniff` and a CSP that runs nothing.
pub fn check_answer(failures: &mut Vec<String>, what: &str, path: &str, r: &Reply) {
    let api = path.starts_with("api/") || path.starts_with("auth/");
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let csp = header("content-security-policy");
    if api && (header("x-content-type-options") != "nosniff" || !csp.contains("sandbox")) {
        failures.push(format!(
            "{what}: API answer without nosniff and a sandbox CSP ({csp:?})"
        ));
    }
    if r.status < 400 {
        return;
    }
    let content_type = r.content_type().to_ascii_lowercase();
    if content_type.contains("html") {
        failures.push(format!("{what}: {} error as {content_type}", r.status));
    }
    let is_json = content_type.starts_with("application/json");
    if r.body.contains("<script") && !is_json {
        failures.push(format!(
            "{what}: reflected markup as {content_type:?}: {}",
            r.body
        ));
    }
    if api && !(is_json && r.json()["error"].is_string()) {
        failures.push(format!(
            "{what}: {} is not the JSON error envelope ({content_type:?}): {:.200}",
            r.status, r.body
        ));
    }
}

#[tokio::test]
async fn errors_never_reflect_input_as_html_and_api_errors_are_json() {
    let app = app().await;
    let cookie = session_cookie_for(&app, "alice").await;
    let json_login = |body: String| Some(("application/json", body));
    let cases: Vec<(&str, Method, String, Body)> = vec![
        ("web 404", Method::GET, XSS_ENC.to_owned(), None),
        ("api 404", Method::GET, format!("api/{XSS_ENC}"), None),
        (
            "auth 404",
            Method::GET,
            format!("auth/{XSS_ENC}/login?return_to=/{XSS_ENC}"),
            None,
        ),
        (
            "callback",
            Method::GET,
            format!("auth/x/callback?state={XSS_ENC}&code={XSS_ENC}"),
            None,
        ),
        (
            "pipe name",
            Method::GET,
            format!("api/pipes/{XSS_ENC}.json"),
            None,
        ),
        (
            "pipe format",
            Method::GET,
            format!("api/pipes/top_products.{XSS_ENC}"),
            None,
        ),
        (
            "param type",
            Method::GET,
            format!("api/pipes/top_products.json?days={XSS_ENC}"),
            None,
        ),
        ("sql", Method::GET, format!("api/sql?q={XSS_ENC}"), None),
        (
            "non-utf8 query",
            Method::GET,
            "api/pipes/top_products.json?days=%FF".into(),
            None,
        ),
        (
            "non-utf8 path",
            Method::GET,
            "api/pipes/%FF%FE.json".into(),
            None,
        ),
        (
            "non-utf8 return_to",
            Method::GET,
            "auth/x/login?return_to=%FF".into(),
            None,
        ),
        (
            "login user",
            Method::POST,
            "api/login".into(),
            json_login(format!(r#"{{"username":"{XSS}","password":"x"}}"#)),
        ),
        (
            "login unknown field",
            Method::POST,
            "api/login".into(),
            json_login(format!(r#"{{"{XSS}":1,"username":"a","password":"b"}}"#)),
        ),
        (
            "login bad json",
            Method::POST,
            "api/login".into(),
            json_login(format!("{{{XSS}")),
        ),
        (
            "login wrong type",
            Method::POST,
            "api/login".into(),
            json_login(format!(r#"{{"username":["{XSS}"],"password":1}}"#)),
        ),
        (
            "login as html",
            Method::POST,
            "api/login".into(),
            Some(("text/html", XSS.into())),
        ),
        (
            "login no type",
            Method::POST,
            "api/login".into(),
            Some(("", XSS.into())),
        ),
        (
            "login too big",
            Method::POST,
            "api/login".into(),
            json_login(format!(
                r#"{{"username":"{}","password":"x"}}"#,
                "<".repeat(3 << 20)
            )),
        ),
        (
            "proxy json body",
            Method::POST,
            "api/pipes/top_products.json".into(),
            json_login(format!(r#"{{"org_id":"{XSS}"}}"#)),
        ),
        (
            "proxy form non-utf8",
            Method::POST,
            "api/pipes/top_products.json".into(),
            Some(("application/x-www-form-urlencoded", "days=%FF".into())),
        ),
        ("method", Method::GET, "api/login".into(), None),
        ("method 2", Method::DELETE, "api/me".into(), None),
        (
            "method 3",
            Method::PUT,
            "api/pipes/top_products.json".into(),
            None,
        ),
        (
            "usage forbidden",
            Method::GET,
            "api/admin/usage".into(),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (what, method, path, body) in cases {
        let r = hit(&app, &cookie, method, &path, body).await;
        if r.status < 400 {
            failures.push(format!("{what}: hostile input accepted with {}", r.status));
        }
        check_answer(&mut failures, what, &path, &r);
    }
    // Logged out: the same envelope.
    for path in [
        "api/me",
        "api/pipes/top_products.json",
        "api/admin/usage",
        "api/sql?q=1",
    ] {
        let r = reply(
            client()
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        check_answer(&mut failures, "logged out", path, &r);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}

/// The npm package's own files under web/, which the binary does not serve.
fn package_only(name: &str) -> bool {
    name.ends_with(".md") || name.ends_with(".d.ts") || name.ends_with("package.json")
}

/// Every file under web/ (the page and its assets), as the binary embeds them.
fn web_files() -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if !package_only(&path.to_string_lossy()) {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn the_npm_package_files_are_not_served() {
    let app = app().await;
    for path in [
        "package.json",
        "tinybird-bff.d.ts",
        "react.d.ts",
        "README.md",
    ] {
        assert!(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("web")
                .join(path)
                .exists()
        );
        let r = client()
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} is served");
    }
    let r = client()
        .get(format!("{}tinybird-bff.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn every_page_and_asset_carries_the_security_headers() {
    let app = app().await;
    let files = web_files();
    assert!(files.iter().any(|f| f == "index.html"), "{files:?}");
    let mut failures = Vec::new();
    let paths = std::iter::once(String::new())
        .chain(files)
        .chain(["no-such-page.html".to_owned(), format!("{XSS_ENC}.html")]);
    for path in paths {
        let r = reply(
            client()
                .get(format!("{}{path}", app.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let what = if path.is_empty() { "/" } else { path.as_str() };
        let header = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            if !csp.contains(directive) {
                failures.push(format!("{what}: CSP lacks {directive:?}: {csp:?}"));
            }
        }
        if !csp.contains(&format!("connect-src 'self' {}", app.tinybird)) {
            failures.push(format!(
                "{what}: CSP does not allow the direct Tinybird origin: {csp:?}"
            ));
        }
        if csp.contains("unsafe-inline") || csp.contains("unsafe-eval") {
            failures.push(format!("{what}: CSP allows inline or eval: {csp:?}"));
        }
        for (name, want) in [
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            if header(name) != want {
                failures.push(format!("{what}: {name} is {:?}", header(name)));
            }
        }
        if r.status == 200 && header("x-content-type-options") != "nosniff" {
            failures.push(format!("{what}: no nosniff"));
        }
        let is_html = r.content_type().starts_with("text/html");
        if r.status == 200 && is_html != (what == "/" || what.ends_with(".html")) {
            failures.push(format!("{what}: served as {:?}", r.content_type()));
        }
        if r.status != 200 && (is_html || r.body.contains("<script")) {
            failures.push(format!(
                "{what}: {} answered as {:?}: {}",
                r.status,
                r.content_type(),
                r.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.stop().await;
}
