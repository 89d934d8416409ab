//! Fuzzes JWT verification (`tinybird_bff::tinybird::claims::verify`) on arbitrary strings.
//!
//! Input layout (so seeds are plain text): `token\0key\0now`, where `now` is decimal Unix
//! seconds (0 when absent or unparsable) and `key` defaults to the seed key. Nothing may
//! panic, and whatever verifies must honour the contract: `exp` after `now`, and only
//! `PIPES:READ` / `DATASOURCES:READ` scopes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tinybird_bff::tinybird::ScopeType;
use tinybird_bff::tinybird::claims::verify;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let token = parts.next().unwrap_or_default();
    let key = parts.next().unwrap_or("p.fuzz-admin-token");
    let now: i64 = parts
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    if let Ok(claims) = verify(token, key.as_bytes(), now) {
        assert!(
            claims.exp > now,
            "expired token verified: exp {} now {now}",
            claims.exp
        );
        assert!(claims.scopes.iter().all(|s| matches!(
            s.scope_type,
            ScopeType::PipesRead | ScopeType::DatasourcesRead
        )));
    }
});
