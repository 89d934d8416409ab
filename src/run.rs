//! Starting and stopping: bind the listeners, start the local endpoint when configured,
//! serve until Ctrl-C or SIGTERM, then drain both servers.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Settings, TinybirdHost};
use crate::http::{self, App};
use crate::local::{LocalConfig, LocalEndpoint};

/// Addresses actually bound (ports resolved when 0 was asked for).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// The BFF.
    pub app: SocketAddr,
    /// The embedded local endpoint, when running.
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
    /// The Tinybird base URL browsers are told to call.
    pub tinybird_url: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for both servers.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await??;
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
    let mut tasks = Vec::new();
    let (tinybird_url, local_addr) = match settings.host.clone() {
        TinybirdHost::Remote(url) => (url.as_str().trim_end_matches('/').to_owned(), None),
        TinybirdHost::Local(addr) => {
            let listener = bind(addr, fallback_ports).await?;
            let addr = listener.local_addr()?;
            let mut config = LocalConfig::new(settings.signing_key.clone());
            config.workspace_id = Some(settings.workspace_id.clone());
            // The usage token reads `pipe_stats_rt` here as it would on Tinybird.
            if let Some(usage) = settings.usage.as_ref().filter(|u| !u.token_is_admin) {
                config.static_tokens.push(crate::local::auth::StaticToken {
                    name: usage.token_env.clone(),
                    token: usage.token.clone(),
                    scopes: vec![crate::local::auth::StaticScope::DatasourcesRead(
                        "tinybird.pipe_stats_rt".into(),
                    )],
                });
            }
            let (endpoint, problems) = LocalEndpoint::new(config)?;
            for p in problems {
                tracing::error!("{p}");
            }
            tasks.push(tokio::spawn(
                endpoint.serve(listener, stopped(stop_rx.clone())),
            ));
            (format!("http://{addr}"), Some(addr))
        }
    };
    // The public URL follows the port actually bound when it pointed at the one asked for.
    if app_addr.port() != settings.listen.port()
        && settings.public_url.port_or_known_default() == Some(settings.listen.port())
    {
        let _ = settings.public_url.set_port(Some(app_addr.port()));
    }
    let public_url = settings.public_url.clone();
    let state = App::new(settings, tinybird_url.clone())?;
    if let Some(listener) = admin_listener {
        tasks.push(tokio::spawn(http::ops::serve_admin(
            state.clone(),
            listener,
            stopped(stop_rx.clone()),
        )));
    }
    tasks.push(tokio::spawn(http::serve(
        state,
        app_listener,
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
        stop: stop_tx,
        tasks,
    })
}

/// The settings' credentials join what every log and audit line is scrubbed of.
fn register_log_secrets(settings: &Settings) {
    use secrecy::ExposeSecret;
    let mut secrets = vec![settings.signing_key.secret()];
    if let crate::proxy::Credentials::Static(token) = &settings.proxy.credentials {
        secrets.push(token);
    }
    if let Some(usage) = &settings.usage {
        secrets.push(&usage.token);
    }
    secrets.extend(
        settings
            .oidc
            .iter()
            .filter_map(|p| p.client.as_ref()?.client_secret.as_ref()),
    );
    crate::redact::register_log_secrets(secrets.into_iter().map(|s| s.expose_secret()));
}

/// Runs until Ctrl-C or SIGTERM; `on_ready` sees the running servers first (the demo prints them).
pub async fn run(
    settings: Settings,
    fallback_ports: bool,
    on_ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    let running = start(settings, fallback_ports).await?;
    on_ready(&running);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.stop().await
}
