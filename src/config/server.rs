//! The top-level keys (`listen`, `public_url`, `trusted_proxies`) and `[server]`: how long
//! clients may take and how many may be connected (see `tinybird_contract::serve`).

use std::net::SocketAddr;

use reqwest::Url;
use serde::Deserialize;

use super::problem::{Problem, parse_addr, parse_duration, problem};
use tinybird_contract::serve::ConnLimits;

/// `[server]` as written: every key optional, defaults from [`ConnLimits::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// A request head must arrive within this of its first byte, e.g. `"10s"`.
    pub header_timeout: Option<String>,
    /// A request body must arrive within this of its head; a response the client stops
    /// reading for this long ends the connection, e.g. `"30s"`.
    pub body_timeout: Option<String>,
    /// An idle kept-alive connection is closed after this, e.g. `"60s"`.
    pub keep_alive_timeout: Option<String>,
    /// Open connections at most per listener, e.g. `4096`.
    pub max_connections: Option<usize>,
}

/// Validates `[server]`.
pub fn validate_limits(raw: &ServerConfig) -> Result<ConnLimits, Vec<Problem>> {
    let mut problems = Vec::new();
    let default = ConnLimits::default();
    let mut duration = |value: &Option<String>, key: &str, fallback| match value {
        None => Some(fallback),
        Some(text) => match parse_duration(text, key, &mut problems) {
            Some(d) if d.is_zero() => {
                problems.push(problem(key, "must be more than 0s"));
                None
            }
            other => other,
        },
    };
    let header = duration(
        &raw.header_timeout,
        "server.header_timeout",
        default.header_timeout,
    );
    let body = duration(
        &raw.body_timeout,
        "server.body_timeout",
        default.body_timeout,
    );
    let idle = duration(
        &raw.keep_alive_timeout,
        "server.keep_alive_timeout",
        default.keep_alive_timeout,
    );
    let max_connections = raw.max_connections.unwrap_or(default.max_connections);
    if max_connections < 16 {
        problems.push(problem(
            "server.max_connections",
            "must be at least 16 (a browser alone opens 6)",
        ));
    }
    match (header, body, idle) {
        (Some(header_timeout), Some(body_timeout), Some(keep_alive_timeout))
            if problems.is_empty() =>
        {
            Ok(ConnLimits {
                header_timeout,
                body_timeout,
                keep_alive_timeout,
                max_connections,
            })
        }
        _ => Err(problems),
    }
}

/// Where the BFF listens and how users reach it, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// BFF listen address.
    pub listen: SocketAddr,
    /// Public URL of the BFF (the cookie's `Secure` flag, the CSRF origin).
    pub public_url: Url,
    /// Proxies whose `X-Forwarded-For` names the client (see `crate::client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Validates the top-level keys.
pub fn validate(
    listen: &str,
    public_url: &str,
    trusted_proxies: &[String],
) -> Result<ServerSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let listen = parse_addr(listen, "listen", &mut problems);
    let trusted_proxies = crate::client_ip::parse_trusted(trusted_proxies)
        .map_err(|bad| {
            problems.push(problem(
                "trusted_proxies",
                format!("{bad:?} is not an IP address or CIDR range, e.g. \"10.0.0.0/8\" or \"127.0.0.1\""),
            ))
        })
        .unwrap_or_default();
    let public_url = match Url::parse(public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        _ => {
            problems.push(problem("public_url", "must be an absolute http(s) URL users reach the BFF at, e.g. \"https://app.example.com\""));
            None
        }
    };
    match (listen, public_url) {
        (Some(listen), Some(public_url)) if problems.is_empty() => Ok(ServerSettings {
            listen,
            public_url,
            trusted_proxies,
        }),
        _ => Err(problems),
    }
}
