//! Reloading: new settings (config, users file, signing keys) put in force without a restart.
//!
//! `crate::run` decides when (on `SIGHUP`, or when a watched file changes) and reads the
//! files; this applies the result to the running server. A reload that fails validation
//! changes nothing. What a reload changes: users, grants, `[token]`, each workspace's key,
//! id, pipes and the workspace rule. What needs a restart (listeners, sessions, Redis,
//! identity providers, `[proxy]`, `[limits]`, `[usage]`, the audit log, and which workspaces exist and
//! their hosts) keeps its running value and is named in the log. A changed key drops every
//! cached proxy JWT at once (they would all be 403s); browsers refresh on their first 403.

use super::state::App;
use crate::config::{Settings, TinybirdHost};
use crate::tinybird::workspaces::{Workspace, Workspaces};

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Workspaces whose signing key changed, with the new key's fingerprint.
    pub keys_changed: Vec<(String, String)>,
    /// Settings that changed but keep their running value until a restart.
    pub need_restart: Vec<&'static str>,
}

/// Puts `next` in force, or explains why not (then nothing changed).
pub fn apply(app: &App, mut next: Settings) -> Result<Reloaded, Vec<String>> {
    let snapshot = app.snapshot();
    let (current, running) = (&snapshot.settings, &snapshot.workspaces);
    let mut problems = Vec::new();
    let now = chrono::Utc::now().timestamp();
    let mut list = Vec::new();
    let mut reloaded = Reloaded::default();
    for ws in &next.tinybird.workspaces {
        let (Some(old), Some(old_settings)) = (
            running.get(&ws.name),
            current
                .tinybird
                .workspaces
                .iter()
                .find(|w| w.name == ws.name),
        ) else {
            problems.push(format!(
                "tinybird: workspace {:?} is new; adding or removing a workspace takes a restart",
                ws.name
            ));
            continue;
        };
        if !same_host(&old_settings.host, &ws.host) {
            problems.push(format!(
                "tinybird: workspace {:?}'s host changed; a host changes at a restart",
                ws.name
            ));
            continue;
        }
        if ws.workspace_id != old.workspace_id {
            problems.push(format!(
                "tinybird: workspace {:?}: the new key is the admin token of workspace {:?}, not of the running workspace {:?}; moving to another workspace takes a restart",
                ws.name, ws.workspace_id, old.workspace_id
            ));
            continue;
        }
        let key_changed = !old
            .signing_key
            .matches(secrecy::ExposeSecret::expose_secret(
                ws.signing_key.secret(),
            ));
        let workspace = Workspace::new(
            ws.name.clone(),
            old.url.clone(),
            ws.workspace_id.clone(),
            ws.signing_key.clone(),
            ws.known_pipes.clone(),
            if key_changed { now } else { old.loaded_at },
        );
        if key_changed {
            reloaded
                .keys_changed
                .push((ws.name.clone(), workspace.fingerprint().to_owned()));
        }
        list.push(workspace);
    }
    if next.tinybird.workspaces.len() != current.tinybird.workspaces.len() && problems.is_empty() {
        problems.push(
            "tinybird: a workspace was removed; adding or removing a workspace takes a restart"
                .into(),
        );
    }
    if !problems.is_empty() {
        app.audit.config_reload(Err(&problems));
        return Err(problems);
    }
    reloaded.need_restart = keep_restart_only(current, &mut next);
    let workspaces = Workspaces::new(list, next.tinybird.rule.clone());
    crate::redact::register_log_secrets(
        next.tinybird
            .workspaces
            .iter()
            .map(|w| secrecy::ExposeSecret::expose_secret(w.signing_key.secret())),
    );
    app.replace(next, workspaces);
    if !reloaded.keys_changed.is_empty() {
        app.proxy.drop_tokens();
    }
    app.audit.config_reload(Ok(&reloaded.keys_changed));
    Ok(reloaded)
}

fn same_host(a: &TinybirdHost, b: &TinybirdHost) -> bool {
    match (a, b) {
        (TinybirdHost::Remote(a), TinybirdHost::Remote(b)) => a == b,
        // The embedded endpoint runs where it started; its address is not compared.
        (TinybirdHost::Local(_), TinybirdHost::Local(_)) => true,
        _ => false,
    }
}

/// Copies the running value of every restart-only setting into `next`, naming those that
/// differ.
fn keep_restart_only(current: &Settings, next: &mut Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident => $key:literal),* $(,)?) => {$(
            if format!("{:?}", current.$field) != format!("{:?}", next.$field) {
                changed.push($key);
            }
            next.$field = current.$field.clone();
        )*};
    }
    keep!(
        listen => "listen",
        public_url => "public_url",
        trusted_proxies => "trusted_proxies",
        conn_limits => "server",
        cors => "cors",
        session_store => "session.store",
        session_ttl => "session.ttl",
        cookie_name => "session.cookie_name",
        throttle => "login",
        client_throttle => "login",
        login_caps => "login",
        oidc => "oidc",
        proxy => "proxy",
        admin_listen => "admin_listen",
        redis => "redis",
        limits => "limits",
        audit => "audit",
        log_format => "log",
        reload_watch => "reload",
        usage => "usage",
        keys => "keys",
    );
    changed.dedup();
    changed
}
