//! `[tinybird]`: where Tinybird is, which workspace, and the key JWTs are signed with.
//!
//! One workspace is written as `[tinybird]` with `host`, `workspace_id` and `signing_key_env`.
//! Several (EU and US tenants, a region move) are `[tinybird.workspaces.<name>]` tables with
//! the same keys, and `[tinybird] workspace`, a template over the user that renders the name
//! of the workspace a user's tokens are for (e.g. `"{{ user.attributes.region }}"`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use reqwest::Url;
use serde::Deserialize;

use super::problem::{EnvLookup, Problem, parse_addr, problem, read_secret};
use crate::tinybird::AdminToken;
use crate::tinybird::mint::NameTemplate;

/// `[tinybird]` as written: one workspace, or `workspaces` and the `workspace` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinybirdConfig {
    /// The one workspace's keys, when `workspaces` is not used.
    #[serde(flatten)]
    pub single: WorkspaceConfig,
    /// Several workspaces, by name.
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceConfig>,
    /// With `workspaces`: a template over the user naming their workspace.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// One workspace as written (`[tinybird]` or `[tinybird.workspaces.<name>]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    /// A region's API host (`https://api.tinybird.co`, ...) or `"local"` for the embedded endpoint.
    #[serde(default)]
    pub host: Option<String>,
    /// Workspace UUID; read from the admin token when omitted.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Environment variable holding the admin token (or `<VAR>_FILE` naming a file with it).
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// With `host = "local"`: where the embedded endpoint listens.
    #[serde(default)]
    pub local_listen: Option<String>,
    /// Pipes that exist in the workspace, so `check` can flag grants naming others.
    #[serde(default)]
    pub pipes: Option<Vec<String>>,
}

/// The name of the workspace written as `[tinybird]` alone.
pub const SINGLE_WORKSPACE: &str = "default";
const DEFAULT_KEY_ENV: &str = "TINYBIRD_SIGNING_KEY";
const DEFAULT_LOCAL_LISTEN: &str = "127.0.0.1:7181";

/// Where Tinybird is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TinybirdHost {
    /// A real Tinybird API host.
    Remote(Url),
    /// The embedded local endpoint, started in-process on this address.
    Local(SocketAddr),
}

/// One workspace, validated.
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    /// Its name in the config (`default` for a lone `[tinybird]`).
    pub name: String,
    /// Tinybird host.
    pub host: TinybirdHost,
    /// Workspace id put in every JWT.
    pub workspace_id: String,
    /// Admin token = signing key.
    pub signing_key: AdminToken,
    /// Where the key was read from (`$VAR` or the file `$VAR_FILE` names), for reload messages.
    pub key_source: KeySource,
    /// Pipes known to exist (for checks), when known.
    pub known_pipes: Option<Vec<String>>,
}

/// Where a signing key comes from, so a reload can watch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The environment variable (read once: the environment cannot change under a process).
    Env(String),
    /// A file (`<VAR>_FILE`), read again on every reload.
    File(std::path::PathBuf),
}

/// `[tinybird]`, validated.
#[derive(Debug, Clone)]
pub struct TinybirdSettings {
    /// Every workspace, in name order (one for a lone `[tinybird]`).
    pub workspaces: Vec<WorkspaceSettings>,
    /// Which workspace a user's tokens are for; `None` with one workspace.
    pub rule: Option<NameTemplate>,
}

impl TinybirdSettings {
    /// The only workspace, or the first: the one tests and one-workspace setups change.
    pub fn first_mut(&mut self) -> &mut WorkspaceSettings {
        &mut self.workspaces[0]
    }
}

impl TinybirdSettings {
    /// The workspace `user`'s tokens are for, and why (for `mint --explain`); or why none.
    pub fn for_user(
        &self,
        user: &crate::user::User,
    ) -> Result<(&WorkspaceSettings, String), String> {
        let Some(rule) = &self.rule else {
            return Ok((&self.workspaces[0], "the only workspace".into()));
        };
        let name = rule
            .render(user)
            .map_err(|e| format!("tinybird.workspace = {:?}: {e}", rule.source()))?;
        let why = format!("tinybird.workspace = {:?} renders {name:?}", rule.source());
        match self.workspaces.iter().find(|w| w.name == name) {
            Some(w) => Ok((w, why)),
            None => Err(format!("{why}, which is not a workspace")),
        }
    }

    /// For each local user: the workspace rule names one of the workspaces, and every pipe
    /// their grants give exists there (when its pipes are known). What `check` can know
    /// before anyone logs in; users of identity providers are checked at their first token.
    pub fn check_users(
        &self,
        users: &crate::auth::users::UserDirectory,
        grants: &crate::grants::Grants,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        for id in users.ids() {
            let Some(record) = users.get(id) else {
                continue;
            };
            let user = &record.user;
            let workspace = match self.for_user(user) {
                Ok((w, _)) => w,
                Err(why) => {
                    problems.push(problem(
                        "tinybird.workspace",
                        format!("user {id}: {why}; every user needs a workspace"),
                    ));
                    continue;
                }
            };
            let (Some(known), Ok(access)) = (&workspace.known_pipes, grants.evaluate(user)) else {
                continue;
            };
            for pipe in &access.pipes {
                if !known.contains(&pipe.pipe) {
                    problems.push(problem(
                        format!("grants ({}).pipes", pipe.grants.join(", ")),
                        format!(
                            "pipe {:?} does not exist in workspace {:?}, user {id}'s workspace",
                            pipe.pipe, workspace.name
                        ),
                    ));
                }
            }
        }
        problems.sort_by(|a, b| (&a.key, &a.message).cmp(&(&b.key, &b.message)));
        problems.dedup_by(|a, b| a.key == b.key && a.message == b.message);
        problems
    }
}

/// Validates `[tinybird]`; keys come from the environment (or the files it names, relative
/// to `base`), never the TOML.
pub fn validate(
    raw: &TinybirdConfig,
    base: &Path,
    env: EnvLookup<'_>,
) -> Result<TinybirdSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut workspaces = Vec::new();
    let rule = if raw.workspaces.is_empty() {
        if raw.workspace.is_some() {
            problems.push(problem("tinybird.workspace", "names a workspace among [tinybird.workspaces.<name>]; without those tables, remove it"));
        }
        if let Some(ws) = validate_workspace(
            SINGLE_WORKSPACE,
            "tinybird",
            &raw.single,
            base,
            env,
            &mut problems,
        ) {
            workspaces.push(ws);
        }
        None
    } else {
        if raw.single.host.is_some()
            || raw.single.workspace_id.is_some()
            || raw.single.signing_key_env.is_some()
            || raw.single.local_listen.is_some()
            || raw.single.pipes.is_some()
        {
            problems.push(problem("tinybird", "with [tinybird.workspaces.<name>], write host, workspace_id, signing_key_env, local_listen and pipes in each workspace's table, not in [tinybird]"));
        }
        for (name, ws) in &raw.workspaces {
            if !valid_name(name) {
                problems.push(problem(
                    format!("tinybird.workspaces.{name}"),
                    "a workspace name is letters, digits, '-' and '_'",
                ));
                continue;
            }
            let key = format!("tinybird.workspaces.{name}");
            if ws.signing_key_env.is_none() {
                problems.push(problem(format!("{key}.signing_key_env"), "is required with several workspaces: each has its own admin token, e.g. \"TB_KEY_EU\""));
                continue;
            }
            if let Some(ws) = validate_workspace(name, &key, ws, base, env, &mut problems) {
                workspaces.push(ws);
            }
        }
        duplicates(&workspaces, &mut problems);
        match raw.workspace.as_deref() {
            None if raw.workspaces.len() > 1 => {
                problems.push(problem("tinybird.workspace", format!("is required with several workspaces: a template over the user that renders one of {}, e.g. \"{{{{ user.attributes.region }}}}\"", names(raw))));
                None
            }
            None => None,
            Some(source) => NameTemplate::compile(source)
                .map_err(|e| problems.push(problem("tinybird.workspace", e.to_string())))
                .ok(),
        }
    };
    if problems.is_empty() {
        Ok(TinybirdSettings { workspaces, rule })
    } else {
        Err(problems)
    }
}

fn names(raw: &TinybirdConfig) -> String {
    raw.workspaces
        .keys()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Two workspaces with one key or one local address would sign for each other.
fn duplicates(workspaces: &[WorkspaceSettings], problems: &mut Vec<Problem>) {
    for (i, a) in workspaces.iter().enumerate() {
        for b in &workspaces[i + 1..] {
            if a.signing_key
                .matches(secrecy::ExposeSecret::expose_secret(b.signing_key.secret()))
            {
                problems.push(problem(format!("tinybird.workspaces.{}", b.name), format!("has the same signing key as workspace {:?}: each workspace has its own admin token", a.name)));
            }
            if a.workspace_id == b.workspace_id {
                problems.push(problem(
                    format!("tinybird.workspaces.{}", b.name),
                    format!("has the same workspace id as workspace {:?}", a.name),
                ));
            }
            if matches!((&a.host, &b.host), (TinybirdHost::Local(x), TinybirdHost::Local(y)) if x == y && x.port() != 0)
            {
                problems.push(problem(
                    format!("tinybird.workspaces.{}.local_listen", b.name),
                    format!("is the same address as workspace {:?}'s", a.name),
                ));
            }
        }
    }
}

fn validate_workspace(
    name: &str,
    key: &str,
    raw: &WorkspaceConfig,
    base: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Option<WorkspaceSettings> {
    let before = problems.len();
    let host = match raw.host.as_deref() {
        None => {
            problems.push(problem(format!("{key}.host"), "is required: your workspace's API host, e.g. \"https://api.tinybird.co\", or \"local\" for the embedded endpoint"));
            None
        }
        Some("local") => parse_addr(
            raw.local_listen.as_deref().unwrap_or(DEFAULT_LOCAL_LISTEN),
            &format!("{key}.local_listen"),
            problems,
        )
        .map(TinybirdHost::Local),
        Some(host) => match Url::parse(host) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                Some(TinybirdHost::Remote(u))
            }
            _ => {
                problems.push(problem(format!("{key}.host"), "must be your workspace's API host, e.g. \"https://api.tinybird.co\" or \"https://api.us-east.aws.tinybird.co\" (no path), or \"local\" for the embedded endpoint"));
                None
            }
        },
    };
    let var = raw.signing_key_env.as_deref().unwrap_or(DEFAULT_KEY_ENV);
    let key_read = signing_key(var, &format!("{key}.signing_key_env"), base, env, problems);
    let workspace_id = match (
        &raw.workspace_id,
        key_read.as_ref().and_then(|(k, _)| k.workspace_id()),
    ) {
        (Some(id), Some(from_key)) if !id.trim().is_empty() && *id != from_key => {
            problems.push(problem(format!("{key}.workspace_id"), format!("is {id:?} but ${var} is the admin token of workspace {from_key:?}: is it the other workspace's key?")));
            None
        }
        (Some(id), _) if !id.trim().is_empty() => Some(id.clone()),
        (_, Some(id)) => Some(id),
        _ => {
            if key_read.is_some() {
                problems.push(problem(format!("{key}.workspace_id"), "is required: the signing key does not carry a workspace id; copy the workspace UUID from Tinybird's UI"));
            }
            None
        }
    };
    match (host, key_read, workspace_id) {
        (Some(host), Some((signing_key, key_source)), Some(workspace_id))
            if problems.len() == before =>
        {
            Some(WorkspaceSettings {
                name: name.to_owned(),
                host,
                workspace_id,
                signing_key,
                key_source,
                known_pipes: known_pipes_of(raw),
            })
        }
        _ => None,
    }
}

/// The pipes each workspace has, when known: `pipes`, else the embedded ones for `"local"`.
/// Known even when other keys are wrong, so grants are checked in the same run.
pub fn known_pipes(raw: &TinybirdConfig) -> Vec<(String, Option<Vec<String>>)> {
    if raw.workspaces.is_empty() {
        vec![(SINGLE_WORKSPACE.to_owned(), known_pipes_of(&raw.single))]
    } else {
        raw.workspaces
            .iter()
            .map(|(name, ws)| (name.clone(), known_pipes_of(ws)))
            .collect()
    }
}

fn known_pipes_of(raw: &WorkspaceConfig) -> Option<Vec<String>> {
    raw.pipes.clone().or_else(|| {
        (raw.host.as_deref() == Some("local")).then(tinybird_local::embedded_pipe_names)
    })
}

/// The signing key from `$VAR`, or from the file named by `$VAR_FILE`.
fn signing_key(
    var: &str,
    key: &str,
    base: &Path,
    env: EnvLookup<'_>,
    problems: &mut Vec<Problem>,
) -> Option<(AdminToken, KeySource)> {
    let file_var = format!("{var}_FILE");
    let source = match env(&file_var) {
        Some(file) if env(var).is_none() => KeySource::File(base.join(file)),
        _ => KeySource::Env(var.to_owned()),
    };
    let text = match read_secret(var, base, env) {
        Ok(Some(text)) => text,
        Ok(None) => {
            problems.push(problem(key, format!("set {var} (or {file_var}) to the workspace admin token; it is never read from the TOML")));
            return None;
        }
        Err(message) => {
            problems.push(problem(key, message));
            return None;
        }
    };
    let token = AdminToken::new(text)
        .map_err(|e| problems.push(problem(var, e.to_string())))
        .ok()?;
    if !secrecy::ExposeSecret::expose_secret(token.secret()).starts_with("p.") {
        problems.push(problem(var, "is not a Tinybird admin token (they start with \"p.\"): copy the workspace's admin token from its Tokens page"));
        return None;
    }
    Some((token, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ws: &str) -> String {
        secrecy::ExposeSecret::expose_secret(AdminToken::generate(ws).secret()).to_owned()
    }

    fn validate_toml(text: &str, env: &[(&str, String)]) -> Result<TinybirdSettings, String> {
        let raw: TinybirdConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let env = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        validate(&raw, Path::new("."), &env).map_err(|problems| {
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn one_workspace_is_a_lone_tinybird_table() {
        let env = [("TINYBIRD_SIGNING_KEY", key("ws-1"))];
        let settings = validate_toml("host = \"https://api.tinybird.co\"", &env).unwrap();
        assert_eq!(settings.workspaces.len(), 1);
        assert_eq!(settings.workspaces[0].name, SINGLE_WORKSPACE);
        assert_eq!(settings.workspaces[0].workspace_id, "ws-1");
        assert!(settings.rule.is_none());
    }

    #[test]
    fn several_workspaces_need_a_rule_their_own_keys_and_nothing_at_the_top() {
        let env = [("K_EU", key("ws-eu")), ("K_US", key("ws-us"))];
        let two = "[workspaces.eu]\nhost = \"https://api.tinybird.co\"\nsigning_key_env = \"K_EU\"\n\
                   [workspaces.us]\nhost = \"https://api.us-east.aws.tinybird.co\"\nsigning_key_env = \"K_US\"\n";
        let err = validate_toml(two, &env).unwrap_err();
        assert!(
            err.contains("tinybird.workspace: is required with several workspaces"),
            "{err}"
        );
        let ok = validate_toml(
            &format!("workspace = \"{{{{ user.attributes.region }}}}\"\n{two}"),
            &env,
        )
        .unwrap();
        assert_eq!(
            ok.workspaces
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>(),
            ["eu", "us"]
        );
        let err = validate_toml(
            &format!("host = \"local\"\nworkspace = \"eu\"\n{two}"),
            &env,
        )
        .unwrap_err();
        assert!(
            err.contains("write host, workspace_id, signing_key_env"),
            "{err}"
        );
        let err = validate_toml(
            "workspace = \"eu\"\nhost = \"local\"",
            &[("TINYBIRD_SIGNING_KEY", key("w"))],
        )
        .unwrap_err();
        assert!(
            err.contains("tinybird.workspace: names a workspace among"),
            "{err}"
        );
        let no_key = "workspace = \"eu\"\n[workspaces.eu]\nhost = \"local\"";
        let err = validate_toml(no_key, &env).unwrap_err();
        assert!(
            err.contains("tinybird.workspaces.eu.signing_key_env: is required"),
            "{err}"
        );
        let bad_name = "workspace = \"e u\"\n[workspaces.\"e u\"]\nhost = \"local\"\nsigning_key_env = \"K_EU\"";
        assert!(
            validate_toml(bad_name, &env)
                .unwrap_err()
                .contains("letters, digits")
        );
    }

    #[test]
    fn a_key_must_be_an_admin_token_of_the_named_workspace() {
        let env = [("TINYBIRD_SIGNING_KEY", "secret".to_owned())];
        let err = validate_toml("host = \"local\"", &env).unwrap_err();
        assert!(err.contains("is not a Tinybird admin token"), "{err}");
        assert!(!err.contains("secret\""), "{err}");
        let env = [("TINYBIRD_SIGNING_KEY", key("ws-b"))];
        let err = validate_toml("host = \"local\"\nworkspace_id = \"ws-a\"", &env).unwrap_err();
        assert!(
            err.contains("is the admin token of workspace \"ws-b\""),
            "{err}"
        );
    }
}
