//! The optional response cache: short-lived, per (pipe, format, effective params, identity),
//! with single-flight so N identical concurrent requests make one upstream call.
//!
//! It is for bursts (a dashboard opened by a whole team), not storage: TTLs are seconds, per
//! pipe, and only `200` answers of text formats up to `max_entry_bytes` are kept. The identity
//! in the key is the JWT `name` (per user and tenant by default), and the effective params
//! already carry the user's fixed params, so two tenants never share an entry.
//!
//! A flight runs in its own task: a client that goes away does not cancel the upstream call
//! the others wait for. Its answer is buffered (up to `max_entry_bytes`) so every waiter gets a
//! copy, errors included (they are shared, never kept). A bigger answer is streamed to one
//! waiter, and the others make their own call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, StreamExt, stream};
use tokio::time::Instant;

use super::respond::Attempts;
use crate::tinybird::params::Params;

/// What identifies a cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pipe: String,
    format: String,
    /// The effective parameters, sorted by name (values of one name keep their order).
    params: String,
    /// Whose answer it is (the JWT `name`).
    identity: String,
}

impl CacheKey {
    /// The key of a call; parameter order does not matter, repeated values' order does.
    pub fn new(pipe: &str, format: &str, params: &Params, identity: &str) -> Self {
        let mut pairs: Vec<(&str, &str)> = params.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut sorted = Params::default();
        for (name, value) in pairs {
            sorted.push(name, value);
        }
        Self {
            pipe: pipe.to_owned(),
            format: format.to_owned(),
            params: sorted.to_query_string(),
            identity: identity.to_owned(),
        }
    }
}

/// How a cached pipe's request was answered (also sent as `X-BFF-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From a kept entry.
    Hit,
    /// This request called upstream.
    Miss,
    /// Joined another request's upstream call.
    Shared,
}

impl CacheStatus {
    /// `hit`, `miss` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Shared => "shared",
        }
    }
}

/// A buffered answer.
struct Buffered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    attempts: Option<Attempts>,
}

impl Buffered {
    fn to_response(&self, leader: bool) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        if let Some(a) = self.attempts.filter(|_| leader) {
            response.extensions_mut().insert(a);
        }
        response
    }
}

enum Flight {
    Buffered(Buffered),
    /// Too big to buffer: the first waiter takes it.
    Streamed(Mutex<Option<Response>>),
}

type SharedFlight = Shared<BoxFuture<'static, Arc<Flight>>>;

enum Slot {
    InFlight(SharedFlight),
    Ready {
        reply: Arc<Flight>,
        expires: Instant,
    },
}

struct Inner {
    slots: Mutex<HashMap<CacheKey, Slot>>,
    max_entries: usize,
    max_entry_bytes: usize,
}

/// The response cache. Cheap to share; every method takes `&self`.
pub struct ResponseCache {
    inner: Arc<Inner>,
}

impl ResponseCache {
    /// An empty cache keeping at most `max_entries` answers of at most `max_entry_bytes`.
    pub fn new(max_entries: usize, max_entry_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                max_entries: max_entries.max(1),
                max_entry_bytes,
            }),
        }
    }

    /// The answer for `key`: kept, joined from a call in flight, or fetched (and kept `ttl`).
    ///
    /// `fetch` makes the upstream call; it runs at most once per flight, plus once for a
    /// waiter that could not share an answer too big to buffer.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        ttl: Duration,
        fetch: F,
    ) -> (Response, CacheStatus)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let (flight, status) = {
            let mut slots = self.inner.lock();
            match slots.get(&key) {
                Some(Slot::Ready { reply, expires }) if *expires > Instant::now() => {
                    if let Flight::Buffered(b) = &**reply {
                        return (b.to_response(false), CacheStatus::Hit);
                    }
                    unreachable!("only buffered answers are kept");
                }
                Some(Slot::InFlight(f)) => (f.clone(), CacheStatus::Shared),
                _ => {
                    let f = Inner::start(&self.inner, key.clone(), ttl, fetch());
                    slots.insert(key, Slot::InFlight(f.clone()));
                    (f, CacheStatus::Miss)
                }
            }
        };
        let streamed = match &*flight.await {
            Flight::Buffered(b) => return (b.to_response(status == CacheStatus::Miss), status),
            Flight::Streamed(taken) => taken.lock().unwrap_or_else(|p| p.into_inner()).take(),
        };
        match streamed {
            Some(response) => (response, status),
            None => (fetch().await, CacheStatus::Miss),
        }
    }

    /// Answers kept or in flight.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether nothing is kept or in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(
        inner: &Arc<Inner>,
        key: CacheKey,
        ttl: Duration,
        fetch: impl Future<Output = Response> + Send + 'static,
    ) -> SharedFlight {
        let task = {
            let (inner, key) = (Arc::clone(inner), key.clone());
            tokio::spawn(async move {
                let flight = Arc::new(buffer(fetch.await, inner.max_entry_bytes).await);
                inner.settle(&key, &flight, ttl);
                flight
            })
        };
        let inner = Arc::clone(inner);
        async move {
            task.await.unwrap_or_else(|_| {
                // The fetch panicked: forget the flight so the next request tries again.
                inner.lock().remove(&key);
                let mut response = Response::new(Body::from(r#"{"error":"internal error"}"#));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Arc::new(Flight::Streamed(Mutex::new(Some(response))))
            })
        }
        .boxed()
        .shared()
    }

    /// Keeps a `200` answer for `ttl` if there is room; otherwise forgets the flight.
    fn settle(&self, key: &CacheKey, flight: &Arc<Flight>, ttl: Duration) {
        let mut slots = self.lock();
        let keep = matches!(&**flight, Flight::Buffered(b) if b.status == StatusCode::OK);
        if keep {
            let now = Instant::now();
            if slots.len() > self.max_entries {
                slots.retain(|_, s| !matches!(s, Slot::Ready { expires, .. } if *expires <= now));
            }
            if slots.len() <= self.max_entries {
                let reply = Arc::new(kept_copy(flight));
                slots.insert(
                    key.clone(),
                    Slot::Ready {
                        reply,
                        expires: now + ttl,
                    },
                );
                return;
            }
        }
        slots.remove(key);
    }
}

/// The copy to keep: rate-limit headers describe the original call, not later hits.
fn kept_copy(flight: &Flight) -> Flight {
    let Flight::Buffered(b) = flight else {
        unreachable!("checked by the caller")
    };
    let mut headers = b.headers.clone();
    for name in [
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ] {
        headers.remove(name);
    }
    Flight::Buffered(Buffered {
        status: b.status,
        headers,
        body: b.body.clone(),
        attempts: None,
    })
}

/// Reads the body up to `cap` bytes; a longer (or broken) body is handed on as a stream.
async fn buffer(response: Response, cap: usize) -> Flight {
    let (parts, body) = response.into_parts();
    let mut data = body.into_data_stream();
    let mut read = BytesMut::new();
    let tail = loop {
        match data.next().await {
            None => {
                return Flight::Buffered(Buffered {
                    status: parts.status,
                    attempts: parts.extensions.get::<Attempts>().copied(),
                    headers: parts.headers,
                    body: read.freeze(),
                });
            }
            Some(Ok(chunk)) => {
                read.extend_from_slice(&chunk);
                if read.len() > cap {
                    break data.boxed();
                }
            }
            Some(Err(e)) => break stream::once(async move { Err(e) }).boxed(),
        }
    };
    let head = stream::once(async move { Ok::<_, axum::Error>(read.freeze()) });
    let response = Response::from_parts(parts, Body::from_stream(head.chain(tail)));
    Flight::Streamed(Mutex::new(Some(response)))
}

#[cfg(test)]
mod tests;
