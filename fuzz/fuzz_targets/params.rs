//! Fuzzes query-string and form-body parsing and rewriting (`tinybird_bff::tinybird::params`).
//!
//! Both the proxy (which rewrites the caller's query string before forwarding it upstream)
//! and the local endpoint read parameters through `Params`, so a parse/serialise mismatch
//! would let a fixed param be smuggled past or dropped. Properties checked on every input:
//! - parsing arbitrary bytes never panics, and `parse_bytes` agrees with `parse` on UTF-8;
//! - `parse(to_query_string(p)) == p`, for parsed params and after every `set`, `push` and
//!   `remove`;
//! - `set(n, v)` leaves exactly one `n`, equal to `v`; `remove(n)` leaves none.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tinybird_bff::tinybird::params::Params;

#[derive(Debug, Arbitrary)]
enum Op {
    Set(String, String),
    Push(String, String),
    Remove(String),
    /// Appends a second parsed body (a form body after the query string).
    Extend(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    raw: Vec<u8>,
    ops: Vec<Op>,
}

fn assert_round_trips(p: &Params) {
    let text = p.to_query_string();
    let back = Params::parse(&text)
        .unwrap_or_else(|e| panic!("our own serialisation {text:?} does not parse: {e}"));
    assert_eq!(&back, p, "round trip through {text:?} changed the params");
}

fuzz_target!(|input: Input| {
    let parsed = Params::parse_bytes(&input.raw);
    if let Ok(text) = std::str::from_utf8(&input.raw) {
        assert_eq!(
            parsed,
            Params::parse(text),
            "parse_bytes disagrees with parse"
        );
    } else {
        assert!(parsed.is_err(), "invalid UTF-8 body was accepted");
    }
    let mut p = parsed.unwrap_or_default();
    assert_round_trips(&p);
    for op in input.ops {
        match op {
            Op::Set(name, value) => {
                p.set(&name, value.clone());
                assert_eq!(p.all(&name).collect::<Vec<_>>(), [value.as_str()]);
            }
            Op::Push(name, value) => {
                let before = p.all(&name).count();
                p.push(name.clone(), value);
                assert_eq!(p.all(&name).count(), before + 1);
            }
            Op::Remove(name) => {
                p.remove(&name);
                assert!(!p.contains(&name) && p.first(&name).is_none());
            }
            Op::Extend(raw) => {
                if let Ok(other) = Params::parse_bytes(&raw) {
                    p.extend(other);
                }
            }
        }
        assert_round_trips(&p);
    }
});
