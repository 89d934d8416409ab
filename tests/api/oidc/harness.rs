//! The OIDC tests' world: a real OpenID Provider (panva/oidc-provider in
//! `tests/oidc-provider/`, a Node process) and a BFF configured to use it, on free ports.
//!
//! Order matters: the provider must know the BFF's callback URL and the BFF the provider's
//! issuer, so the BFF's port is bound first, then the provider starts, then the BFF serves.

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use reqwest::Url;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tinybird_bff::config::Settings;
use tinybird_bff::http::{App, AppState};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{LocalServer, admin_key_text, cookie_client, spawn_local};

/// The audience the provider's JWT access tokens carry (its one resource server).
pub const RESOURCE: &str = "https://api.tinybird-bff.test";
/// Where the `spa` client is sent back to (never served: the code is read from the URL).
const SPA_REDIRECT: &str = "http://localhost:1/spa-callback";

/// A running provider process (killed on drop).
pub struct IdP {
    /// Its issuer URL (no trailing slash).
    pub issuer: String,
    _child: Child,
    http: reqwest::Client,
}

impl IdP {
    /// Starts `tests/oidc-provider/provider.mjs` and waits for its issuer line.
    pub async fn start(redirect_uris: &[String], post_logout: &[String]) -> IdP {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .exists(),
            "the test provider's packages are missing: run `npm ci --prefix tests/oidc-provider`"
        );
        let mut cmd = Command::new("node");
        cmd.arg(format!("{dir}/provider.mjs")).args(["--port", "0"]);
        for uri in redirect_uris {
            cmd.args(["--redirect-uri", uri]);
        }
        for uri in post_logout {
            cmd.args(["--post-logout-redirect-uri", uri]);
        }
        let verbose = std::env::var_os("TEST_IDP_LOG").is_some();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if verbose {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (install Node.js 18+)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
            .await
            .expect("the provider starts within 20 s")
            .unwrap()
            .expect("the provider prints its issuer");
        // Keep reading: the provider logs to stdout, and a closed pipe would kill it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if verbose {
                    println!("provider: {line}");
                }
            }
        });
        let started: Value = serde_json::from_str(&line).expect("the provider prints its issuer");
        IdP {
            issuer: started["issuer"].as_str().unwrap().to_owned(),
            _child: child,
            http: cookie_client(),
        }
    }

    async fn dev(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/dev/{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "dev/{path}");
        r.json().await.unwrap()
    }

    /// How many times the provider's JWKS was fetched.
    pub async fn jwks_fetches(&self) -> u64 {
        let r = self
            .http
            .get(format!("{}/dev/stats", self.issuer))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["jwks_fetches"]
            .as_u64()
            .unwrap()
    }

    /// Publishes new keys under new kids and signs with them from now on.
    pub async fn rotate_keys(&self) {
        self.dev("rotate", json!({})).await;
    }

    /// Makes the JWKS endpoint fail (or work again).
    pub async fn jwks_failing(&self, on: bool) {
        self.dev("jwks-fail", json!({ "on": on })).await;
    }

    /// Signs `claims` (see provider.mjs for `key`: current, unknown, hs256-public, none).
    pub async fn sign(&self, claims: Value, alg: &str, key: &str, header: Value) -> String {
        let r = self
            .dev(
                "sign",
                json!({"claims": claims, "alg": alg, "key": key, "header": header}),
            )
            .await;
        r["token"].as_str().unwrap().to_owned()
    }

    /// The next ID token the provider issues loses `drop` and gains `set`.
    pub async fn tamper_next_id_token(&self, drop: &[&str], set: Value) {
        self.dev("tamper-id-token", json!({"drop": drop, "set": set}))
            .await;
    }

    /// Logs `account` in to the `spa` client (code flow, PKCE, resource indicator) and returns
    /// the JWT access token the provider issues for [`RESOURCE`].
    pub async fn spa_access_token(&self, account: &str) -> String {
        let browser = cookie_client();
        let verifier = "spa-verifier-0123456789-0123456789-0123456789";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let mut start = Url::parse(&format!("{}/auth", self.issuer)).unwrap();
        start
            .query_pairs_mut()
            .append_pair("client_id", "spa")
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", SPA_REDIRECT)
            .append_pair("scope", "openid pipes:read")
            .append_pair("resource", RESOURCE)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "spa-state");
        let back = drive_login(&browser, start, account, SPA_REDIRECT).await;
        let code = query_param(&back, "code").expect("the provider returns a code");
        let r = browser
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", SPA_REDIRECT),
                ("code_verifier", verifier),
                ("client_id", "spa"),
                ("resource", RESOURCE),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        let token = body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(token.split('.').count(), 3, "a JWT access token: {body}");
        token.to_owned()
    }
}

/// A query parameter of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Follows a browser through the provider from `start`: redirects, the login form (as
/// `account`) and the consent form, until a redirect leads to a URL starting with `stop`,
/// which is returned unvisited.
pub async fn drive_login(browser: &reqwest::Client, start: Url, account: &str, stop: &str) -> Url {
    let mut next = start;
    for _ in 0..20 {
        let r = browser.get(next.clone()).send().await.unwrap();
        let page = next.clone();
        if r.status().is_redirection() {
            next = location(&page, &r);
        } else {
            let status = r.status();
            let html = r.text().await.unwrap();
            assert_eq!(status, 200, "{page}: {html}");
            let action = page.join(&attribute(&html, "action=\"")).unwrap();
            let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
                vec![("prompt", "login"), ("login", account), ("password", "any")]
            } else if html.contains("value=\"consent\"") {
                vec![("prompt", "consent")]
            } else {
                panic!("unexpected provider page {page}: {html}");
            };
            let r = browser
                .post(action.clone())
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_redirection(), "form {action}: {}", r.status());
            next = location(&action, &r);
        }
        if next.as_str().starts_with(stop) {
            return next;
        }
    }
    panic!("the provider never redirected to {stop}");
}

/// A redirect's target, resolved against the page it came from.
pub fn location(page: &Url, r: &reqwest::Response) -> Url {
    let to = r.headers()["location"].to_str().unwrap();
    page.join(to).unwrap()
}

/// The value of the first `name"..."` attribute in `html` (HTML-unescaped for `&amp;`).
pub fn attribute(html: &str, name: &str) -> String {
    let start = html
        .find(name)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + name.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

/// A BFF configured with the provider as `[oidc.test]` and no local users.
pub struct OidcApp {
    /// BFF base URL, no trailing slash.
    pub url: String,
    /// The handlers' state (for health checks).
    pub state: AppState,
    /// The provider.
    pub idp: IdP,
    /// A browser: keeps cookies, does not follow redirects.
    pub browser: reqwest::Client,
    /// The local Tinybird endpoint tokens are minted for.
    pub tinybird: LocalServer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for OidcApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The BFF config under test: OIDC only, the demo's grants.
fn config(public_url: &str, issuer: &str) -> String {
    format!(
        r#"
public_url = "{public_url}"
[tinybird]
host = "local"
[session]
store = "memory"
[audit]
output = "off"

[oidc.test]
issuer = "{issuer}"
display_name = "Test IdP"
client_id = "bff"
client_secret_env = "TEST_IDP_SECRET"
scopes = ["openid", "profile", "tenant", "roles"]
userinfo = true
bearer_audiences = ["{RESOURCE}"]
leeway = "5s"
jwks_cooldown = "1s"
[oidc.test.claims]
tenant = "https://tinybird-bff.test/tenant"
roles = "roles"
attributes = {{ org_name = "org.name" }}

[[grants]]
name = "tenant-dashboards"
pipes = ["top_products", "sales_by_day", "recent_orders"]
match = {{ roles = ["viewer", "admin"] }}
fixed_params = {{ org_id = "{{{{ user.tenant }}}}" }}

[[grants]]
name = "platform-admin"
pipes = ["orgs_overview"]
match = {{ roles = ["admin"] }}
"#
    )
}

/// Starts the provider and a BFF that uses it.
pub async fn spawn_oidc_app() -> OidcApp {
    spawn_oidc_app_with(|config| config, None).await
}

/// Same, with the config text `edit`ed and, when given, local `users` beside the provider.
pub async fn spawn_oidc_app_with(
    edit: impl FnOnce(String) -> String,
    users: Option<tinybird_bff::auth::users::UserDirectory>,
) -> OidcApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let idp = IdP::start(&[format!("{url}/auth/test/callback")], &[format!("{url}/")]).await;
    let tinybird = spawn_local().await;
    let key = admin_key_text();
    let env = move |name: &str| match name {
        "TINYBIRD_SIGNING_KEY" => Some(key.clone()),
        "TEST_IDP_SECRET" => Some("bff-secret".to_owned()),
        _ => None,
    };
    let settings = Settings::from_toml(
        &edit(config(&url, &idp.issuer)),
        "oidc-test.toml",
        std::path::Path::new("."),
        &env,
        users,
    )
    .unwrap_or_else(|p| panic!("config problems: {p:#?}"));
    let workspace =
        tinybird_bff::run::in_force(&settings.tinybird.workspaces[0], tinybird.url.clone(), 0);
    let workspaces = tinybird_bff::tinybird::workspaces::Workspaces::new(vec![workspace], None);
    let state = App::new(settings, workspaces).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tinybird_bff::http::serve(
        std::sync::Arc::clone(&state),
        listener,
        tinybird_contract::serve::ConnLimits::default(),
        async move {
            let _ = rx.await;
        },
    ));
    OidcApp {
        url,
        state,
        idp,
        browser: cookie_client(),
        tinybird,
        stop: Some(tx),
    }
}

impl OidcApp {
    /// `GET /auth/test/login?return_to=...` → the provider's authorization URL.
    pub async fn start_login(&self, return_to: &str) -> reqwest::Response {
        self.browser
            .get(format!("{}/auth/test/login", self.url))
            .query(&[("return_to", return_to)])
            .send()
            .await
            .unwrap()
    }

    /// The whole browser login as `account`; returns the callback URL the provider sent.
    pub async fn provider_redirect(&self, account: &str, return_to: &str) -> Url {
        let r = self.start_login(return_to).await;
        assert_eq!(r.status(), 303, "login start");
        let authorize = location(&Url::parse(&self.url).unwrap(), &r);
        drive_login(
            &self.browser,
            authorize,
            account,
            &format!("{}/auth/test/callback", self.url),
        )
        .await
    }

    /// Visits the BFF callback; returns the response.
    pub async fn callback(&self, url: &Url) -> reqwest::Response {
        self.browser.get(url.clone()).send().await.unwrap()
    }

    /// `POST /api/token` with `Authorization: Bearer` and nothing else (no cookie, no CSRF).
    pub async fn bearer_token(&self, bearer: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/token", self.url))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}
