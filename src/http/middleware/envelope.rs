//! The envelope of every `/api/` and `/auth/` answer: the JSON error shape and the security
//! headers that keep a relayed body from ever running as a page on this origin.
//!
//! It wraps every request, so it is a hand-written [`tower::Layer`] whose future is the
//! inner one plus a flag: no boxed future and no clone of the boxed router per request (what
//! `axum::middleware::from_fn` costs). Only an error answer that must be rewritten (rare)
//! allocates, to read its body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::Relayed;

/// Wraps a service in the envelope of [`api_responses`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiResponses;

impl<S> tower::Layer<S> for ApiResponses {
    type Service = Envelope<S>;
    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope { inner }
    }
}

/// The service of [`ApiResponses`].
#[derive(Debug, Clone)]
pub struct Envelope<S> {
    inner: S,
}

impl<S> tower::Service<Request> for Envelope<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        let api = path.starts_with("/api/") || path.starts_with("/auth/");
        EnvelopeFuture {
            state: State::Inner {
                inner: self.inner.call(request),
                api,
            },
        }
    }
}

type Rewrite = Pin<Box<dyn Future<Output = Response> + Send>>;

pin_project_lite::pin_project! {
    /// The answer of [`Envelope`]: the inner service's, enveloped.
    pub struct EnvelopeFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] inner: F, api: bool },
        Rewrite { rewrite: Rewrite },
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { inner, api } => {
                    let Ok(mut response) = std::task::ready!(inner.poll(cx));
                    if !*api {
                        return Poll::Ready(Ok(response));
                    }
                    secure(&mut response);
                    if !needs_json(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    this.state.set(State::Rewrite {
                        rewrite: Box::pin(as_json(response)),
                    });
                }
                StateProj::Rewrite { rewrite } => {
                    return rewrite.as_mut().poll(cx).map(Ok);
                }
            }
        }
    }
}

/// What the envelope does to `/api/` and `/auth/`, which serve data and redirects, never
/// pages:
///
/// - An error the framework answered itself (a body, path or query its extractors rejected,
///   a 405) becomes the JSON envelope. Those answers are `text/plain` or empty and may quote
///   the input (an unknown JSON field's name); clients can rely on `{"error"}` everywhere.
///   Answers relayed from Tinybird (marked [`Relayed`]) keep the body Tinybird
///   sent.
/// - Every answer gets `X-Content-Type-Options: nosniff` and a CSP that runs nothing
///   (`default-src 'none'; frame-ancestors 'none'; sandbox`), so even a body a browser could
///   render (an upstream's HTML or SVG passed through by the proxy) cannot script this
///   origin, where the session lives.
pub fn api_responses() -> ApiResponses {
    ApiResponses
}

fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; sandbox"),
    );
}

/// A plain or empty error the framework answered (not one relayed from Tinybird).
fn needs_json(response: &Response) -> bool {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    let relayed = response.extensions().get::<Relayed>().is_some();
    plain && !relayed && (status.is_client_error() || status.is_server_error())
}

/// `response`'s text as the JSON envelope, keeping its headers (`Allow` on a 405,
/// `Retry-After`) but the body's type.
async fn as_json(response: Response) -> Response {
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut out = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
