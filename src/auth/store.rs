//! The session store chosen by config, behind one type the session layer can hold.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Result, SessionStore};

/// Which session store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// The embedded persistent store, in this directory.
    File(PathBuf),
    /// In memory: sessions end with the process.
    Memory,
    /// In the shared Redis (`[redis]`): every instance sees every session.
    Redis,
}

/// Any [`SessionStore`]: the embedded file store, memory, and later Redis.
#[derive(Debug, Clone)]
pub struct DynStore(pub Arc<dyn SessionStore>);

#[async_trait]
impl SessionStore for DynStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.0.create(record).await
    }
    async fn save(&self, record: &Record) -> Result<()> {
        self.0.save(record).await
    }
    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.0.load(id).await
    }
    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.delete(id).await
    }
}
