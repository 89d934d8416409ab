//! Where translations run: on their own threads, a few at a time, with a stack sized for the
//! deepest query the limits let through, and never longer than the request's deadline.
//!
//! Translating ClickHouse SQL recurses over the parsed query, and so do the parser on some
//! constructs and the drop of a parsed expression chain (`1 + 1 + ... + 1` is a chain as long
//! as the query). On an async worker that starved the server (two such queries held both
//! workers: no `/healthz`, no logins) and overflowed its 2 MiB stack at 700 terms (SIGABRT).
//! Here each translation gets a fresh thread whose stack grows with `max_query_size` (the
//! longest chain a query of that size can hold) and `max_ast_depth` (how deep the translator
//! recurses), at most [`Offload::new`]'s `concurrency` at
//! once; the caller waits asynchronously and gives up at the deadline (the translator checks
//! the same deadline itself and stops soon after). A translation already cached costs no
//! thread: callers look in the cache first.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::clickhouse::TranslateLimits;

/// Stack bytes per byte of query text: dropping a parsed `1+1+...` chain recurses once per
/// node, two bytes of text each; measured at about 80 bytes of stack per node in a release
/// build (131,072 nodes overflow 8 MiB, fit in 16 MiB), so 64 per byte of text.
pub const STACK_PER_QUERY_BYTE: usize = 64;

/// Stack bytes per level of expression nesting the translator recurses through: measured at
/// about 3 KiB in a release build (600 levels fit in 2 MiB, 700 do not).
pub const STACK_PER_AST_LEVEL: usize = 4 * 1024;

/// Stack every translation thread gets besides the above.
pub const BASE_STACK: usize = 2 * 1024 * 1024;

/// Debug builds use several times the stack per frame.
const BUILD_FACTOR: usize = if cfg!(debug_assertions) { 8 } else { 1 };

/// Why offloaded work gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// The deadline passed before the work finished (or found a free slot).
    #[error("the query took longer than its time limit")]
    Timeout,
    /// No thread could be started (the process is out of threads or memory).
    #[error("could not start a thread for the query: {0}")]
    Spawn(String),
    /// The work panicked.
    #[error("the query's translation failed unexpectedly")]
    Panicked,
}

/// Runs blocking, deeply recursive work off the async workers.
#[derive(Debug)]
pub struct Offload {
    slots: Arc<Semaphore>,
    stack: usize,
}

impl Offload {
    /// At most `concurrency` threads at once, each with a stack fit for the largest and
    /// deepest query `limits` let through.
    pub fn new(concurrency: usize, limits: &TranslateLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            stack: stack_for(limits),
        }
    }

    /// Runs `work` on a thread of its own; waits for it until `deadline`.
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OffloadError> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let slot = tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| OffloadError::Timeout)?
            .expect("the semaphore is never closed");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("tb-translate".into())
            .stack_size(self.stack)
            .spawn(move || {
                // The slot is the thread's until it ends, even when nobody waits any more.
                let _slot = slot;
                let _ = tx.send(work());
            })
            .map_err(|e| OffloadError::Spawn(e.to_string()))?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(OffloadError::Panicked),
            Err(_) => Err(OffloadError::Timeout),
        }
    }
}

/// The stack a translation within `limits` may need (virtual memory: a thread touches only
/// what it uses).
pub fn stack_for(limits: &TranslateLimits) -> usize {
    let bytes = BASE_STACK
        .saturating_add(limits.max_query_size.saturating_mul(STACK_PER_QUERY_BYTE))
        .saturating_add(limits.max_ast_depth.saturating_mul(STACK_PER_AST_LEVEL));
    bytes.saturating_mul(BUILD_FACTOR)
}
