//! The one integration-test binary: real sockets on port 0, real servers in-process.
//!
//! - `helpers`: spawn the local endpoint and the BFF, mint test JWTs, a cookie-keeping client.
//! - `local`: the Tinybird-compatible local endpoint against the contract.
//! - `interop`: independent clients (PyJWT, curl, `@tinybirdco/sdk`) against our servers.
//! - `bff`: login, sessions, CSRF, grants and the token endpoint.
//! - `cli`: the binary's subcommands (`check`, `mint`, `hash-password`, `local`); `init`: the
//!   files `tinybird-bff init` writes, checked and served.

mod access_now;
mod architecture;
mod attacks;
mod bff;
mod cli;
mod cors;
mod fuzz_regressions;
mod helpers;
mod init;
mod interop;
mod keys;
mod local;
mod oidc;
mod openapi;
mod proxy;
mod proxy_sql;
mod redaction;
mod scale;
mod sql;
mod usage;
mod usage_workspaces;
mod workspaces;
