//! Credentials out of everything the BFF relays or writes down.
//!
//! Tinybird's server echoes a refused token in its 403 body (`invalid authentication token.
//! Invalid token b'<the whole token>': Signature has expired`, docs/tinybird.md, "Error bodies"). A proxy
//! that relays that body hands the browser the credential it used: the user's server-side
//! JWT, or a static read token that reads every tenant. So every byte the proxy relays from
//! Tinybird (body, header values, error text) passes a [`Redactor`] that knows the
//! credentials of that call and replaces each with [`MARKER`], keeping the rest of
//! Tinybird's message readable. Bodies are redacted as they stream ([`StreamRedactor`]): a
//! credential split across chunk boundaries is still caught, and nothing is buffered beyond
//! one credential's length.
//!
//! Log and audit lines get a second net ([`scrub_line`]): the credentials registered at
//! start-up ([`register_log_secrets`]) plus anything shaped like a JWT or a Tinybird token,
//! whoever wrote the line.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// What a credential becomes.
pub const MARKER: &str = "[redacted]";

/// Shorter strings are not treated as credentials: redacting them would mangle ordinary text
/// (an empty or one-letter "secret" matches everywhere), and no real token is that short.
pub const MIN_SECRET_LEN: usize = 8;

/// What form encoding leaves as is (`application/x-www-form-urlencoded`, Python's `quote_plus`).
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// What JavaScript's `encodeURIComponent` leaves as is.
const COMPONENT: &percent_encoding::AsciiSet = &FORM
    .remove(b'!')
    .remove(b'~')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Replaces known credentials, in the forms they can be echoed in, with [`MARKER`].
///
/// Cheap to clone; building one compiles its patterns, so keep it with the credential it
/// protects rather than building one per request.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Patterns>>,
}

struct Patterns {
    matcher: AhoCorasick,
    /// Length of the longest pattern: how much a stream must hold back.
    longest: usize,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.inner.as_ref().map_or(0, |p| p.matcher.patterns_len());
        write!(f, "Redactor({count} patterns)")
    }
}

impl Redactor {
    /// A redactor for `secrets`, each also in its percent-encoded (form, URI component, every
    /// byte) and JSON-escaped forms.
    /// Secrets shorter than [`MIN_SECRET_LEN`] are ignored.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            if secret.len() < MIN_SECRET_LEN {
                continue;
            }
            let encode = |set| percent_encoding::utf8_percent_encode(secret, set).to_string();
            let json = serde_json::to_string(secret).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            let forms = [
                secret.to_owned(),
                encode(FORM),
                encode(COMPONENT),
                encode(percent_encoding::NON_ALPHANUMERIC),
                json,
            ];
            for form in forms {
                if !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        if patterns.is_empty() {
            return Self::default();
        }
        let longest = patterns.iter().map(String::len).max().unwrap_or(0);
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("a handful of literal patterns always compiles");
        Self {
            inner: Some(Arc::new(Patterns { matcher, longest })),
        }
    }

    /// Whether this redactor knows no credential (it then passes everything through).
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// `text` with every known credential replaced.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.inner {
            Some(p) if p.matcher.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                p.matcher.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(MARKER);
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// `bytes` with every known credential replaced.
    pub fn redact_bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        match &self.inner {
            Some(p) if p.matcher.is_match(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                p.matcher
                    .replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
                        dst.extend_from_slice(MARKER.as_bytes());
                        true
                    });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(bytes),
        }
    }

    /// A redactor for one stream of chunks.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            redactor: self.clone(),
            pending: Vec::new(),
        }
    }

    /// `stream`'s chunks with every known credential replaced, even across chunk boundaries.
    /// An error item flushes nothing held back: the body is broken anyway.
    pub fn redact_stream<S, E>(
        &self,
        stream: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + Send + use<S, E>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Send,
    {
        let state = self.stream();
        let tail = futures_util::stream::once(async { None });
        stream
            .map(Some)
            .chain(tail)
            .scan(state, |state, item| {
                let out = match item {
                    Some(Ok(chunk)) => Some(Ok(state.push(&chunk))),
                    Some(Err(e)) => Some(Err(e)),
                    None => Some(Ok(state.finish())),
                };
                std::future::ready(out)
            })
            .filter(|item| std::future::ready(!matches!(item, Ok(b) if b.is_empty())))
    }
}

/// Redaction state across the chunks of one body.
pub struct StreamRedactor {
    redactor: Redactor,
    /// Bytes not yet released: they may be the start of a credential.
    pending: Vec<u8>,
}

impl StreamRedactor {
    /// Takes the next chunk; returns what can be released now, credentials replaced.
    ///
    /// Everything but the last `longest - 1` bytes is released: a credential starting
    /// before that point lies wholly inside what has been seen, so it has been found.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let Some(p) = self.redactor.inner.clone() else {
            return Bytes::copy_from_slice(chunk);
        };
        self.pending.extend_from_slice(chunk);
        let hold = p.longest - 1;
        if self.pending.len() <= hold {
            return Bytes::new();
        }
        let safe_end = self.pending.len() - hold;
        let mut out = Vec::with_capacity(self.pending.len());
        let mut released = 0;
        for m in p.matcher.find_iter(&self.pending) {
            if m.start() >= safe_end {
                break;
            }
            out.extend_from_slice(&self.pending[released..m.start()]);
            out.extend_from_slice(MARKER.as_bytes());
            released = m.end();
        }
        let release_to = released.max(safe_end);
        out.extend_from_slice(&self.pending[released..release_to]);
        self.pending.drain(..release_to);
        Bytes::from(out)
    }

    /// The end of the body: releases what was held back, credentials replaced.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        Bytes::from(self.redactor.redact_bytes(&rest).into_owned())
    }
}

/// Credentials known for the whole process (admin tokens, static tokens), scrubbed from every
/// log and audit line on top of the token shapes: the list, and its compiled redactor.
static LOG_SECRETS: LazyLock<RwLock<(Vec<String>, Redactor)>> = LazyLock::new(Default::default);

/// Anything shaped like a JWT (`eyJ...` header, payload, signature) or a Tinybird static token
/// (`p.eyJ...`): a line holding one would hand out a credential, whoever wrote it.
static TOKEN_SHAPES: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(
        r"(?:p\.)?eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]+)?",
    )
    .expect("a valid pattern")
});

/// Adds credentials to what every log and audit line is scrubbed of (called when settings
/// load; those registered before stay).
pub fn register_log_secrets<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let mut current = LOG_SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for secret in secrets {
        if secret.len() >= MIN_SECRET_LEN && !current.0.iter().any(|s| s == secret) {
            current.0.push(secret.to_owned());
        }
    }
    current.1 = Redactor::new(current.0.iter().map(String::as_str));
}

/// One log or audit line without credentials: the registered ones, and any token-shaped
/// string.
pub fn scrub_line(line: &[u8]) -> Cow<'_, [u8]> {
    let known = LOG_SECRETS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .clone();
    let line = known.redact_bytes(line);
    if TOKEN_SHAPES.is_match(&line) {
        Cow::Owned(
            TOKEN_SHAPES
                .replace_all(&line, MARKER.as_bytes())
                .into_owned(),
        )
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYW1lIjoiYWxpY2VAYWNtZSJ9.c2lnbmF0dXJlLWJ5dGVz";
    const STATIC: &str = "p.static+read/token==";

    fn tinybird_403(token: &str) -> String {
        format!(
            r#"{{"error": "invalid authentication token. Invalid token b'{token}': Signature has expired", "documentation": "https://docs.tinybird.co/api-reference/overview#authentication"}}"#
        )
    }

    #[test]
    fn every_echoed_form_of_a_credential_becomes_the_marker() {
        let r = Redactor::new([JWT, STATIC]);
        let body = tinybird_403(JWT);
        let out = r.redact(&body);
        assert!(!out.contains(JWT), "{out}");
        assert!(out.contains("Invalid token b'[redacted]': Signature has expired"));
        assert!(
            out.contains("documentation"),
            "the rest of the message stays"
        );
        // Percent-encoded (a URL echoed back) and JSON-escaped forms of an unusual token.
        let encoded = "p.static%2Bread%2Ftoken%3D%3D";
        assert_eq!(
            r.redact(&format!("url=?token={encoded}&x=1")),
            "url=?token=[redacted]&x=1"
        );
        assert_eq!(r.redact(&format!("t={STATIC}")), "t=[redacted]");
        let escaped = Redactor::new(["p.quote\"and\\slash"]);
        assert_eq!(
            escaped.redact(r#"{"t":"p.quote\"and\\slash"}"#),
            r#"{"t":"[redacted]"}"#
        );
    }

    #[test]
    fn text_without_credentials_is_borrowed_and_short_secrets_are_ignored() {
        let r = Redactor::new([JWT]);
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        let tiny = Redactor::new(["", "abc"]);
        assert!(tiny.is_empty());
        assert_eq!(tiny.redact("abc abc"), "abc abc");
    }

    /// The stream's output for `body` cut into pieces at `cuts`.
    fn streamed(r: &Redactor, body: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut s = r.stream();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            out.extend_from_slice(&s.push(&body[from..cut]));
            from = cut;
        }
        out.extend_from_slice(&s.finish());
        out
    }

    #[test]
    fn a_credential_split_across_chunks_is_still_caught_at_every_cut() {
        let r = Redactor::new([JWT, STATIC]);
        let body = format!("{}\n{}\n{}", tinybird_403(JWT), tinybird_403(STATIC), JWT);
        let expected = r.redact(&body).into_owned();
        assert_eq!(expected.matches(MARKER).count(), 3);
        for a in 0..body.len() {
            let out = streamed(&r, body.as_bytes(), &[a]);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "cut at {a}");
        }
        for b in [1usize, 2, 3, 7, 50] {
            let cuts: Vec<usize> = (1..body.len()).step_by(b).collect();
            let out = streamed(&r, body.as_bytes(), &cuts);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "chunks of {b}");
        }
    }

    #[tokio::test]
    async fn the_stream_adapter_releases_everything_once_and_ends_on_errors() {
        let r = Redactor::new([JWT]);
        let body = tinybird_403(JWT);
        let chunks: Vec<Result<Bytes, String>> = body
            .as_bytes()
            .chunks(5)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out: Vec<_> = r
            .redact_stream(futures_util::stream::iter(chunks))
            .collect()
            .await;
        let joined: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(String::from_utf8(joined).unwrap(), r.redact(&body));
        let broken = futures_util::stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err("x")]);
        let out: Vec<_> = Redactor::default().redact_stream(broken).collect().await;
        assert_eq!(out, vec![Ok(Bytes::from_static(b"abc")), Err("x")]);
    }

    #[test]
    fn log_lines_lose_registered_secrets_and_anything_token_shaped() {
        register_log_secrets(["p.log-test-secret-1234"]);
        let line = format!(
            "error=refused key=p.log-test-secret-1234 jwt={JWT} admin=p.eyJ1IjoiYWJjIn0.c2ln end"
        );
        let out = String::from_utf8(scrub_line(line.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            out,
            "error=refused key=[redacted] jwt=[redacted] admin=[redacted] end"
        );
        assert!(matches!(scrub_line(b"plain line"), Cow::Borrowed(_)));
    }
}
