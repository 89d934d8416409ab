//! A throwaway PostgreSQL server for the key-store tests: a fresh cluster (`initdb`) in a temp
//! directory, `postgres` on a free port, stopped and deleted on drop. It needs Debian's
//! `postgresql` package (scripts/test installs it); its programs live in
//! `/usr/lib/postgresql/<version>/bin`, off the `PATH`. PostgreSQL refuses to run as root, so
//! as root the cluster belongs to, and the server runs as, the `postgres` user the package
//! creates.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL, killed and deleted on drop.
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The directory holding `initdb` and `postgres`.
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    // Where `initdb` really is (a PATH entry may be a symlink), so `pg_isready` is found too.
    if let Some(dir) = on_path
        .into_iter()
        .map(|d| d.join("initdb"))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .find_map(|p| p.parent().map(PathBuf::from))
    {
        return dir;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|d| d.join("initdb").is_file());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server found: these tests need Debian's postgresql package \
             (`apt-get install -y postgresql`; scripts/test installs it)"
        )
    })
}

/// `(uid, gid)` of the `postgres` user when running as root (PostgreSQL refuses root).
fn run_as() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

fn command(program: PathBuf, owner: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = owner {
        c.uid(uid).gid(gid);
    }
    c
}

impl PgServer {
    /// A new cluster with a `bff` superuser (trust authentication, local only), started.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("tbff-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let bin = bin_dir();
        let data = dir.join("data");
        let out = command(bin.join("initdb"), owner)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "bff",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        server
    }

    /// `postgres://bff@127.0.0.1:<port>/<db>` without TLS.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://bff@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Starts (again) on the same port and data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = command(bin_dir().join("postgres"), run_as())
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.accepts() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres on port {} did not start", self.port);
    }

    /// Whether the server answers a startup message (a TCP connect is not enough: the
    /// postmaster listens before it accepts sessions).
    fn accepts(&self) -> bool {
        let out = Command::new(bin_dir().join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "bff"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        out.expect("pg_isready runs (it ships with the server)")
            .success()
    }

    /// A new empty database, for one test.
    pub async fn database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connects as bff");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        self.url(&name)
    }

    /// Stops the server at once (an outage: in-flight sessions are cut).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: the immediate shutdown; `kill` is the portable way without libc.
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
