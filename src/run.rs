//! Starting and stopping: bind the listeners, start the local endpoint when configured,
//! serve until Ctrl-C or SIGTERM, then drain both servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Problem, Settings, TinybirdHost, WorkspaceSettings};
use crate::http::{self, App};
use crate::tinybird::workspaces::{Workspace, Workspaces};
use tinybird_local::{LocalConfig, LocalEndpoint};

/// Addresses actually bound (ports resolved when 0 was asked for).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The BFF.
    pub app: SocketAddr,
    /// The embedded local endpoint, when running (the first one, with several workspaces).
    pub local: Option<SocketAddr>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`), when enabled.
    pub admin: Option<SocketAddr>,
}

/// Binds `addr`; when `fallback` and the port is taken, binds an ephemeral port instead.
pub async fn bind(addr: SocketAddr, fallback: bool) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(%addr, "address in use; using a free port instead");
            Ok(TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A started BFF (and local endpoint): its addresses and how to stop it.
pub struct Running {
    /// Bound addresses.
    pub bound: Bound,
    /// The settings as served (public URL adjusted to the bound port).
    pub public_url: reqwest::Url,
    /// The Tinybird base URL browsers are told to call (the first workspace's).
    pub tinybird_url: String,
    /// Every workspace's name and base URL, in name order.
    pub workspaces: Vec<(String, String)>,
    state: Arc<App>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// A copy of the settings in force now (what a reload would start from).
    pub fn settings(&self) -> Settings {
        self.state.snapshot().settings.clone()
    }

    /// Reloads now with `next` (as `SIGHUP` does with the files): the problems when it
    /// cannot be put in force, and then nothing changed.
    pub fn reload(
        &self,
        next: Result<Settings, Vec<Problem>>,
    ) -> Result<http::reload::Reloaded, Vec<String>> {
        reload(&self.state, next)
    }

    /// Reloads with `load` on `SIGHUP` and whenever one of the files the settings came from
    /// changes (checked every `reload.watch`), until the servers stop.
    pub fn watch(&mut self, load: Loader) {
        let snapshot = self.state.snapshot();
        let settings = &snapshot.settings;
        let task = watch_files(
            Arc::clone(&self.state),
            load,
            settings.reload_watch,
            self.stop.subscribe(),
        );
        self.tasks.push(tokio::spawn(async move {
            task.await;
            Ok(())
        }));
    }

    /// Stops accepting, lets in-flight requests finish, and waits for both servers.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
        }
        if let Some(keys) = &self.state.keys {
            keys.close().await;
        }
        Ok(())
    }
}

/// Binds and starts serving; `fallback_ports` moves to a free port when one is taken.
pub async fn start(mut settings: Settings, fallback_ports: bool) -> anyhow::Result<Running> {
    register_log_secrets(&settings);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let app_listener = bind(settings.listen, fallback_ports).await?;
    let app_addr = app_listener.local_addr()?;
    let admin_listener = match settings.admin_listen {
        Some(addr) => Some(bind(addr, fallback_ports).await?),
        None => None,
    };
    let admin_addr = admin_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    // Every listener gets the same limits, within what the open-file limit allows.
    let listeners = 1
        + usize::from(admin_listener.is_some())
        + settings
            .tinybird
            .workspaces
            .iter()
            .filter(|w| matches!(w.host, TinybirdHost::Local(_)))
            .count();
    let limits = settings
        .conn_limits
        .within(tinybird_contract::serve::raise_fd_limit(), listeners);
    let mut tasks = Vec::new();
    let mut local_addr = None;
    let mut list = Vec::new();
    let now = chrono::Utc::now().timestamp();
    for ws in &settings.tinybird.workspaces {
        let url = match &ws.host {
            TinybirdHost::Remote(url) => url.as_str().trim_end_matches('/').to_owned(),
            TinybirdHost::Local(addr) => {
                let listener = bind(*addr, fallback_ports).await?;
                let addr = listener.local_addr()?;
                let mut config = LocalConfig::new(ws.signing_key.clone());
                config.workspace_id = Some(ws.workspace_id.clone());
                config.conn_limits = limits;
                // The workspace's usage token reads `pipe_stats_rt` here as it would on
                // Tinybird.
                let source = settings
                    .usage
                    .iter()
                    .flat_map(|u| &u.sources)
                    .find(|s| s.workspace == ws.name && !s.token_is_admin);
                if let Some(source) = source {
                    config
                        .static_tokens
                        .push(tinybird_local::auth::StaticToken {
                            name: source.token_env.clone(),
                            token: source.token.clone(),
                            scopes: vec![tinybird_local::auth::StaticScope::DatasourcesRead(
                                "tinybird.pipe_stats_rt".into(),
                            )],
                        });
                }
                let (endpoint, problems) = LocalEndpoint::new(config)?;
                for p in problems {
                    tracing::error!(workspace = %ws.name, "{p}");
                }
                tasks.push(tokio::spawn(
                    endpoint.serve(listener, stopped(stop_rx.clone())),
                ));
                local_addr.get_or_insert(addr);
                format!("http://{addr}")
            }
        };
        list.push(in_force(ws, url, now));
    }
    let workspaces: Vec<(String, String)> = list
        .iter()
        .map(|w| (w.name.clone(), w.url.clone()))
        .collect();
    let tinybird_url = workspaces[0].1.clone();
    let workspaces_in_force = Workspaces::new(list, settings.tinybird.rule.clone());
    // The public URL follows the port actually bound when it pointed at the one asked for.
    if app_addr.port() != settings.listen.port()
        && settings.public_url.port_or_known_default() == Some(settings.listen.port())
    {
        let _ = settings.public_url.set_port(Some(app_addr.port()));
    }
    let public_url = settings.public_url.clone();
    let state = App::new(settings, workspaces_in_force)?;
    if let Some(keys) = &state.keys {
        keys.migrate().await.context("keys: the key store")?;
        keys.start();
    }
    if let Some(listener) = admin_listener {
        tasks.push(tokio::spawn(http::ops::serve_admin(
            state.clone(),
            listener,
            limits,
            stopped(stop_rx.clone()),
        )));
    }
    tasks.push(tokio::spawn(http::serve(
        Arc::clone(&state),
        app_listener,
        limits,
        stopped(stop_rx),
    )));
    Ok(Running {
        bound: Bound {
            app: app_addr,
            local: local_addr,
            admin: admin_addr,
        },
        public_url,
        tinybird_url,
        workspaces,
        state,
        stop: stop_tx,
        tasks,
    })
}

/// The settings' credentials join what every log and audit line is scrubbed of.
fn register_log_secrets(settings: &Settings) {
    use secrecy::ExposeSecret;
    let mut secrets: Vec<_> = settings
        .tinybird
        .workspaces
        .iter()
        .map(|w| w.signing_key.secret())
        .collect();
    if let crate::proxy::Credentials::Static(token) = &settings.proxy.credentials {
        secrets.push(token);
    }
    if let Some(usage) = &settings.usage {
        secrets.extend(usage.sources.iter().map(|s| &s.token));
    }
    secrets.extend(
        settings
            .oidc
            .iter()
            .filter_map(|p| p.client.as_ref()?.client_secret.as_ref()),
    );
    let keys = settings.keys.iter().flat_map(|k| k.secrets());
    crate::redact::register_log_secrets(secrets.into_iter().map(|s| s.expose_secret()).chain(keys));
}

/// A configured workspace as it runs: called at `url`, its key loaded at `now`.
pub fn in_force(ws: &WorkspaceSettings, url: String, now: i64) -> Workspace {
    Workspace::new(
        ws.name.clone(),
        url,
        ws.workspace_id.clone(),
        ws.signing_key.clone(),
        ws.known_pipes.clone(),
        now,
    )
}

/// Reads the settings again (the config file, with its users and key files).
pub type Loader = Arc<dyn Fn() -> Result<Settings, Vec<Problem>> + Send + Sync>;

/// Runs until Ctrl-C or SIGTERM; `on_ready` sees the running servers first (the demo prints
/// them). With `load`, `SIGHUP` and changed files reload the settings.
pub async fn run(
    settings: Settings,
    fallback_ports: bool,
    load: Option<Loader>,
    on_ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    let mut running = start(settings, fallback_ports).await?;
    if let Some(load) = load {
        running.watch(load);
    }
    on_ready(&running);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.stop().await
}

/// Applies `next`, logging what happened (every problem, as `check` prints them).
fn reload(
    state: &App,
    next: Result<Settings, Vec<Problem>>,
) -> Result<http::reload::Reloaded, Vec<String>> {
    let outcome = match next {
        Ok(next) => http::reload::apply(state, next),
        Err(problems) => {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            state.audit.config_reload(Err(&problems));
            Err(problems)
        }
    };
    match &outcome {
        Ok(done) => {
            for (workspace, key) in &done.keys_changed {
                tracing::info!(workspace, key, "reload: new signing key in force");
            }
            if !done.need_restart.is_empty() {
                tracing::warn!(settings = ?done.need_restart, "reload: these changed settings take effect at the next restart; the running values are kept");
            }
            tracing::info!("reload: settings in force");
        }
        Err(problems) => {
            for p in problems {
                tracing::error!("reload refused: {p}");
            }
            tracing::error!("reload refused: the running settings are kept");
        }
    }
    outcome
}

/// A file's content, to tell a change (a replaced mount, a rewritten file) from none.
fn fingerprint(paths: &[PathBuf]) -> Vec<Option<[u8; 32]>> {
    use sha2::{Digest, Sha256};
    paths
        .iter()
        .map(|p| std::fs::read(p).ok().map(|b| Sha256::digest(&b).into()))
        .collect()
}

/// Reloads on `SIGHUP`, and when a source file changes (polled every `every`).
async fn watch_files(
    state: Arc<App>,
    load: Loader,
    every: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = fingerprint(&state.snapshot().settings.sources);
    let mut tick = tokio::time::interval(every.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let why = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = hangup => "SIGHUP",
            _ = tick.tick(), if every.is_some() => {
                let now = fingerprint(&state.snapshot().settings.sources);
                if now == seen { continue; }
                "a watched file changed"
            }
        };
        tracing::info!("reload: {why}");
        let load = Arc::clone(&load);
        let next = tokio::task::spawn_blocking(move || load())
            .await
            .unwrap_or_else(|e| {
                Err(vec![Problem {
                    key: "reload".into(),
                    message: e.to_string(),
                }])
            });
        let _ = reload(&state, next);
        // Whatever the outcome, the files as they are now are the ones seen: a bad file is
        // reported once, not on every tick, and reloaded when it changes again.
        seen = fingerprint(&state.snapshot().settings.sources);
    }
}
