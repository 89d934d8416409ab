//! The embedded session store: sessions survive a restart without Redis.
//!
//! Every session lives in memory (reads never touch the disk) and is written through to one
//! JSON file per session in a private directory, loaded again at start. Without a directory
//! ([`FileSessionStore::in_memory`], `session.store = "memory"`) it is the same store minus the
//! files: sessions end with the process. It fits a single instance; several instances need a
//! shared store (Redis), because a logout on one would not reach the memory of the others.
//! Expired sessions are purged from memory and disk by [`FileSessionStore::purge_every`].
//!
//! Invariants:
//! - File names are the hex SHA-256 of the session id, so an id can neither steer a path nor
//!   be read off a directory listing.
//! - Files are written atomically (temp file in the same directory, fsync, rename), mode 0600.
//! - Disk first, memory second: memory never claims a save that did not reach the disk. Writes
//!   to one id are serialised (striped async locks) so the last write wins in both places.
//! - The file format is our own ([`Stored`]), not `Record`'s serde form, so it does not change
//!   with the `time` crate's serde features.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// Number of per-id write locks; ids are random, so this spreads writers evenly.
const STRIPES: usize = 64;

/// Sessions in memory with write-through to one file per session in a directory, loaded at
/// start: survives a restart, and reads never touch the disk.
#[derive(Clone)]
pub struct FileSessionStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: memory only.
    dir: Option<PathBuf>,
    /// Never held across an `.await`.
    state: Mutex<State>,
    /// Held across the disk write and the memory update of one id, so concurrent writers of
    /// the same session cannot leave disk and memory disagreeing.
    write_locks: Vec<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct State {
    records: HashMap<Id, Record>,
    /// Ids being created but not yet on disk; keeps two `create`s from taking the same id.
    reserved: HashSet<Id>,
}

impl fmt::Debug for FileSessionStore {
    // Session contents stay out of Debug: they hold user data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSessionStore")
            .field("dir", &self.inner.dir)
            .field("sessions", &self.len())
            .finish()
    }
}

/// One session file. `D` is borrowed when writing and owned when reading.
#[derive(Serialize, Deserialize)]
struct Stored<D> {
    id: String,
    expires_unix: i64,
    expires_nanos: u32,
    data: D,
}

type Data = HashMap<String, serde_json::Value>;

impl FileSessionStore {
    /// Opens (creating, mode 0700 on unix) the directory and loads every non-expired session.
    /// Expired and corrupt files are deleted; corrupt ones are logged by file name only.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        let now = OffsetDateTime::now_utc();
        let mut records = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !entry.file_type()?.is_file() {
                continue;
            }
            if name.starts_with('.') && name.ends_with(".tmp") {
                // Left behind by a crash mid-write; the previous version is still in place.
                remove_quietly(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match read_record(&path) {
                Ok(record) if file_name(&record.id) != name => {
                    tracing::warn!(file = %name, "session file name does not match its id; deleting it");
                    remove_quietly(&path);
                }
                Ok(record) if record.expiry_date <= now => remove_quietly(&path),
                Ok(record) => {
                    records.insert(record.id, record);
                }
                Err(None) => {
                    tracing::warn!(file = %name, "session file is not a valid session record; deleting it");
                    remove_quietly(&path);
                }
                Err(Some(e)) => {
                    tracing::warn!(file = %name, error = %e, "cannot read session file; skipping it");
                }
            }
        }
        Ok(Self::with(Some(dir), records))
    }

    /// A store that keeps sessions in memory only: they end with the process.
    pub fn in_memory() -> Self {
        Self::with(None, HashMap::new())
    }

    fn with(dir: Option<PathBuf>, records: HashMap<Id, Record>) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir,
                state: Mutex::new(State {
                    records,
                    reserved: HashSet::new(),
                }),
                write_locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            }),
        }
    }

    /// Purges expired sessions every `period` on the current runtime, for as long as the
    /// store exists; failures are logged and retried at the next tick.
    pub fn purge_every(&self, period: std::time::Duration) {
        let store = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = store.upgrade() else { return };
                match (FileSessionStore { inner }).purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "expired sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge expired sessions"),
                }
            }
        });
    }

    /// Number of sessions in memory, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.state().records.len()
    }

    /// Whether there are no sessions in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes expired records from memory and disk; call periodically.
    pub async fn purge_expired(&self) -> io::Result<usize> {
        let now = OffsetDateTime::now_utc();
        let expired: Vec<Id> = {
            let state = self.state();
            state
                .records
                .values()
                .filter(|r| r.expiry_date <= now)
                .map(|r| r.id)
                .collect()
        };
        let mut purged = 0;
        for id in expired {
            let _write = self.write_lock(&id).await;
            // A save since the scan may have renewed it.
            let still_expired = self
                .state()
                .records
                .get(&id)
                .is_some_and(|r| r.expiry_date <= now);
            if still_expired {
                if let Some(path) = self.path(&id) {
                    blocking(move || remove_if_present(&path)).await?;
                }
                self.state().records.remove(&id);
                purged += 1;
            }
        }
        Ok(purged)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert/remove, so a panic cannot leave the map torn.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn write_lock(&self, id: &Id) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (id.0.rem_euclid(STRIPES as i128)) as usize;
        self.inner.write_locks[stripe].lock().await
    }

    fn path(&self, id: &Id) -> Option<PathBuf> {
        Some(self.inner.dir.as_ref()?.join(file_name(id)))
    }

    /// Writes the record's file; the caller holds the id's write lock.
    async fn persist(&self, record: &Record) -> session_store::Result<()> {
        let Some(dir) = self.inner.dir.clone() else {
            return Ok(());
        };
        let stored = Stored {
            id: record.id.to_string(),
            expires_unix: record.expiry_date.unix_timestamp(),
            expires_nanos: record.expiry_date.nanosecond(),
            data: &record.data,
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let name = file_name(&record.id);
        let path = dir.join(&name);
        blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(|e| backend("write", &path, &e))
    }
}

#[async_trait]
impl SessionStore for FileSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let reservation = {
            let mut state = self.state();
            // Collision mitigation as the trait asks: pick a fresh id until it is unused.
            while state.records.contains_key(&record.id) || state.reserved.contains(&record.id) {
                record.id = Id::default();
            }
            state.reserved.insert(record.id);
            Reservation {
                store: self,
                id: record.id,
            }
        };
        let _write = self.write_lock(&record.id).await;
        self.persist(record).await?;
        self.state().records.insert(record.id, record.clone());
        drop(reservation);
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let _write = self.write_lock(&record.id).await;
        self.persist(record).await?;
        self.state().records.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self
            .state()
            .records
            .get(id)
            .filter(|r| r.expiry_date > now)
            .cloned())
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let _write = self.write_lock(id).await;
        let removed = match self.path(id) {
            Some(path) => blocking({
                let path = path.clone();
                move || remove_if_present(&path)
            })
            .await
            .map_err(|e| backend("delete", &path, &e)),
            None => Ok(()),
        };
        // Forget it in memory even if the file stays: a logout must end the session now. The
        // error still tells the caller it could come back after a restart.
        self.state().records.remove(id);
        removed
    }
}

/// Releases an id reserved by `create`, also when the future is dropped midway.
struct Reservation<'a> {
    store: &'a FileSessionStore,
    id: Id,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.store.state().reserved.remove(&self.id);
    }
}

fn file_name(id: &Id) -> String {
    format!(
        "{}.json",
        hex::encode(Sha256::digest(id.to_string().as_bytes()))
    )
}

fn backend(action: &str, path: &Path, e: &io::Error) -> session_store::Error {
    session_store::Error::Backend(format!(
        "cannot {action} session file {}: {e}; check that the session directory is writable and the disk is not full",
        path.display()
    ))
}

/// Runs blocking file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// `Err(None)`: corrupt, safe to delete. `Err(Some(e))`: unreadable, so left alone.
fn read_record(path: &Path) -> Result<Record, Option<io::Error>> {
    let bytes = fs::read(path).map_err(Some)?;
    let stored: Stored<Data> = serde_json::from_slice(&bytes).map_err(|_| None)?;
    let id = stored.id.parse::<Id>().map_err(|_| None)?;
    let nanos = i128::from(stored.expires_unix) * 1_000_000_000 + i128::from(stored.expires_nanos);
    let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| None)?;
    Ok(Record {
        id,
        data: stored.data,
        expiry_date,
    })
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let written = (|| {
        let mut file = private_file_options().open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        remove_quietly(&tmp);
    }
    written?;
    // Makes the rename itself durable; some filesystems refuse to fsync a directory, and the
    // data is already safe in the file, so a failure here is not worth failing the save.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = remove_if_present(path) {
        tracing::warn!(file = %path.display(), error = %e, "cannot delete stale session file");
    }
}

#[cfg(unix)]
fn private_file_options() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options
}

#[cfg(not(unix))]
fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    options
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), "session directory is readable by other users; chmod 700 it");
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            Self(std::env::temp_dir().join(format!("tbff-sessions-{}", uuid::Uuid::new_v4())))
        }
        fn files(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(user: &str, ttl: time::Duration) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("user".to_owned(), json!(user))]),
            expiry_date: OffsetDateTime::now_utc() + ttl,
        }
    }

    const HOUR: time::Duration = time::Duration::HOUR;

    #[tokio::test]
    async fn create_load_save_delete_round_trip() {
        let tmp = TempDir::new();
        let store = FileSessionStore::open(&tmp.0).unwrap();
        let mut rec = record("alice", HOUR);
        store.create(&mut rec).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
        rec.data.insert("theme".into(), json!("dark"));
        store.save(&rec).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
        assert_eq!(tmp.files().len(), 1);
        store.delete(&rec.id).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
        assert!(tmp.files().is_empty());
        store.delete(&rec.id).await.unwrap(); // deleting twice is fine
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_in_private_files_not_named_by_id() {
        let tmp = TempDir::new();
        let mut rec = record("alice", HOUR);
        FileSessionStore::open(&tmp.0)
            .unwrap()
            .create(&mut rec)
            .await
            .unwrap();
        let reopened = FileSessionStore::open(&tmp.0).unwrap();
        assert_eq!(reopened.load(&rec.id).await.unwrap(), Some(rec.clone()));
        let names = tmp.files();
        assert_eq!(names.len(), 1);
        assert!(!names[0].contains(&rec.id.to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&tmp.0), 0o700);
            assert_eq!(mode(&tmp.0.join(&names[0])), 0o600);
        }
    }

    #[tokio::test]
    async fn expired_sessions_are_not_served_loaded_or_kept() {
        let tmp = TempDir::new();
        let store = FileSessionStore::open(&tmp.0).unwrap();
        let (mut old, mut live) = (record("old", -HOUR), record("live", HOUR));
        store.create(&mut old).await.unwrap();
        store.create(&mut live).await.unwrap();
        assert_eq!(store.load(&old.id).await.unwrap(), None);
        // A restart does not bring it back, and drops its file.
        let reopened = FileSessionStore::open(&tmp.0).unwrap();
        assert_eq!(reopened.len(), 1);
        assert_eq!(tmp.files().len(), 1);
        // The running store drops it on purge.
        assert_eq!(store.purge_expired().await.unwrap(), 1);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(store.len(), 1);
        assert_eq!(store.load(&live.id).await.unwrap(), Some(live));
    }

    #[tokio::test]
    async fn the_memory_store_keeps_no_files_and_purges_in_the_background() {
        let store = FileSessionStore::in_memory();
        let (mut old, mut live) = (record("old", time::Duration::ZERO), record("live", HOUR));
        store.create(&mut old).await.unwrap();
        store.create(&mut live).await.unwrap();
        assert_eq!(store.load(&live.id).await.unwrap(), Some(live.clone()));
        assert_eq!(store.load(&old.id).await.unwrap(), None);
        assert_eq!(store.len(), 2, "expired, but not purged yet");
        store.purge_every(std::time::Duration::from_millis(20));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.len() > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            store.len(),
            1,
            "the background purge removed the expired session"
        );
        store.delete(&live.id).await.unwrap();
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn corrupt_and_leftover_files_are_skipped_and_removed() {
        let tmp = TempDir::new();
        let mut good = record("alice", HOUR);
        FileSessionStore::open(&tmp.0)
            .unwrap()
            .create(&mut good)
            .await
            .unwrap();
        fs::write(tmp.0.join("0badc0de.json"), b"{not json").unwrap();
        // Valid content under a name that does not match its id (a copied file).
        let good_file = tmp.0.join(file_name(&good.id));
        fs::copy(&good_file, tmp.0.join("copied.json")).unwrap();
        fs::write(tmp.0.join(".abc.json.0000000000000001.tmp"), b"half").unwrap();
        fs::write(tmp.0.join("README"), b"not ours").unwrap();
        let store = FileSessionStore::open(&tmp.0).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.load(&good.id).await.unwrap(), Some(good.clone()));
        let mut expected = vec!["README".to_owned(), file_name(&good.id)];
        expected.sort();
        assert_eq!(tmp.files(), expected);
    }

    #[tokio::test]
    async fn create_never_overwrites_an_existing_session() {
        let tmp = TempDir::new();
        let store = FileSessionStore::open(&tmp.0).unwrap();
        let mut first = record("alice", HOUR);
        store.create(&mut first).await.unwrap();
        let mut second = record("mallory", HOUR);
        second.id = first.id;
        store.create(&mut second).await.unwrap();
        assert_ne!(second.id, first.id, "a colliding id is replaced");
        assert_eq!(store.load(&first.id).await.unwrap(), Some(first));
        assert_eq!(store.load(&second.id).await.unwrap(), Some(second));
        assert_eq!(tmp.files().len(), 2);
    }

    #[tokio::test]
    async fn a_failed_write_is_an_error_and_keeps_the_old_session() {
        let tmp = TempDir::new();
        let store = FileSessionStore::open(&tmp.0).unwrap();
        let mut rec = record("alice", HOUR);
        store.create(&mut rec).await.unwrap();
        // Root ignores permissions, so break the rename instead: the target becomes a
        // non-empty directory, which no one can replace with a file.
        let target = tmp.0.join(file_name(&rec.id));
        fs::remove_file(&target).unwrap();
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"x").unwrap();
        let mut changed = rec.clone();
        changed.data.insert("role".into(), json!("admin"));
        let err = store.save(&changed).await.unwrap_err();
        assert!(matches!(err, session_store::Error::Backend(_)), "{err:?}");
        assert!(err.to_string().contains("writable"), "{err}");
        assert_eq!(store.load(&rec.id).await.unwrap(), Some(rec.clone()));
        assert!(
            !tmp.files().iter().any(|n| n.ends_with(".tmp")),
            "temp file cleaned up"
        );
        // A create that cannot reach the disk leaves nothing behind in memory either.
        let mut other = record("bob", HOUR);
        other.id = Id(rec.id.0.wrapping_add(1));
        fs::create_dir(tmp.0.join(file_name(&other.id))).unwrap();
        fs::write(tmp.0.join(file_name(&other.id)).join("x"), b"x").unwrap();
        assert!(store.create(&mut other).await.is_err());
        assert_eq!(store.load(&other.id).await.unwrap(), None);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn debug_shows_no_session_data() {
        let tmp = TempDir::new();
        let shown = format!("{:?}", FileSessionStore::open(&tmp.0).unwrap());
        assert!(shown.contains("FileSessionStore") && shown.contains("sessions: 0"));
    }
}
