//! A real Redis Sentinel deployment on free ports: a master, optionally a replica, and
//! `redis-sentinel` processes watching them with short timeouts, so a failover takes seconds.
//! Every process is killed when the value is dropped; its files live in a temp directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The master's name in the sentinels' configuration.
pub const MASTER: &str = "mymaster";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {program} ({e}): these tests need it installed, e.g. \
                 `apt-get install -y redis-server redis-sentinel` (scripts/test installs them)"
            )
        })
}

/// One command to the server on `port`, through the same client the BFF uses.
pub async fn query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::other("connect timed out")))??;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A master, its replicas and the sentinels watching them.
pub struct Sentinels {
    dir: PathBuf,
    /// Data servers by port: the master first, then the replicas.
    pub servers: Vec<(u16, Option<Child>)>,
    /// Sentinel ports.
    pub sentinels: Vec<u16>,
    sentinel_children: Vec<Child>,
}

impl Sentinels {
    /// Starts a master, `replicas` replicas of it and `sentinels` sentinels (quorum: a
    /// majority), and waits until every sentinel knows every replica and every other sentinel.
    pub async fn start(replicas: usize, sentinels: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-sentinel-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let master = free_port();
        let mut servers = Vec::new();
        for i in 0..=replicas {
            let port = if i == 0 { master } else { free_port() };
            let port_s = port.to_string();
            let master_s = master.to_string();
            let data = dir.join(format!("redis-{port}"));
            std::fs::create_dir_all(&data).unwrap();
            let data = data.to_str().unwrap().to_owned();
            // Its own directory: a full sync to a replica writes an RDB file there.
            let mut args = vec!["--port", &port_s, "--bind", "127.0.0.1", "--dir", &data];
            args.extend(["--save", "", "--appendonly", "no"]);
            if i > 0 {
                args.extend(["--replicaof", "127.0.0.1", &master_s]);
            }
            servers.push((port, Some(spawn("redis-server", &args))));
        }
        let quorum = (sentinels / 2 + 1).to_string();
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for _ in 0..sentinels {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            // Short timeouts: the master is declared down after 500 ms, a failover retried
            // after 2 s; production values are seconds to minutes.
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {master} {quorum}\n\
                     sentinel down-after-milliseconds {MASTER} 500\n\
                     sentinel failover-timeout {MASTER} 2000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = dir.display()
                ),
            )
            .unwrap();
            children.push(spawn("redis-sentinel", &[conf.to_str().unwrap()]));
            ports.push(port);
        }
        let me = Self {
            dir,
            servers,
            sentinels: ports,
            sentinel_children: children,
        };
        for &(port, _) in &me.servers[1..] {
            wait_for("the replica to sync", async || {
                query::<String>(port, &["INFO", "replication"])
                    .await
                    .is_ok_and(|i| i.contains("master_link_status:up"))
            })
            .await;
        }
        for &port in &me.sentinels {
            wait_for(
                "the sentinels to know each other and the replicas",
                async || {
                    let Ok(info) =
                        query::<Vec<String>>(port, &["SENTINEL", "MASTER", MASTER]).await
                    else {
                        return false;
                    };
                    let field = |name: &str| {
                        info.iter()
                            .position(|f| f == name)
                            .and_then(|i| info.get(i + 1))
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0)
                    };
                    field("num-slaves") >= replicas && field("num-other-sentinels") + 1 >= sentinels
                },
            )
            .await;
        }
        me
    }

    /// `redis+sentinel://` for every sentinel.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER}/0", hosts.join(","))
    }

    /// The master's port as the sentinels name it now.
    pub async fn master_port(&self) -> Option<u16> {
        for &port in &self.sentinels {
            if let Ok((_, p)) =
                query::<(String, String)>(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                    .await
            {
                return p.parse().ok();
            }
        }
        None
    }

    /// Kills the data server on `port` with SIGKILL (a crash: no shutdown, no last write).
    pub async fn kill(&mut self, port: u16) {
        let (_, child) = self
            .servers
            .iter_mut()
            .find(|(p, _)| *p == port)
            .expect("a server of this deployment");
        if let Some(mut child) = child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
