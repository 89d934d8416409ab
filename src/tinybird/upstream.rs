//! The upstream Tinybird client of proxy mode: one pooled HTTP client and its retry policy.
//!
//! Pipe reads are idempotent (a `GET`, or a form `POST` that only carries parameters), so every
//! call may be retried. What to retry is a pure decision ([`classify`]): 429 and 500/502/503/504
//! and connection failures, never 400/403/404/408 (a query timeout rarely passes on a second
//! try). How long to wait is another ([`next_delay`]): `Retry-After` when the server sent one,
//! else capped exponential backoff with full jitter, and never past the request's deadline.
//! backon drives the loop; its own jitter only adds delay, so full jitter is applied here.
//!
//! Errors never carry the upstream URL: its query string holds the caller's parameters.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
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

/// The retry decision: the contract's 429 and 5xx plus connection failures; nothing else.
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

/// Which [`AttemptEnd`] a transport error is.
pub fn end_of(err: &reqwest::Error) -> AttemptEnd {
    if err.is_connect() {
        AttemptEnd::ConnectFailed
    } else if err.is_timeout() {
        AttemptEnd::TimedOut
    } else if err.is_request() {
        AttemptEnd::Dropped
    } else {
        AttemptEnd::Other
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
    Response(reqwest::Response),
    /// No connection, or it kept breaking (502).
    Unreachable(String),
    /// The deadline or the read timeout passed (504).
    TimedOut(String),
    /// Something else went wrong (502).
    Failed(String),
}

enum Failure {
    Status(reqwest::Response),
    Transport(reqwest::Error),
}

impl AttemptError for Failure {
    fn end(&self) -> AttemptEnd {
        match self {
            Failure::Status(r) => AttemptEnd::Status(r.status()),
            Failure::Transport(e) => end_of(e),
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status(r) => retry_after(r.headers()),
            Failure::Transport(_) => None,
        }
    }
}

/// The pooled client for one Tinybird host.
pub struct Upstream {
    /// One client, so connections are kept alive and reused across users.
    client: reqwest::Client,
    /// `https://api.tinybird.co`, parsed once: fixed by config, never by a request.
    base: reqwest::Url,
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

impl Upstream {
    /// Builds the client; no redirects are followed (the host is fixed by config).
    pub fn new(base: &str, policy: RetryPolicy, connection: Connection) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("tinybird-bff/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connection.connect_timeout)
            .read_timeout(connection.read_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(connection.max_in_flight)
            .tcp_keepalive(Duration::from_secs(30))
            .build()?;
        let base = reqwest::Url::parse(base.trim_end_matches('/'))
            .map_err(|e| anyhow::anyhow!("invalid Tinybird URL {base:?}: {e}"))?;
        Ok(Self {
            client,
            base,
            policy,
            in_flight: tokio::sync::Semaphore::new(connection.max_in_flight.max(1)),
        })
    }

    /// `{base}{path}` without parsing the base again (`path` starts with `/v0/` and holds
    /// only validated names).
    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url
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
        let url = self.url(&format!("/v0/pipes/{}.{}", call.pipe, call.format));
        self.call_url(&url, call.params, call.bearer, call.form)
            .await
    }

    /// Calls `{base}/v0/sql` with the query in `params` (`q`), with the same retries: SQL
    /// reads are idempotent (a `GET`, or a form `POST` that only carries the query).
    pub async fn sql(&self, params: &Params, bearer: &SecretString, form: bool) -> (Outcome, u32) {
        self.call_url(&self.url("/v0/sql"), params, bearer, form)
            .await
    }

    async fn call_url(
        &self,
        url: &reqwest::Url,
        params: &Params,
        bearer: &SecretString,
        form: bool,
    ) -> (Outcome, u32) {
        let query = params.to_query_string();
        let (result, attempts) =
            with_retries(&self.policy, || self.attempt(url, &query, bearer, form)).await;
        let outcome = match result {
            Retried::Done(response) | Retried::Failed(Failure::Status(response)) => {
                Outcome::Response(response)
            }
            Retried::Failed(Failure::Transport(e)) => transport_outcome(e, attempts),
            Retried::DeadlineExceeded => Outcome::TimedOut(format!(
                "Tinybird did not answer within the proxy deadline ({})",
                humantime::format_duration(self.policy.deadline)
            )),
        };
        (outcome, attempts)
    }

    async fn attempt(
        &self,
        url: &reqwest::Url,
        query: &str,
        bearer: &SecretString,
        form: bool,
    ) -> Result<reqwest::Response, Failure> {
        // Never closed, so acquiring only waits (within the deadline, like the attempt). Taken
        // before the request is built, so a queued call holds no request yet.
        let _slot = self.in_flight.acquire().await;
        let request = if form {
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(query.to_owned())
        } else {
            let mut url = url.clone();
            url.set_query(Some(query).filter(|q| !q.is_empty()));
            self.client.get(url)
        };
        let response = request
            .bearer_auth(bearer.expose_secret())
            .send()
            .await
            .map_err(|e| Failure::Transport(e.without_url()))?;
        match classify(AttemptEnd::Status(response.status())) {
            Class::Retry => Err(Failure::Status(response)),
            Class::NoRetry => Ok(response),
        }
    }
}

fn transport_outcome(e: reqwest::Error, attempts: u32) -> Outcome {
    // The innermost causes say what happened ("Connection refused"); the URL was removed.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let cause = causes.last().cloned().unwrap_or_else(|| e.to_string());
    match end_of(&e) {
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
