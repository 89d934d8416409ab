//! A validly signed token, changed in any way, must never verify.
//!
//! Each input builds claims from fuzz data, signs them with `claims::sign`, checks that the
//! untouched token verifies (and round-trips), then applies one mutation:
//! - to the decoded payload JSON bytes (re-encoded as base64url, header and signature kept):
//!   the forger's move, changing a tenant or `exp` without the key;
//! - to the token text anywhere (header, payload, signature, dots), which also covers
//!   non-canonical base64 (e.g. flipped padding bits in the last signature character).
//!
//! If the mutated token differs from the original and still verifies, that is a crash.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use serde_json::{Map, Value};
use tinybird_bff::tinybird::claims::{Claims, Limits, Scope, sign, verify};

const KEY: &str = "p.eyJ1IjogImZ1enoifQ.fuzz-admin-token";
const NOW: i64 = 1_700_000_000;

#[derive(Debug, Arbitrary)]
enum Mutation {
    /// Overwrite payload byte `at` (modulo length) with `with`.
    PayloadByte { at: u16, with: u8 },
    /// Insert bytes into the payload at `at`.
    PayloadInsert { at: u16, bytes: Vec<u8> },
    /// Remove `len` payload bytes from `at`.
    PayloadRemove { at: u16, len: u8 },
    /// Overwrite token character `at` with the ASCII byte `with`.
    TokenChar { at: u16, with: u8 },
    /// Replace the whole payload segment text.
    PayloadText(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    workspace_id: String,
    name: String,
    ttl: u32,
    org: String,
    pipes: Vec<String>,
    rps: Option<i64>,
    mutation: Mutation,
}

fuzz_target!(|input: Input| {
    let scopes = input
        .pipes
        .iter()
        .map(|p| {
            let mut fixed = Map::new();
            fixed.insert("org_id".into(), Value::String(input.org.clone()));
            Scope::pipe(p.clone(), fixed)
        })
        .collect();
    let claims = Claims {
        workspace_id: input.workspace_id,
        name: input.name,
        exp: NOW + 1 + i64::from(input.ttl),
        iat: Some(NOW),
        scopes,
        limits: input.rps.map(|rps| Limits { rps }),
    };
    let token = sign(&claims, &SecretString::from(KEY));
    assert_eq!(
        verify(&token, KEY.as_bytes(), NOW).as_ref(),
        Ok(&claims),
        "a freshly signed token does not verify to its claims"
    );
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3);
    let mut payload = URL_SAFE_NO_PAD.decode(segments[1]).expect("our own base64");
    let with_payload = |payload: &[u8]| {
        format!(
            "{}.{}.{}",
            segments[0],
            URL_SAFE_NO_PAD.encode(payload),
            segments[2]
        )
    };
    let mutated = match input.mutation {
        Mutation::PayloadByte { at, with } => {
            let i = usize::from(at) % payload.len();
            payload[i] = with;
            with_payload(&payload)
        }
        Mutation::PayloadInsert { at, bytes } => {
            let i = usize::from(at) % (payload.len() + 1);
            payload.splice(i..i, bytes);
            with_payload(&payload)
        }
        Mutation::PayloadRemove { at, len } => {
            let i = usize::from(at) % payload.len();
            let end = (i + usize::from(len).max(1)).min(payload.len());
            payload.drain(i..end);
            with_payload(&payload)
        }
        Mutation::TokenChar { at, with } => {
            let mut bytes = token.clone().into_bytes();
            let i = usize::from(at) % bytes.len();
            bytes[i] = with & 0x7f;
            String::from_utf8(bytes).expect("ASCII")
        }
        Mutation::PayloadText(text) => format!("{}.{text}.{}", segments[0], segments[2]),
    };
    if mutated != token {
        let result = verify(&mutated, KEY.as_bytes(), NOW);
        assert!(
            result.is_err(),
            "a tampered token verified\n original: {token}\n tampered: {mutated}\n claims: {result:?}"
        );
    }
});
