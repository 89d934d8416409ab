//! The connection behind [`super::Redis`], whichever kind of Redis it is: one multiplexed,
//! self-reconnecting connection to a single server, to the master a set of sentinels names, or
//! to a Cluster. [`Conn`] implements the client's `ConnectionLike`, so every caller sends
//! commands, pipelines and scripts the same way on all three.
//!
//! **Sentinel.** The sentinels are asked for the master when the first command needs it, and
//! again whenever a command fails in a way a failover explains (the connection refused,
//! dropped or timed out, or a `READONLY` reply from a master demoted to replica), plus every
//! few seconds as a safety net. Asking happens in the background, one question at a time, so
//! requests never queue behind the sentinels: while the master is gone they fail fast (and
//! sessions and limits follow their fail modes), and the first command after the sentinels
//! name a new master goes to it. This is the Sentinel client protocol
//! (<https://redis.io/docs/latest/develop/reference/sentinel-clients/>): after a failover the
//! sentinels disconnect the old master's clients, which then ask again.
//!
//! **Cluster.** The client's `ClusterConnection` follows `MOVED`/`ASK` and refreshes the slot
//! map itself; it is created on first use, so the BFF starts while the Cluster is down.
//! Commands of one call must hash to one slot: see [`super::tag`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use ::redis::{Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use super::config::{RedisSettings, Topology};

/// How often the sentinels are asked even without a failed command: catches a master demoted
/// while this instance was idle.
const SENTINEL_REFRESH: Duration = Duration::from_secs(5);
/// Pause after a question that changed nothing, so a dead master does not turn every failed
/// command into a question to the sentinels.
const SENTINEL_BACKOFF: Duration = Duration::from_millis(100);

/// A handle for one or more commands; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Single(ConnectionManager),
    /// The master named by the sentinels.
    Sentinel(Arc<SentinelLink>),
    /// A Redis Cluster.
    Cluster(Arc<ClusterLink>),
}

/// Builds the link for `settings`; nothing is sent until the first command.
pub fn open(settings: &RedisSettings) -> RedisResult<Conn> {
    let certs = || ::redis::TlsCertificates {
        client_tls: None,
        root_cert: settings.ca.clone(),
    };
    match &settings.topology {
        Topology::Single(url) => {
            // `rediss://` verifies the server with the platform's roots, or the configured CA.
            let client = match &settings.ca {
                None => ::redis::Client::open(url.as_str())?,
                Some(_) => ::redis::Client::build_with_tls(url.as_str(), certs())?,
            };
            Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                client,
                manager_config(settings.timeout),
            )?))
        }
        Topology::Sentinel {
            sentinels,
            master,
            db,
        } => {
            let addrs = sentinels.iter().map(|(host, port)| match settings.tls {
                false => ConnectionAddr::Tcp(host.clone(), *port),
                true => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                },
            });
            let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                .set_client_to_redis_db(*db);
            if let Some(user) = &settings.username {
                b = b.set_client_to_redis_username(user);
            }
            if let Some(password) = &settings.password {
                b = b.set_client_to_redis_password(password);
            }
            if let Some(user) = &settings.sentinel_auth.0 {
                b = b.set_client_to_sentinel_username(user);
            }
            if let Some(password) = &settings.sentinel_auth.1 {
                b = b.set_client_to_sentinel_password(password);
            }
            if settings.tls {
                b = b.set_client_to_redis_tls_mode(::redis::TlsMode::Secure);
                if settings.ca.is_some() {
                    b = b
                        .set_client_to_redis_certificates(certs())
                        .set_client_to_sentinel_certificates(certs());
                }
            }
            Ok(Conn::Sentinel(Arc::new(SentinelLink {
                sentinels: tokio::sync::Mutex::new(b.build()?),
                master: RwLock::new(None),
                asking: AtomicBool::new(false),
                refresher: AtomicBool::new(false),
                timeout: settings.timeout,
            })))
        }
        Topology::Cluster { nodes } => {
            let scheme = if settings.tls { "rediss" } else { "redis" };
            let urls: Vec<String> = nodes
                .iter()
                .map(|(h, p)| match h.contains(':') {
                    true => format!("{scheme}://[{h}]:{p}"),
                    false => format!("{scheme}://{h}:{p}"),
                })
                .collect();
            let mut b = ClusterClient::builder(urls)
                .connection_timeout(settings.timeout)
                .response_timeout(settings.timeout)
                // Few, quick retries (MOVED, a node restarting): a request waiting on a dead
                // Cluster should fail within about one timeout.
                .retries(2)
                .min_retry_wait(10)
                .max_retry_wait(100);
            if let Some(user) = &settings.username {
                b = b.username(user);
            }
            if let Some(password) = &settings.password {
                b = b.password(password);
            }
            if settings.tls {
                b = b.tls(::redis::TlsMode::Secure);
                if settings.ca.is_some() {
                    b = b.certs(certs());
                }
            }
            Ok(Conn::Cluster(Arc::new(ClusterLink {
                client: b.build()?,
                conn: tokio::sync::OnceCell::new(),
                timeout: settings.timeout,
            })))
        }
    }
}

/// Few, quick reconnect attempts: a request waiting on a dead Redis should fail within about
/// one timeout, and the next request starts a fresh attempt anyway.
fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200))
}

fn timed_out(what: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timed out"),
    ))
}

/// The master named by the sentinels, and the sentinels to ask again.
pub struct SentinelLink {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    /// The master's `host:port` and a connection to it; `None` until first named.
    master: RwLock<Option<(String, ConnectionManager)>>,
    /// A question to the sentinels is under way (one at a time).
    asking: AtomicBool,
    /// The periodic refresh task is running.
    refresher: AtomicBool,
    timeout: Duration,
}

impl SentinelLink {
    fn current(&self) -> Option<ConnectionManager> {
        let guard = self.master.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|(_, c)| c.clone())
    }

    /// The master's address as last named by the sentinels (for logs and tests).
    pub fn master_addr(&self) -> Option<String> {
        let guard = self.master.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|(a, _)| a.clone())
    }

    /// Asks the sentinels which server is the master and switches to it if it moved. With
    /// `first`, a master named meanwhile (by a concurrent first question) is taken as is.
    async fn ask(&self, first: bool) -> RedisResult<ConnectionManager> {
        let client = tokio::time::timeout(self.timeout, async {
            let mut sentinels = self.sentinels.lock().await;
            if first && let Some(conn) = self.current() {
                return Ok(Err(conn));
            }
            sentinels.async_get_client().await.map(Ok)
        })
        .await
        .map_err(|_| timed_out("asking the sentinels for the master"))??;
        let client = match client {
            Ok(client) => client,
            Err(named_meanwhile) => return Ok(named_meanwhile),
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut guard = self.master.write().unwrap_or_else(|e| e.into_inner());
        if let Some((current, conn)) = guard.as_ref()
            && *current == addr
        {
            return Ok(conn.clone());
        }
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config(self.timeout))?;
        match guard.replace((addr.clone(), conn.clone())) {
            Some((old, _)) => {
                tracing::warn!(from = %old, to = %addr, "redis master moved (sentinel failover)")
            }
            None => tracing::info!(master = %addr, "redis master named by the sentinels"),
        }
        Ok(conn)
    }

    /// Asks again in the background unless a question is already under way.
    fn ask_soon(self: &Arc<Self>) {
        if self.asking.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = Arc::clone(self);
        tokio::spawn(async move {
            let before = link.master_addr();
            let result = link.ask(false).await;
            if result.is_err() || link.master_addr() == before {
                tokio::time::sleep(SENTINEL_BACKOFF).await;
            }
            link.asking.store(false, Ordering::Release);
        });
    }

    /// Starts the periodic refresh once; it ends when the link is dropped.
    fn start_refresher(self: &Arc<Self>) {
        if self.refresher.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SENTINEL_REFRESH).await;
                let Some(link) = weak.upgrade() else { return };
                link.ask_soon();
            }
        });
    }

    /// The connection to the master, asking the sentinels first if none is known yet.
    async fn connection(self: &Arc<Self>) -> RedisResult<ConnectionManager> {
        self.start_refresher();
        match self.current() {
            Some(conn) => Ok(conn),
            None => self.ask(true).await,
        }
    }

    /// After a failed command: whether the master may have moved.
    fn after(self: &Arc<Self>, err: &RedisError) {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_unrecoverable_error()
            || matches!(err.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
        {
            self.ask_soon();
        }
    }
}

/// A Cluster connection, made on first use.
pub struct ClusterLink {
    client: ClusterClient,
    conn: tokio::sync::OnceCell<ClusterConnection>,
    timeout: Duration,
}

impl ClusterLink {
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                tokio::time::timeout(self.timeout * 2, self.client.get_async_connection())
                    .await
                    .map_err(|_| timed_out("connecting to the cluster"))?
            })
            .await?;
        Ok(conn.clone())
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Sentinel(link) => Box::pin(async move {
                let mut conn = link.connection().await?;
                let reply = conn.req_packed_command(cmd).await;
                if let Err(e) = &reply {
                    link.after(e);
                }
                reply
            }),
            Conn::Cluster(link) => Box::pin(async move {
                let mut conn = link.connection().await?;
                tokio::time::timeout(link.timeout * 2, conn.req_packed_command(cmd))
                    .await
                    .map_err(|_| timed_out("a cluster command"))?
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(link) => Box::pin(async move {
                let mut conn = link.connection().await?;
                let reply = conn.req_packed_commands(cmd, offset, count).await;
                if let Err(e) = &reply {
                    link.after(e);
                }
                reply
            }),
            Conn::Cluster(link) => Box::pin(async move {
                let mut conn = link.connection().await?;
                tokio::time::timeout(
                    link.timeout * 2,
                    conn.req_packed_commands(cmd, offset, count),
                )
                .await
                .map_err(|_| timed_out("a cluster pipeline"))?
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Sentinel(_) | Conn::Cluster(_) => 0,
        }
    }
}
