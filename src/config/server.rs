//! The top-level keys: `listen`, `public_url`, `trusted_proxies`.

use std::net::SocketAddr;

use reqwest::Url;

use super::problem::{Problem, parse_addr, problem};

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
