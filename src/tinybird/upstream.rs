//! The upstream Tinybird client of proxy mode: one pooled HTTP client and its retry policy.
//!
//! The client is hyper's own (`hyper_util`'s pooled client over rustls), used directly: one
//! keep-alive pool per Tinybird host shared by every worker thread, HTTP/2 when the host
//! offers it over TLS (ALPN), and each call's request built once from the host parsed at
//! start, with no URL parsing, redirect, cookie or retry layers of a general-purpose client.
//!
//! Pipe reads are idempotent (a `GET`, or a form `POST` that only carries parameters), so every
//! call may be retried. What to retry is a pure decision ([`classify`]): 429 and 500/502/503/504
//! and connection failures, never 400/403/404/408 (a query timeout rarely passes on a second
//! try). How long to wait is another ([`next_delay`]): `Retry-After` when the server sent one,
//! else capped exponential backoff with full jitter, and never past the request's deadline.
//! backon drives the loop; its own jitter only adds delay, so full jitter is applied here.
//!
//! Errors never carry the upstream URL: its query string holds the caller's parameters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures_util::Stream;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::{ExposeSecret, SecretString};

use crate::tinybird::params::Params;

/// When and how often to retry one proxied call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; it doubles per retry.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// Budget for every attempt and wait until response headers arrive.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }
}

/// Whether an attempt's end is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient: try again after a delay.
    Retry,
    /// Final: hand it to the client as it is.
    NoRetry,
}

/// How one attempt ended, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Tinybird answered with this status.
    Status(StatusCode),
    /// No connection could be made (refused, DNS, connect timeout).
    ConnectFailed,
    /// The connection broke before the response headers arrived.
    Dropped,
    /// No response headers within the read timeout.
    TimedOut,
    /// Anything else (a bug or an unusable response).
    Other,
}

/// The retry decision: 429 and 5xx (docs/tinybird.md, "Retries") plus connection failures; nothing else.
pub fn classify(end: AttemptEnd) -> Class {
    match end {
        AttemptEnd::Status(s) => match s.as_u16() {
            429 | 500 | 502 | 503 | 504 => Class::Retry,
            _ => Class::NoRetry,
        },
        AttemptEnd::ConnectFailed | AttemptEnd::Dropped => Class::Retry,
        AttemptEnd::TimedOut | AttemptEnd::Other => Class::NoRetry,
    }
}

/// Which [`AttemptEnd`] a client error is: no connection, or one that broke before the
/// response headers (hyper hands back only requests it could not send, or whose connection
/// closed before the answer).
pub fn end_of(err: &hyper_util::client::legacy::Error) -> AttemptEnd {
    if err.is_connect() {
        AttemptEnd::ConnectFailed
    } else {
        AttemptEnd::Dropped
    }
}

/// `Retry-After` in seconds; an HTTP date is ignored (the backoff applies instead).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Full jitter: a uniform pick in `[0, ceiling]`, `unit` being the random draw in `[0, 1]`.
pub fn full_jitter(ceiling: Duration, unit: f64) -> Duration {
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// The wait before the next attempt, or `None` to stop and hand over the last answer.
///
/// `backoff` is the backoff ceiling for this retry (`None` once attempts are used up),
/// `remaining` what is left of the deadline: a wait that would end past it is not worth it.
pub fn next_delay(
    retry_after: Option<Duration>,
    backoff: Option<Duration>,
    unit: f64,
    remaining: Duration,
) -> Option<Duration> {
    let ceiling = backoff?;
    let delay = retry_after.unwrap_or_else(|| full_jitter(ceiling, unit));
    (delay < remaining).then_some(delay)
}

/// The backoff ceilings: `base, 2·base, 4·base, ...` capped at `max_delay`, one per retry.
pub fn backoff(policy: &RetryPolicy) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(2.0)
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
}

/// A failed attempt, for the retry driver.
pub trait AttemptError {
    /// How the attempt ended.
    fn end(&self) -> AttemptEnd;
    /// What the server asked us to wait, if anything.
    fn retry_after(&self) -> Option<Duration>;
}

/// What the retry driver ended with.
#[derive(Debug)]
pub enum Retried<T, E> {
    /// An attempt succeeded, or ended in a way not worth retrying.
    Done(T),
    /// The last retryable failure, once attempts or time ran out.
    Failed(E),
    /// The deadline passed during an attempt.
    DeadlineExceeded,
}

/// Runs `attempt` under `policy`; returns the result and how many attempts were made.
pub async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
) -> (Retried<T, E>, u32)
where
    E: AttemptError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let count = AtomicU32::new(0);
    let started = tokio::time::Instant::now();
    let run = (|| {
        count.fetch_add(1, Ordering::Relaxed);
        attempt()
    })
    .retry(backoff(policy))
    .when(|e: &E| classify(e.end()) == Class::Retry)
    .adjust(|e: &E, ceiling| {
        let remaining = policy.deadline.saturating_sub(started.elapsed());
        next_delay(e.retry_after(), ceiling, rand::random::<f64>(), remaining)
    });
    let result = match tokio::time::timeout(policy.deadline, run).await {
        Ok(Ok(value)) => Retried::Done(value),
        Ok(Err(e)) => Retried::Failed(e),
        Err(_) => Retried::DeadlineExceeded,
    };
    (result, count.load(Ordering::Relaxed))
}

/// One pipe call: what to read and with which credential.
pub struct PipeCall<'a> {
    /// A valid pipe name (checked again here: it becomes part of the URL).
    pub pipe: &'a str,
    /// The format extension (`json`, `csv`, ...).
    pub format: &'a str,
    /// The effective parameters (fixed params applied, `token` removed).
    pub params: &'a Params,
    /// Sent as `Authorization: Bearer`.
    pub bearer: &'a SecretString,
    /// Send the parameters as a form `POST` body instead of a query string.
    pub form: bool,
}

/// How a call ended after retries.
#[derive(Debug)]
pub enum Outcome {
    /// Tinybird's answer (success or not), body not yet read.
    Response(Answer),
    /// No connection, or it kept breaking (502).
    Unreachable(String),
    /// The deadline or the read timeout passed (504).
    TimedOut(String),
    /// Something else went wrong (502).
    Failed(String),
}

/// Tinybird's answer: status and headers, and the body still on the wire.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// Every header Tinybird sent (the proxy forwards an allowlist).
    pub headers: HeaderMap,
    body: Incoming,
    /// Longest silence between two body chunks.
    read_timeout: Duration,
}

impl Answer {
    /// The announced body size (`Content-Length`), if any.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The body as it arrives, chunk by chunk (trailers dropped); a silence longer than the
    /// read timeout, or a connection that breaks, ends it with an error.
    pub fn into_chunks(self) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
        let read_timeout = self.read_timeout;
        futures_util::stream::unfold(Some(self.body), move |body| async move {
            let mut body = body?;
            loop {
                let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
                    Err(_) => {
                        let silence = humantime::format_duration(read_timeout);
                        let e = format!("no body bytes within the proxy read timeout ({silence})");
                        return Some((Err(e), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => return Some((Err(e.to_string()), None)),
                    Ok(Some(Ok(frame))) => frame,
                };
                if let Ok(data) = frame.into_data() {
                    return Some((Ok(data), Some(body)));
                }
            }
        })
    }
}

/// Why an attempt got no answer.
#[derive(Debug)]
struct Transport {
    end: AttemptEnd,
    /// What happened, innermost cause first ("Connection refused"); never the URL.
    cause: String,
}

enum Failure {
    Status(Answer),
    Transport(Transport),
}

impl AttemptError for Failure {
    fn end(&self) -> AttemptEnd {
        match self {
            Failure::Status(r) => AttemptEnd::Status(r.status),
            Failure::Transport(t) => t.end,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status(r) => retry_after(&r.headers),
            Failure::Transport(_) => None,
        }
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The pooled client for one Tinybird host.
pub struct Upstream {
    /// One client, so connections are kept alive and reused across users and threads.
    client: HttpsClient,
    /// `https`, from the configured URL, parsed once: fixed by config, never by a request.
    scheme: Scheme,
    /// `api.tinybird.co`, likewise.
    authority: Authority,
    /// The configured URL's path without its trailing `/` (usually empty).
    base_path: Arc<str>,
    /// Longest wait for the response headers of one attempt, and between body chunks.
    read_timeout: Duration,
    /// Retries and deadline.
    policy: RetryPolicy,
    /// Attempts waiting for Tinybird's response headers at once, and so connections open:
    /// a burst of clients queues here (within the deadline) instead of opening one
    /// connection (and its buffers) each.
    in_flight: tokio::sync::Semaphore,
}

/// How the upstream client connects.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// TCP/TLS connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for headers or body bytes.
    pub read_timeout: Duration,
    /// Attempts in flight at once (see [`Upstream`]).
    pub max_in_flight: usize,
}

const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("tinybird-bff/", env!("CARGO_PKG_VERSION")));
const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

impl Upstream {
    /// Builds the client; no redirects are followed (the host is fixed by config). `https`
    /// hosts are verified against the platform's roots (`SSL_CERT_FILE` is honoured).
    pub fn new(base: &str, policy: RetryPolicy, connection: Connection) -> anyhow::Result<Self> {
        let invalid = |why: String| anyhow::anyhow!("invalid Tinybird URL {base:?}: {why}");
        let uri: Uri = base
            .trim_end_matches('/')
            .parse()
            .map_err(|e| invalid(format!("{e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(invalid(
                "it needs a scheme and a host, like https://api.tinybird.co".into(),
            ));
        };
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid("the scheme must be http or https".into()));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connection.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(30)));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?;
        let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)?
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(connection.max_in_flight)
            .build(https);
        Ok(Self {
            client,
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').into(),
            read_timeout: connection.read_timeout,
            policy,
            in_flight: tokio::sync::Semaphore::new(connection.max_in_flight.max(1)),
        })
    }

    /// The retry policy in use.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Calls `{base}/v0/pipes/{pipe}.{format}` with retries; returns the outcome and attempts.
    pub async fn call(&self, call: &PipeCall<'_>) -> (Outcome, u32) {
        let safe_format = !call.format.is_empty()
            && call.format.len() <= 16
            && call.format.bytes().all(|b| b.is_ascii_lowercase());
        if !crate::tinybird::names::is_valid_pipe_name(call.pipe) || !safe_format {
            return (Outcome::Failed("invalid pipe name or format".into()), 0);
        }
        let path = format!("/v0/pipes/{}.{}", call.pipe, call.format);
        self.call_path(&path, call.params, call.bearer, call.form)
            .await
    }

    /// Calls `{base}/v0/sql` with the query in `params` (`q`), with the same retries: SQL
    /// reads are idempotent (a `GET`, or a form `POST` that only carries the query).
    pub async fn sql(&self, params: &Params, bearer: &SecretString, form: bool) -> (Outcome, u32) {
        self.call_path("/v0/sql", params, bearer, form).await
    }

    async fn call_path(
        &self,
        path: &str,
        params: &Params,
        bearer: &SecretString,
        form: bool,
    ) -> (Outcome, u32) {
        let query = params.to_query_string();
        let Some(request) = self.request_parts(path, query, bearer, form) else {
            return (
                Outcome::Failed("the upstream request could not be built".into()),
                0,
            );
        };
        let (result, attempts) = with_retries(&self.policy, || self.attempt(&request)).await;
        let outcome = match result {
            Retried::Done(response) | Retried::Failed(Failure::Status(response)) => {
                Outcome::Response(response)
            }
            Retried::Failed(Failure::Transport(t)) => transport_outcome(t, attempts),
            Retried::DeadlineExceeded => Outcome::TimedOut(format!(
                "Tinybird did not answer within the proxy deadline ({})",
                humantime::format_duration(self.policy.deadline)
            )),
        };
        (outcome, attempts)
    }

    /// What every attempt of one call sends: built once, cloned per attempt (the body and
    /// header values are reference-counted).
    fn request_parts(
        &self,
        path: &str,
        query: String,
        bearer: &SecretString,
        form: bool,
    ) -> Option<Prepared> {
        let base = &self.base_path;
        let target = match form || query.is_empty() {
            true => format!("{base}{path}"),
            false => format!("{base}{path}?{query}"),
        };
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_maybe_shared(Bytes::from(target)).ok()?)
            .build()
            .ok()?;
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {}", bearer.expose_secret())).ok()?;
        authorization.set_sensitive(true);
        let body = if form {
            Bytes::from(query)
        } else {
            Bytes::new()
        };
        Some(Prepared {
            uri,
            authorization,
            body,
            form,
        })
    }

    async fn attempt(&self, prepared: &Prepared) -> Result<Answer, Failure> {
        // Never closed, so acquiring only waits (within the deadline, like the attempt). Taken
        // before the request is sent, so a queued call holds no connection yet.
        let _slot = self.in_flight.acquire().await;
        let mut request = Request::new(Full::new(prepared.body.clone()));
        *request.uri_mut() = prepared.uri.clone();
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, AGENT);
        headers.insert(AUTHORIZATION, prepared.authorization.clone());
        if prepared.form {
            *request.method_mut() = Method::POST;
            request.headers_mut().insert(CONTENT_TYPE, FORM);
        }
        let sent = tokio::time::timeout(self.read_timeout, self.client.request(request));
        let response = match sent.await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                return Err(Failure::Transport(Transport {
                    end: end_of(&e),
                    cause: innermost_cause(&e),
                }));
            }
            Err(_) => {
                return Err(Failure::Transport(Transport {
                    end: AttemptEnd::TimedOut,
                    cause: format!(
                        "no response headers within {}",
                        humantime::format_duration(self.read_timeout)
                    ),
                }));
            }
        };
        let (head, body) = response.into_parts();
        let answer = Answer {
            status: head.status,
            headers: head.headers,
            body,
            read_timeout: self.read_timeout,
        };
        match classify(AttemptEnd::Status(answer.status)) {
            Class::Retry => Err(Failure::Status(answer)),
            Class::NoRetry => Ok(answer),
        }
    }
}

/// One call's request, built once for all its attempts.
struct Prepared {
    uri: Uri,
    authorization: HeaderValue,
    body: Bytes,
    form: bool,
}

/// The innermost cause says what happened ("Connection refused"); hyper's errors carry no URL.
fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

fn transport_outcome(t: Transport, attempts: u32) -> Outcome {
    let cause = t.cause;
    match t.end {
        AttemptEnd::ConnectFailed | AttemptEnd::Dropped => Outcome::Unreachable(format!(
            "cannot reach Tinybird after {attempts} attempt(s): {cause}"
        )),
        AttemptEnd::TimedOut => Outcome::TimedOut(format!(
            "Tinybird did not answer within the proxy read timeout: {cause}"
        )),
        _ => Outcome::Failed(format!("the call to Tinybird failed: {cause}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn retries_only_transient_failures() {
        for code in [429, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(classify(AttemptEnd::Status(s)), Class::Retry, "{code}");
        }
        for code in [200, 204, 400, 401, 403, 404, 405, 408, 413, 501] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(classify(AttemptEnd::Status(s)), Class::NoRetry, "{code}");
        }
        assert_eq!(classify(AttemptEnd::ConnectFailed), Class::Retry);
        assert_eq!(classify(AttemptEnd::Dropped), Class::Retry);
        assert_eq!(classify(AttemptEnd::TimedOut), Class::NoRetry);
        assert_eq!(classify(AttemptEnd::Other), Class::NoRetry);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, " 3 ".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_once_per_retry() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: MS(100),
            max_delay: MS(500),
            deadline: MS(10_000),
        };
        // backon multiplies in f32: compare whole milliseconds.
        let ceilings: Vec<_> = backoff(&policy)
            .build()
            .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 500, 500]);
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(
            backoff(&once).build().count(),
            0,
            "one attempt means no retry"
        );
    }

    #[test]
    fn delays_use_full_jitter_or_retry_after_and_respect_the_deadline() {
        let left = Duration::from_secs(10);
        assert_eq!(next_delay(None, Some(MS(400)), 0.0, left), Some(MS(0)));
        assert_eq!(next_delay(None, Some(MS(400)), 0.5, left), Some(MS(200)));
        assert_eq!(next_delay(None, Some(MS(400)), 1.0, left), Some(MS(400)));
        // The server's word beats the backoff, even when longer.
        assert_eq!(
            next_delay(Some(Duration::from_secs(3)), Some(MS(100)), 0.5, left),
            Some(Duration::from_secs(3))
        );
        // Attempts used up, or a wait that ends past the deadline: stop now.
        assert_eq!(
            next_delay(Some(Duration::from_secs(1)), None, 0.5, left),
            None
        );
        assert_eq!(
            next_delay(Some(Duration::from_secs(30)), Some(MS(100)), 0.5, left),
            None
        );
        assert_eq!(next_delay(None, Some(MS(400)), 1.0, MS(300)), None);
    }

    struct Fake(AttemptEnd, Option<Duration>);
    impl AttemptError for Fake {
        fn end(&self) -> AttemptEnd {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            self.1
        }
    }
    fn status(code: u16) -> AttemptEnd {
        AttemptEnd::Status(StatusCode::from_u16(code).unwrap())
    }

    // Real time, kept short: tokio's `test-util` (pause/advance) is not enabled in this crate.
    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: MS(10),
            max_delay: MS(40),
            deadline: MS(2_000),
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_until_it_succeeds() {
        let mut calls = 0;
        let started = std::time::Instant::now();
        let (result, attempts) = with_retries(&quick(), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Fake(status(503), None))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(result, Retried::Done(3)));
        assert_eq!(attempts, 3);
        assert!(
            started.elapsed() < MS(500),
            "two waits of at most 10ms and 20ms"
        );
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_the_last_answer_is_kept() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..quick()
        };
        let started = std::time::Instant::now();
        let (result, attempts) = with_retries(&policy, || async {
            Err::<(), _>(Fake(status(429), Some(Duration::from_secs(1))))
        })
        .await;
        assert!(matches!(result, Retried::Failed(Fake(AttemptEnd::Status(s), _)) if s == 429));
        assert_eq!(attempts, 2);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < MS(1_900),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn final_statuses_are_not_retried() {
        for code in [400, 403, 404, 408] {
            let (result, attempts) = with_retries(&quick(), || async {
                Err::<(), _>(Fake(status(code), None))
            })
            .await;
            assert!(matches!(result, Retried::Failed(_)));
            assert_eq!(attempts, 1, "{code}");
        }
    }

    #[tokio::test]
    async fn the_deadline_bounds_slow_attempts_and_long_waits() {
        let policy = RetryPolicy {
            deadline: MS(200),
            ..quick()
        };
        let started = std::time::Instant::now();
        let (result, _) = with_retries(&policy, || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Fake>(())
        })
        .await;
        assert!(matches!(result, Retried::DeadlineExceeded));
        let waited = started.elapsed();
        assert!(waited >= MS(200) && waited < MS(1_000), "{waited:?}");
        // A Retry-After longer than the deadline hands the 429 back at once.
        let started = std::time::Instant::now();
        let (result, attempts) = with_retries(&policy, || async {
            Err::<(), _>(Fake(status(429), Some(Duration::from_secs(5))))
        })
        .await;
        assert!(matches!(result, Retried::Failed(_)));
        assert_eq!(attempts, 1);
        assert!(started.elapsed() < MS(100));
    }
}
