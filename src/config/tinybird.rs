//! `[tinybird]`: where Tinybird is, which workspace, and the key JWTs are signed with.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::Url;
use serde::Deserialize;

use super::problem::{EnvLookup, Problem, parse_addr, problem, read_secret};
use crate::tinybird::AdminToken;

/// `[tinybird]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinybirdConfig {
    /// A region's API host (`https://api.tinybird.co`, ...) or `"local"` for the embedded endpoint.
    pub host: String,
    /// Workspace UUID; read from the admin token when omitted.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Environment variable holding the admin token (or `<VAR>_FILE` naming a file with it).
    #[serde(default = "default_key_env")]
    pub signing_key_env: String,
    /// With `host = "local"`: where the embedded endpoint listens.
    #[serde(default = "default_local_listen")]
    pub local_listen: String,
    /// Pipes that exist in the workspace, so `check` can flag grants naming others.
    #[serde(default)]
    pub pipes: Option<Vec<String>>,
}

fn default_key_env() -> String {
    "TINYBIRD_SIGNING_KEY".into()
}
fn default_local_listen() -> String {
    "127.0.0.1:7181".into()
}

/// Where Tinybird is.
#[derive(Debug, Clone)]
pub enum TinybirdHost {
    /// A real Tinybird API host.
    Remote(Url),
    /// The embedded local endpoint, started in-process on this address.
    Local(SocketAddr),
}

/// `[tinybird]`, validated.
#[derive(Debug, Clone)]
pub struct TinybirdSettings {
    /// Tinybird host.
    pub host: TinybirdHost,
    /// Workspace id put in every JWT.
    pub workspace_id: String,
    /// Admin token = signing key.
    pub signing_key: AdminToken,
    /// Pipes known to exist (for checks), when known.
    pub known_pipes: Option<Vec<String>>,
}

/// Validates `[tinybird]`; the key comes from the environment (or the file it names, relative
/// to `base`), never the TOML.
pub fn validate(
    raw: &TinybirdConfig,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<TinybirdSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let host = if raw.host == "local" {
        parse_addr(&raw.local_listen, "tinybird.local_listen", &mut problems)
            .map(TinybirdHost::Local)
    } else {
        match Url::parse(&raw.host) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                Some(TinybirdHost::Remote(u))
            }
            _ => {
                problems.push(problem("tinybird.host", "must be your workspace's API host, e.g. \"https://api.tinybird.co\" or \"https://api.us-east.aws.tinybird.co\" (no path), or \"local\" for the embedded endpoint"));
                None
            }
        }
    };
    let signing_key = signing_key(&raw.signing_key_env, base, env, &mut problems);
    let workspace_id = match (
        &raw.workspace_id,
        signing_key.as_ref().and_then(AdminToken::workspace_id),
    ) {
        (Some(id), _) if !id.trim().is_empty() => Some(id.clone()),
        (_, Some(id)) => Some(id),
        _ => {
            if signing_key.is_some() {
                problems.push(problem("tinybird.workspace_id", "is required: the signing key does not carry a workspace id; copy the workspace UUID from Tinybird's UI"));
            }
            None
        }
    };
    let known_pipes = known_pipes(raw);
    match (host, signing_key, workspace_id) {
        (Some(host), Some(signing_key), Some(workspace_id)) if problems.is_empty() => {
            Ok(TinybirdSettings {
                host,
                workspace_id,
                signing_key,
                known_pipes,
            })
        }
        _ => Err(problems),
    }
}

/// The pipes the workspace has, when known: `pipes`, else the embedded ones for `"local"`.
/// Known even when other keys are wrong, so grants are checked in the same run.
pub fn known_pipes(raw: &TinybirdConfig) -> Option<Vec<String>> {
    raw.pipes
        .clone()
        .or_else(|| (raw.host == "local").then(crate::local::embedded_pipe_names))
}

/// The signing key from `$VAR`, or from the file named by `$VAR_FILE`.
fn signing_key(
    var: &str,
    base: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Option<AdminToken> {
    let key = match read_secret(var, base, env) {
        Ok(Some(key)) => key,
        Ok(None) => {
            let file_var = format!("{var}_FILE");
            problems.push(problem("tinybird.signing_key_env", format!("set {var} (or {file_var}) to the workspace admin token; it is never read from the TOML")));
            return None;
        }
        Err(message) => {
            problems.push(problem("tinybird.signing_key_env", message));
            return None;
        }
    };
    AdminToken::new(key)
        .map_err(|e| problems.push(problem(var, e.to_string())))
        .ok()
}
