//! Serving a router on a listener so that no client, however slow, can hold the server:
//! the accept loop shared by the BFF, its admin listener and the local endpoint.
//!
//! `axum::serve` has no timeouts: a socket that sends half a request head, a body trickled a
//! byte a second, or an idle keep-alive connection is held forever, and enough of them use up
//! the process's file descriptors until nothing (not even `/healthz`) is answered. Here each
//! connection is watched ([`ConnLimits`]):
//!
//! - a request head must arrive whole within `header_timeout` of its first byte (and a new
//!   connection must start one within the same time);
//! - a request body must arrive whole within `body_timeout` of its head, and a response that
//!   the client stops reading for `body_timeout` ends the connection;
//! - a kept-alive connection waiting for its next request is closed after
//!   `keep_alive_timeout`;
//! - at most `max_connections` are open: a new connection beyond that closes the one that has
//!   waited longest for a request head (a slow or idle client, never a request in flight),
//!   or, when every connection is busy, is itself closed at once. So a health check still gets
//!   in while the slots are held by slow clients.
//!
//! A leaf: it knows axum's `Router` and hyper, nothing of the BFF.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// How long clients may take and how many may be connected (`[server]`; the local endpoint
/// takes the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request head must arrive within this of its first byte (or of the connection).
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head; a response write that makes no
    /// progress for this long ends the connection.
    pub body_timeout: Duration,
    /// An idle kept-alive connection is closed after this.
    pub keep_alive_timeout: Duration,
    /// Open connections at most (see the module doc for what happens beyond).
    pub max_connections: usize,
}

impl Default for ConnLimits {
    /// 10 s for a head, 30 s for a body, 60 s idle, 4,096 connections.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// Descriptors kept free beyond the connections (upstream pools, Redis, files, logs).
const RESERVED_FDS: u64 = 256;

/// Raises the process's soft open-file limit to its hard limit, when it can, and returns
/// the soft limit in force (logging what it did). Called once at start.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    if soft < hard {
        match rlimit::increase_nofile_limit(hard) {
            Ok(raised) => {
                tracing::info!(from = soft, to = raised, "raised the open-file limit");
                return Some(raised);
            }
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit"),
        }
    }
    Some(soft)
}

impl ConnLimits {
    /// These limits with `max_connections` lowered so that `listeners` listeners with this
    /// cap each fit in `fd_limit` descriptors (a warning says so): past it, accepts would fail
    /// instead of evicting.
    pub fn within(mut self, fd_limit: Option<u64>, listeners: usize) -> Self {
        if let Some(limit) = fd_limit {
            let room = limit.saturating_sub(RESERVED_FDS) / listeners.max(1) as u64;
            let room = room.max(16) as usize;
            if self.max_connections > room {
                tracing::warn!(
                    configured = self.max_connections,
                    using = room,
                    fd_limit = limit,
                    "server.max_connections is above what the open-file limit allows; using less (raise `ulimit -n` or LimitNOFILE)"
                );
                self.max_connections = room;
            }
        }
        self
    }

    /// How often a connection's deadlines are looked at: a quarter of the shortest timeout,
    /// between 20 ms and 1 s.
    fn tick(&self) -> Duration {
        let shortest = self
            .header_timeout
            .min(self.body_timeout)
            .min(self.keep_alive_timeout);
        (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then stops
/// accepting, lets requests in flight finish (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let table = Arc::new(Table::default());
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset before accept: wait
                    // a moment rather than spin, and keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(conn) = table.admit(limits.max_connections) else {
            tracing::debug!(%peer, "every connection is busy: refusing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, stop, table) = (router.clone(), stop_rx.clone(), Arc::clone(&table));
        tasks.spawn(async move {
            serve_connection(stream, peer, router, limits, &conn, stop).await;
            table.remove(conn.id);
        });
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Milliseconds since the first call: the watched connections' clock.
fn now_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_millis() as u64
}

/// "Not set" for the millisecond fields of [`Conn`].
const UNSET: u64 = u64::MAX;

/// What the watchdog and the eviction need to know about one connection.
struct Conn {
    id: u64,
    /// When it started waiting for a request head (accept, or the end of the last response);
    /// [`UNSET`] while a request is in flight.
    waiting_since: AtomicU64,
    /// When the first byte of the awaited head arrived ([`UNSET`] until then).
    head_since: AtomicU64,
    /// When a write started making no progress ([`UNSET`] when none is stuck).
    write_stalled_since: AtomicU64,
    /// Requests in flight (a request counts until its response body is done).
    in_flight: AtomicUsize,
    /// Whether a request was served (the first wait is timed as a head, later ones as idle).
    served: AtomicBool,
    /// Set when a newer connection needs the slot.
    evicted: Notify,
}

/// The open connections.
#[derive(Default)]
struct Table {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    /// A slot for a new connection: free, or taken from the connection that has waited
    /// longest for a request head; `None` when all `max` are busy with requests.
    fn admit(&self, max: usize) -> Option<Arc<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if conns.len() >= max.max(1) {
            let oldest = conns
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|c| c.waiting_since.load(Ordering::Acquire))
                .map(|c| c.id)?;
            if let Some(victim) = conns.remove(&oldest) {
                victim.evicted.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            waiting_since: AtomicU64::new(now_ms()),
            head_since: AtomicU64::new(UNSET),
            write_stalled_since: AtomicU64::new(UNSET),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            evicted: Notify::new(),
        });
        conns.insert(id, Arc::clone(&conn));
        Some(conn)
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

impl Conn {
    /// Why the connection must close now, if it must.
    fn expired(&self, limits: &ConnLimits, now: u64) -> Option<&'static str> {
        let over = |since: u64, limit: Duration| {
            since != UNSET && now.saturating_sub(since) > limit.as_millis() as u64
        };
        if self.in_flight.load(Ordering::Acquire) > 0 {
            let stalled = self.write_stalled_since.load(Ordering::Acquire);
            return over(stalled, limits.body_timeout).then_some("the client stopped reading");
        }
        let head = self.head_since.load(Ordering::Acquire);
        if head != UNSET {
            return over(head, limits.header_timeout).then_some("request head too slow");
        }
        let waiting = self.waiting_since.load(Ordering::Acquire);
        if self.served.load(Ordering::Acquire) {
            over(waiting, limits.keep_alive_timeout).then_some("idle")
        } else {
            over(waiting, limits.header_timeout).then_some("no request")
        }
    }
}

/// One connection, until it ends, is evicted, times out, or the server stops.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    conn: &Arc<Conn>,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: Arc::clone(conn),
    });
    let watched = Arc::clone(conn);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let (router, conn) = (router.clone(), Arc::clone(&watched));
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.waiting_since.store(UNSET, Ordering::Release);
        conn.head_since.store(UNSET, Ordering::Release);
        conn.served.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + limits.body_timeout;
        let mut request = request.map(|body| {
            // A request without a body (most GETs) has nothing to time: no timer for it.
            if hyper::body::Body::is_end_stream(&body) {
                return axum::body::Body::new(body);
            }
            axum::body::Body::new(Deadline {
                inner: body,
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
                limit: limits.body_timeout,
            })
        });
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let done = InFlight(conn);
            let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
            Ok::<_, std::convert::Infallible>(response.map(|inner| Tracked { inner, _done: done }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut tick = tokio::time::interval(limits.tick());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.evicted.notified() => {
                tracing::debug!(%peer, "closed a connection waiting for a request: its slot was needed");
                return;
            }
            _ = tick.tick() => {
                if let Some(why) = conn.expired(&limits, now_ms()) {
                    tracing::debug!(%peer, why, "closed a slow or idle connection");
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The socket, noting when a request head starts arriving and when writes stall.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl Watched {
    fn note_write<T>(&self, poll: &Poll<T>) {
        let stalled = &self.conn.write_stalled_since;
        if poll.is_pending() {
            let _ = stalled.compare_exchange(UNSET, now_ms(), Ordering::AcqRel, Ordering::Acquire);
        } else {
            stalled.store(UNSET, Ordering::Release);
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.conn.head_since.compare_exchange(
                UNSET,
                now_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note_write(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request in flight until dropped (with its response body): then the connection waits
/// for the next head again.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.waiting_since.store(now_ms(), Ordering::Release);
        }
    }
}

/// A response body that holds its request's [`InFlight`] until hyper is done with it.
struct Tracked {
    inner: axum::body::Body,
    _done: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must arrive whole by a deadline.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

/// The error a request body late past `server.body_timeout` ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_timeout)")]
pub struct BodyTimeout(Duration);

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit))))),
                Poll::Pending => Poll::Pending,
            },
            ready => ready.map(|frame| frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 2,
        }
    }

    #[test]
    fn a_full_table_gives_the_longest_waiting_slot_and_never_a_busy_one() {
        let table = Table::default();
        let first = table.admit(2).unwrap();
        let second = table.admit(2).unwrap();
        first.waiting_since.store(5_000, Ordering::Release);
        second.waiting_since.store(1_000, Ordering::Release);
        // The longest-waiting one (second, waiting since 1 s) makes room.
        let third = table.admit(2).unwrap();
        assert!(!table.conns.lock().unwrap().contains_key(&second.id));
        // With both remaining connections busy, a newcomer is refused.
        for c in [&first, &third] {
            c.in_flight.store(1, Ordering::Release);
        }
        assert!(table.admit(2).is_none());
        assert_eq!(table.conns.lock().unwrap().len(), 2);
    }

    #[test]
    fn deadlines_follow_the_phase_of_the_connection() {
        let table = Table::default();
        let conn = table.admit(2).unwrap();
        let l = limits();
        let start = conn.waiting_since.load(Ordering::Acquire);
        assert_eq!(conn.expired(&l, start + 10_000), None);
        assert_eq!(conn.expired(&l, start + 10_001), Some("no request"));
        conn.served.store(true, Ordering::Release);
        assert_eq!(
            conn.expired(&l, start + 59_000),
            None,
            "idle, within keep-alive"
        );
        assert_eq!(conn.expired(&l, start + 60_001), Some("idle"));
        conn.head_since.store(start + 50_000, Ordering::Release);
        assert_eq!(
            conn.expired(&l, start + 60_001),
            Some("request head too slow")
        );
        conn.in_flight.store(1, Ordering::Release);
        assert_eq!(
            conn.expired(&l, start + 1_000_000),
            None,
            "a request in flight"
        );
        conn.write_stalled_since.store(start, Ordering::Release);
        assert_eq!(
            conn.expired(&l, start + 30_001),
            Some("the client stopped reading")
        );
    }

    #[test]
    fn fd_limits_bound_the_connection_cap() {
        assert_eq!(limits().within(Some(1024), 1).max_connections, 2);
        let big = ConnLimits {
            max_connections: 100_000,
            ..limits()
        };
        assert_eq!(big.within(Some(1024), 1).max_connections, 768);
        assert_eq!(big.within(Some(1024), 3).max_connections, 256);
        assert_eq!(big.within(None, 3).max_connections, 100_000);
    }
}
