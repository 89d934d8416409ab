//! From Tinybird's answer to the client's: status kept, a few headers, the body streamed.
//!
//! The status passes through unchanged (a 429 stays a 429 with its `Retry-After`: turning it
//! into a 401 or 500 would send users debugging credentials). Headers are an allowlist, so
//! hop-by-hop headers, cookies and anything else Tinybird adds never reach the browser. The
//! body is streamed, never parsed, and cut once it passes `max_response_bytes`.
//!
//! Tinybird echoes a refused token in its 403 (`Invalid token b'<token>': ...`), so the body,
//! the forwarded header values and any error text pass the call's [`Redactor`] first: the
//! credential the BFF sent never reaches the browser, whatever Tinybird answers.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::rewrite::RewriteError;
use crate::error::AppError;
use crate::redact::Redactor;
use crate::tinybird::upstream::{Answer, Outcome};

/// Response headers copied from Tinybird; everything else is dropped.
pub const FORWARDED_HEADERS: &[&str] = &[
    "content-type",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// Tinybird's `X-Request-ID` of the answer (its `pipe_stats_rt.request_id`); a response
/// extension, so usage can tell proxied rows from direct ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequestId(pub String);

/// How many upstream attempts a response took; a response extension, read for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts(pub u32);

/// Everything the proxy answers with itself, as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A BFF-wide error (401 not logged in, 403 no grant or CSRF, ...).
    #[error(transparent)]
    App(#[from] AppError),
    /// A pipe name that cannot exist (404) or an unknown format (400) or `q` (403).
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// The query string is longer than the proxy accepts (414).
    #[error(
        "the query string is longer than {0} bytes: send the parameters as a form POST body instead"
    )]
    UriTooLong(usize),
    /// The form body is larger than the proxy accepts (413).
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// Tinybird could not be reached, or its answer is unusable (502).
    #[error("{0}")]
    BadGateway(String),
    /// Tinybird did not answer in time (504).
    #[error("{0}")]
    GatewayTimeout(String),
    /// `/api/sql` with `credentials = "static"`: one read token would read every tenant (501).
    #[error(
        "/api/sql is off on this server because [proxy] credentials = \"static\": a static read token would read every tenant's rows unfiltered. Set credentials = \"jwt\" (the default), or call {{tinybird}}/v0/sql directly with the JWT from POST /api/token"
    )]
    SqlNeedsJwt,
}

impl ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::App(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::Rewrite(RewriteError::NotAPipe(_)) => StatusCode::NOT_FOUND,
            ProxyError::Rewrite(RewriteError::Format(_) | RewriteError::Reserved(_)) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::Rewrite(RewriteError::SqlRefused(_)) => StatusCode::FORBIDDEN,
            ProxyError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::SqlNeedsJwt => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match self {
            ProxyError::App(e) => e.into_response(),
            other => (
                other.status(),
                Json(serde_json::json!({ "error": other.to_string() })),
            )
                .into_response(),
        }
    }
}

/// The client's response for an upstream outcome; `what` names the read in messages and logs
/// (`pipe top_products`, `SQL`); `redactor` removes the call's credentials from all of it.
pub fn respond(
    outcome: Outcome,
    max_bytes: u64,
    what: &str,
    redactor: &Redactor,
) -> Result<Response, ProxyError> {
    let clean = |m: String| redactor.redact(&m).into_owned();
    match outcome {
        Outcome::Response(r) => forward(r, max_bytes, what, redactor),
        Outcome::Unreachable(m) | Outcome::Failed(m) => Err(ProxyError::BadGateway(clean(m))),
        Outcome::TimedOut(m) => Err(ProxyError::GatewayTimeout(clean(m))),
    }
}

/// Passes Tinybird's response through: status, allowed headers (redacted), body streamed,
/// redacted and capped.
pub fn forward(
    upstream: Answer,
    max_bytes: u64,
    what: &str,
    redactor: &Redactor,
) -> Result<Response, ProxyError> {
    if let Some(announced) = upstream.content_length().filter(|n| *n > max_bytes) {
        return Err(ProxyError::BadGateway(format!(
            "Tinybird's response for {what} is {announced} bytes, over the proxy's max_response_bytes ({max_bytes}): ask for fewer rows (a smaller limit, narrower filters) or raise proxy.max_response_bytes"
        )));
    }
    if upstream.status == StatusCode::UNAUTHORIZED {
        // A 401 tells the browser to log in again, which would not help: the proxy's own
        // credential was refused. Tinybird documents 403 for bad tokens, so this is rare.
        return Err(ProxyError::BadGateway(
            "Tinybird refused the proxy's credentials (401): check [proxy] credentials and the signing key".into(),
        ));
    }
    let status = upstream.status;
    let headers = forwarded_headers(&upstream.headers, redactor);
    let request_id = upstream
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .map(|v| UpstreamRequestId(v.to_owned()));
    // Chunk errors come from hyper or the read timeout: no URL, but scrubbed all the same.
    let scrub = redactor.clone();
    let chunks = upstream
        .into_chunks()
        .map(move |chunk| chunk.map_err(|e| scrub.redact(&e).into_owned()));
    let body = capped(redactor.redact_stream(chunks), max_bytes, what.to_owned());
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Some(id) = request_id {
        response.extensions_mut().insert(id);
    }
    Ok(response)
}

/// Content types Tinybird answers pipes and SQL with; anything else (HTML, SVG, ...) is
/// passed on as `application/octet-stream`, so an upstream cannot make the BFF's origin serve
/// a page (content spoofing), whatever it returns.
const SAFE_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.apache.parquet",
    "application/octet-stream",
];

/// The allowlisted subset of Tinybird's headers, credentials in their values redacted.
pub fn forwarded_headers(upstream: &HeaderMap, redactor: &Redactor) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        for value in upstream.get_all(*name) {
            let value = if *name == "content-type" && !is_safe_content_type(value.as_bytes()) {
                header::HeaderValue::from_static("application/octet-stream")
            } else {
                match header::HeaderValue::from_bytes(&redactor.redact_bytes(value.as_bytes())) {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            };
            out.append(HeaderName::from_static(name), value);
        }
    }
    out
}

fn is_safe_content_type(value: &[u8]) -> bool {
    let value = String::from_utf8_lossy(value).to_ascii_lowercase();
    let essence = value.split(';').next().unwrap_or("").trim();
    SAFE_CONTENT_TYPES.contains(&essence)
}

/// Passes chunks through until more than `max` bytes went by, then fails the stream, which
/// aborts the client's response (it sees a truncated body, never a complete-looking one).
/// `what` (`pipe top_products`, `SQL`) goes in the warning logged when that happens.
pub fn capped<S, E>(
    stream: S,
    max: u64,
    what: String,
) -> impl Stream<Item = Result<Bytes, axum::BoxError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    stream.scan((0u64, false), move |(seen, done), chunk| {
        // One error is enough to abort the response; nothing follows it.
        if *done {
            return std::future::ready(None);
        }
        let item: Result<Bytes, axum::BoxError> = match chunk {
            Err(e) => {
                tracing::warn!(read = %what, error = %e, "upstream body broke off");
                Err(format!("upstream body broke off: {e}").into())
            }
            Ok(chunk) => {
                *seen += chunk.len() as u64;
                if *seen > max {
                    tracing::warn!(read = %what, max_bytes = max, "response cut at max_response_bytes");
                    Err(format!("response cut at max_response_bytes ({max})").into())
                } else {
                    Ok(chunk)
                }
            }
        };
        *done = item.is_err();
        std::future::ready(Some(item))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unsafe_content_types_become_octet_stream() {
        let mut upstream = HeaderMap::new();
        upstream.insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        assert_eq!(
            forwarded_headers(&upstream, &Redactor::default())["content-type"],
            "application/octet-stream"
        );
        upstream.insert("content-type", "image/svg+xml".parse().unwrap());
        assert_eq!(
            forwarded_headers(&upstream, &Redactor::default())["content-type"],
            "application/octet-stream"
        );
        upstream.insert("content-type", "Text/CSV; charset=utf-8".parse().unwrap());
        assert_eq!(
            forwarded_headers(&upstream, &Redactor::default())["content-type"],
            "Text/CSV; charset=utf-8"
        );
        upstream.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(
            forwarded_headers(&upstream, &Redactor::default())["content-type"],
            "application/json"
        );
    }

    use futures_util::stream;

    use super::*;

    fn chunks(sizes: &[usize]) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
        stream::iter(
            sizes
                .iter()
                .map(|n| Ok(Bytes::from(vec![b'x'; *n])))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_body_within_the_cap_passes_whole() {
        let out: Vec<_> = capped(chunks(&[4, 4, 2]), 10, "p".into()).collect().await;
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_body_over_the_cap_ends_in_an_error_and_nothing_after_it() {
        let out: Vec<_> = capped(chunks(&[4, 4, 4, 4]), 10, "p".into())
            .collect()
            .await;
        let passed: usize = out
            .iter()
            .filter_map(|c| c.as_ref().ok())
            .map(Bytes::len)
            .sum();
        assert_eq!(passed, 8);
        assert!(out.last().unwrap().is_err());
        assert_eq!(out.len(), 3);
    }

    #[tokio::test]
    async fn an_endless_body_is_cut() {
        let endless = stream::repeat_with(|| Ok::<_, String>(Bytes::from_static(&[0; 1024])));
        let out: Vec<_> = capped(endless, 10_000, "p".into()).collect().await;
        assert!(out.last().unwrap().is_err());
        assert!(out.len() <= 11);
    }

    #[test]
    fn only_allowlisted_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("retry-after", "2"),
            ("x-ratelimit-remaining", "0"),
            ("set-cookie", "tb=1"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("x-internal", "secret"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let out = forwarded_headers(&h, &Redactor::default());
        let mut names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["content-type", "retry-after", "x-ratelimit-remaining"]
        );
    }

    #[test]
    fn errors_keep_their_meaning() {
        let status = |e: ProxyError| e.into_response().status().as_u16();
        assert_eq!(status(ProxyError::BadGateway("x".into())), 502);
        assert_eq!(status(ProxyError::GatewayTimeout("x".into())), 504);
        assert_eq!(status(RewriteError::NotAPipe("x".into()).into()), 404);
        assert_eq!(status(RewriteError::Format("x".into()).into()), 400);
        assert_eq!(status(RewriteError::Reserved("x".into()).into()), 400);
        assert_eq!(status(RewriteError::SqlRefused("x".into()).into()), 403);
        assert_eq!(status(AppError::Unauthorized("x".into()).into()), 401);
        assert_eq!(status(ProxyError::UriTooLong(1)), 414);
        assert_eq!(status(ProxyError::SqlNeedsJwt), 501);
    }
}
