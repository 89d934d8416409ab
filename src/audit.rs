//! The audit log: one JSON line per minted token, login, failed login and logout.
//!
//! A token line says who got what for how long: user, tenant, pipes with their fixed params,
//! `exp`, the JWT `name`, and the SHA-256 (hex) of the token, so a token found in the wild can
//! be traced back, while the log itself never holds a usable credential. Lines go to stdout
//! or are appended to a file (`[audit] output`), one `write` each, so concurrent writers and
//! several instances appending to one file do not interleave lines.
//!
//! This module also holds `[log]`: the application log's format (`text` or `json`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::problem::Problem;
use crate::metrics::Metrics;
use crate::tinybird::ScopeType;
use crate::tinybird::mint::Minted;
use crate::user::User;

/// `[audit]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `"stdout"` (default), `"off"`, or a file path (relative to the config file) to append to.
    #[serde(default = "default_output")]
    pub output: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            output: default_output(),
        }
    }
}

fn default_output() -> String {
    "stdout".into()
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutput {
    /// Not written.
    Off,
    /// Standard output, one line each.
    Stdout,
    /// Standard error (the CLI, whose standard output is its answer; never from the config).
    Stderr,
    /// Appended to this file.
    File(PathBuf),
}

/// Validates `[audit]`; relative paths resolve against `base`.
pub fn validate(raw: &AuditConfig, base: &std::path::Path) -> Result<AuditOutput, Problem> {
    match raw.output.trim() {
        "off" => Ok(AuditOutput::Off),
        "stdout" | "-" => Ok(AuditOutput::Stdout),
        "" => Err(Problem {
            key: "audit.output".into(),
            message: "is empty: write \"stdout\", \"off\" or a file path such as \"/var/log/tinybird-bff/audit.jsonl\"".into(),
        }),
        path => Ok(AuditOutput::File(base.join(path))),
    }
}

/// `[log]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default, for people) or `"json"` (one object per line, for log pipelines).
    #[serde(default = "default_format")]
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_format(),
        }
    }
}

fn default_format() -> String {
    "text".into()
}

/// The application log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Validates `[log]`.
pub fn validate_log(raw: &LogConfig) -> Result<LogFormat, Problem> {
    match raw.format.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(Problem {
            key: "log.format".into(),
            message: "must be \"text\" or \"json\"".into(),
        }),
    }
}

enum Sink {
    Off,
    Stdout,
    Stderr,
    /// Guarded so one line is one `write_all` even with many tasks.
    File(Mutex<File>),
}

/// Writes audit lines; one per running BFF.
pub struct Audit {
    sink: Sink,
    metrics: Metrics,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

/// Hex SHA-256 of a token: how the audit log names a token without holding it.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Audit {
    /// Opens the output (creating the file, mode 0600, if needed).
    pub fn open(output: &AuditOutput, metrics: Metrics) -> anyhow::Result<Self> {
        let sink = match output {
            AuditOutput::Off => Sink::Off,
            AuditOutput::Stdout => Sink::Stdout,
            AuditOutput::Stderr => Sink::Stderr,
            AuditOutput::File(path) => {
                let mut options = OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(path).map_err(|e| {
                    anyhow::anyhow!(
                        "audit.output: cannot open {} for appending: {e}; check the directory exists and is writable",
                        path.display()
                    )
                })?;
                Sink::File(Mutex::new(file))
            }
        };
        Ok(Self { sink, metrics })
    }

    /// Writes one line: `time`, `event`, `user` and `tenant` when there is a user, then
    /// `fields` (a struct or map serialising to a JSON object), as one `write`.
    fn write(&self, event: &'static str, user: Option<&User>, fields: impl Serialize) {
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let line = Line {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event,
            who: user.map(|u| Who {
                user: &u.id,
                tenant: u.tenant.as_deref(),
            }),
            fields,
        };
        let mut text = match serde_json::to_vec(&line) {
            Ok(text) => text,
            Err(e) => {
                self.metrics.audit_write_error();
                tracing::error!(error = %e, event, "cannot encode an audit line");
                return;
            }
        };
        text.push(b'\n');
        // Audit lines carry hashes, never tokens; the scrub is the same last net as the logs'.
        let text = crate::redact::scrub_line(&text);
        let result = match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stdout => std::io::stdout().lock().write_all(&text),
            Sink::Stderr => std::io::stderr().lock().write_all(&text),
            Sink::File(file) => file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(&text),
        };
        if let Err(e) = result {
            self.metrics.audit_write_error();
            tracing::error!(error = %e, event, "cannot write the audit log");
        }
    }

    /// Any event a service words itself (`key.created`, ...; see `crate::keys::audit`): one
    /// line with `user` and `tenant` when there is a user, then `fields`.
    pub fn event(&self, event: &'static str, user: Option<&User>, fields: impl Serialize) {
        self.write(event, user, fields);
    }

    /// `usage.budget_warning`: a tenant's spending crossed `threshold` (a fraction) of its
    /// `budget`.
    pub fn budget_warning(
        &self,
        tenant: &str,
        budget: &str,
        threshold: f64,
        spent: u64,
        limit: u64,
    ) {
        #[derive(Serialize)]
        struct Fields<'a> {
            tenant: &'a str,
            budget: &'a str,
            threshold: f64,
            spent: u64,
            limit: u64,
        }
        self.write(
            "usage.budget_warning",
            None,
            Fields {
                tenant,
                budget,
                threshold,
                spent,
                limit,
            },
        );
    }

    /// `token.minted`: pipes with their fixed params, data sources with their SQL filters,
    /// `exp`, `name`, `token_sha256`.
    pub fn token_minted(&self, user: &User, minted: &Minted) {
        let claims = &minted.claims;
        let mut fields = TokenFields {
            pipes: Vec::with_capacity(claims.scopes.len()),
            fixed_params: BTreeMap::new(),
            datasources: BTreeMap::new(),
            exp: claims.exp,
            name: &claims.name,
            token_sha256: token_hash(&minted.token),
        };
        for scope in &claims.scopes {
            let resource = scope.resource.as_str();
            match scope.scope_type {
                ScopeType::PipesRead => {
                    fields.pipes.push(resource);
                    let params = ObjectOrEmpty(scope.fixed_params.as_ref());
                    fields.fixed_params.insert(resource, params);
                }
                ScopeType::DatasourcesRead => {
                    fields.datasources.insert(resource, scope.filter.as_deref());
                }
            }
        }
        self.write("token.minted", Some(user), fields);
    }

    /// `login`: a successful login from `client`.
    pub fn login(&self, user: &User, client: IpAddr) {
        self.write("login", Some(user), json!({ "client": client.to_string() }));
    }

    /// `login.failed`: `username` as typed (it may not exist), `reason` (`password`,
    /// `throttled`).
    pub fn login_failed(&self, username: &str, client: IpAddr, reason: &str) {
        let fields = json!({ "user": username, "client": client.to_string(), "reason": reason });
        self.write("login.failed", None, fields);
    }

    /// `logout`.
    pub fn logout(&self, user: &User) {
        self.write("logout", Some(user), json!({}));
    }

    /// `config.reloaded` (`ok`, the workspaces whose key changed, by fingerprint) or
    /// `config.reload_failed` (`problems`, as `check` prints them; nothing changed).
    pub fn config_reload(&self, outcome: Result<&[(String, String)], &[String]>) {
        match outcome {
            Ok(keys_changed) => {
                let keys: BTreeMap<&str, &str> = keys_changed
                    .iter()
                    .map(|(w, f)| (w.as_str(), f.as_str()))
                    .collect();
                self.write("config.reloaded", None, json!({ "keys_changed": keys }));
            }
            Err(problems) => {
                self.write(
                    "config.reload_failed",
                    None,
                    json!({ "problems": problems }),
                );
            }
        }
    }
}

/// The head every audit line starts with.
#[derive(Serialize)]
struct Line<'a, F> {
    time: String,
    event: &'static str,
    #[serde(flatten)]
    who: Option<Who<'a>>,
    #[serde(flatten)]
    fields: F,
}

#[derive(Serialize)]
struct Who<'a> {
    user: &'a str,
    tenant: Option<&'a str>,
}

/// `token.minted`'s own fields, borrowed from the minted claims.
#[derive(Serialize)]
struct TokenFields<'a> {
    pipes: Vec<&'a str>,
    fixed_params: BTreeMap<&'a str, ObjectOrEmpty<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    datasources: BTreeMap<&'a str, Option<&'a str>>,
    exp: i64,
    name: &'a str,
    token_sha256: String,
}

/// A pipe's fixed params, `{}` when it has none.
struct ObjectOrEmpty<'a>(Option<&'a Map<String, Value>>);

impl Serialize for ObjectOrEmpty<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(params) => params.serialize(s),
            None => s.serialize_map(Some(0))?.end(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tinybird::claims::{Claims, Scope};

    #[test]
    fn token_lines_carry_the_hash_never_the_token() {
        let path = std::env::temp_dir().join(format!("tbff-audit-{}.jsonl", uuid::Uuid::new_v4()));
        let audit = Audit::open(&AuditOutput::File(path.clone()), Metrics::new()).unwrap();
        let user = User {
            id: "alice".into(),
            tenant: Some("acme".into()),
            roles: vec![],
            attributes: Default::default(),
        };
        let mut fixed = Map::new();
        fixed.insert("org_id".into(), json!("acme"));
        let minted = Minted {
            token: "eyJ.secret-token.sig".into(),
            claims: Claims {
                workspace_id: "w".into(),
                name: "alice@acme".into(),
                exp: 1_900_000_000,
                iat: None,
                scopes: vec![Scope::pipe("top_products", fixed)],
                limits: None,
            },
        };
        audit.token_minted(&user, &minted);
        audit.login_failed("mallory", "10.0.0.9".parse().unwrap(), "password");
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(!text.contains("secret-token"));
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let t = &lines[0];
        assert_eq!(t["event"], "token.minted");
        assert_eq!(
            (t["user"].as_str(), t["tenant"].as_str()),
            (Some("alice"), Some("acme"))
        );
        assert_eq!(t["pipes"], json!(["top_products"]));
        assert_eq!(
            t["fixed_params"],
            json!({"top_products": {"org_id": "acme"}})
        );
        assert_eq!(
            (t["exp"].as_i64(), t["name"].as_str()),
            (Some(1_900_000_000), Some("alice@acme"))
        );
        assert_eq!(t["token_sha256"], token_hash("eyJ.secret-token.sig"));
        assert_eq!(t["token_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(lines[1]["event"], "login.failed");
        assert_eq!(lines[1]["user"], "mallory");
    }

    #[test]
    fn outputs_and_log_formats_validate() {
        let base = std::path::Path::new("/etc/bff");
        let out = |s: &str| validate(&AuditConfig { output: s.into() }, base);
        assert_eq!(out("stdout"), Ok(AuditOutput::Stdout));
        assert_eq!(out("off"), Ok(AuditOutput::Off));
        assert_eq!(
            out("audit.jsonl"),
            Ok(AuditOutput::File("/etc/bff/audit.jsonl".into()))
        );
        assert!(out(" ").is_err());
        assert_eq!(
            validate_log(&LogConfig {
                format: "json".into()
            }),
            Ok(LogFormat::Json)
        );
        assert!(
            validate_log(&LogConfig {
                format: "yaml".into()
            })
            .is_err()
        );
    }
}
