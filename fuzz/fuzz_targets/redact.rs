//! Fuzzes the credential redactor (`tinybird_bff::redact`) that every relayed Tinybird answer
//! passes through (Tinybird echoes a refused token in its 403).
//!
//! Properties checked on every input:
//! - streaming agrees with one-shot redaction, however the body is cut into chunks (a
//!   credential split across chunk boundaries is still caught);
//! - no credential of at least `MIN_SECRET_LEN` bytes survives in the output, in any cut;
//! - nothing changes but credentials becoming markers;
//! - log-line scrubbing never panics.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tinybird_bff::redact::{MARKER, MIN_SECRET_LEN, Redactor};

#[derive(Debug, Arbitrary)]
struct Input {
    secrets: Vec<String>,
    /// The body, as pieces: `true` pieces are replaced by one of the secrets.
    pieces: Vec<(bool, u8, Vec<u8>)>,
    /// Chunk lengths to cut the body into (0 means 1).
    cuts: Vec<u8>,
}

fuzz_target!(|input: Input| {
    // The marker's own characters could rebuild a credential next to it; real tokens
    // (base64url, dots) never hold them.
    let secrets: Vec<String> = input
        .secrets
        .into_iter()
        .filter(|s| s.len() >= MIN_SECRET_LEN && !s.contains('[') && !s.contains(']'))
        .take(4)
        .collect();
    let redactor = Redactor::new(secrets.iter().map(String::as_str));
    let mut body = Vec::new();
    for (is_secret, pick, bytes) in &input.pieces {
        match secrets.get(usize::from(*pick) % secrets.len().max(1)) {
            Some(secret) if *is_secret => body.extend_from_slice(secret.as_bytes()),
            _ => body.extend_from_slice(bytes),
        }
    }
    let whole = redactor.redact_bytes(&body).into_owned();
    let mut stream = redactor.stream();
    let mut streamed = Vec::new();
    let mut rest = body.as_slice();
    let mut cuts = input.cuts.iter().cycle();
    while !rest.is_empty() {
        let n = usize::from(cuts.next().copied().unwrap_or(255)).max(1).min(rest.len());
        streamed.extend_from_slice(&stream.push(&rest[..n]));
        rest = &rest[n..];
    }
    streamed.extend_from_slice(&stream.finish());
    assert_eq!(streamed, whole, "streaming disagrees with one-shot redaction");
    for secret in &secrets {
        let found = whole.windows(secret.len()).any(|w| w == secret.as_bytes());
        assert!(!found, "a credential survived redaction");
    }
    // Redaction only ever puts markers in: with no new marker, nothing changed.
    let markers = |b: &[u8]| b.windows(MARKER.len()).filter(|w| *w == MARKER.as_bytes()).count();
    assert!(markers(&whole) >= markers(&body));
    if markers(&whole) == markers(&body) {
        assert_eq!(whole, body, "a body changed without a credential in it");
    }
    let _ = tinybird_bff::redact::scrub_line(&body);
});
