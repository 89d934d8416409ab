//! `[cors]`: the origins of apps served from somewhere else than the BFF (a Vite dev server on
//! `:5173`, `app.example.com` calling `api.example.com`), which may call it with their users'
//! session cookie (docs/cross-origin.md).
//!
//! Exact origins only: a wildcard with credentials would let a page on any site act with
//! your users' sessions, so `*` is refused. An origin on another host than `public_url` makes
//! the session cookie `SameSite=None; Secure` (a `Lax` cookie is not sent on another site's
//! fetches), which browsers keep only over https: that combination with an `http` public
//! URL is a problem, except on loopback, which browsers treat as secure.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::problem::{Problem, parse_duration, problem};

/// `[cors]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Pages on these origins may call the BFF with credentials, e.g.
    /// `["https://app.example.com"]`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// How long a browser may reuse a preflight's answer, e.g. `"10m"` (browsers cap it:
    /// Chromium at 2 h, Firefox at 24 h).
    pub max_age: Option<String>,
}

/// How long a preflight's answer is reused by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);

/// `[cors]`, validated.
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Allowed origins as browsers send them in `Origin` (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// `Access-Control-Max-Age`.
    pub max_age: Duration,
    /// Whether an allowed origin is on another host than `public_url`: then the session
    /// cookie is `SameSite=None; Secure`.
    pub cross_site: bool,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_age: DEFAULT_MAX_AGE,
            cross_site: false,
        }
    }
}

impl CorsSettings {
    /// Whether any origin may call the BFF across origins.
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }
}

/// Whether browsers treat `host` as a secure context over plain http (loopback).
fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Validates `[cors]` against the BFF's `public_url` (already parsed when valid).
pub fn validate(raw: &CorsConfig, public_url: Option<&Url>) -> Result<CorsSettings, Vec<Problem>> {
    let mut problems = Vec::new();
    let key = "cors.allowed_origins";
    let mut origins = Vec::new();
    let mut cross_site = false;
    for text in &raw.allowed_origins {
        if text.contains('*') {
            problems.push(problem(key, format!("{text:?}: wildcards are refused: with credentials, a page on any matching site could act with your users' sessions; list each origin, e.g. \"https://app.example.com\"")));
            continue;
        }
        let url = match Url::parse(text) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none() =>
            {
                u
            }
            _ => {
                problems.push(problem(key, format!("{text:?} is not an origin: write scheme://host[:port] and nothing after it, e.g. \"https://app.example.com\" or \"http://localhost:5173\"")));
                continue;
            }
        };
        let origin = url.origin().ascii_serialization();
        let Some(public) = public_url else {
            origins.push(origin);
            continue;
        };
        if url.scheme() == "https" && public.scheme() == "http" && !is_loopback(public) {
            problems.push(problem(key, format!("{origin} is an https page and public_url ({}) is http: browsers block an https page's calls to an http API (mixed content); make public_url https", public.origin().ascii_serialization())));
        }
        if url.host_str() != public.host_str() {
            cross_site = true;
            if public.scheme() != "https" && !is_loopback(public) {
                problems.push(problem(key, format!("{origin} is on another host than public_url ({}): the session cookie must then be `SameSite=None; Secure`, which browsers keep only over https; make public_url https (TLS at your load balancer), or serve the app and the BFF from one origin (docs/cross-origin.md)", public.origin().ascii_serialization())));
            }
        }
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let max_age = match &raw.max_age {
        None => Some(DEFAULT_MAX_AGE),
        Some(text) => parse_duration(text, "cors.max_age", &mut problems),
    };
    match max_age {
        Some(max_age) if problems.is_empty() => Ok(CorsSettings {
            allowed_origins: origins,
            max_age,
            cross_site,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origins: &[&str], public: &str) -> Result<CorsSettings, Vec<Problem>> {
        let raw = CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            max_age: None,
        };
        validate(&raw, Some(&Url::parse(public).unwrap()))
    }

    #[test]
    fn exact_origins_pass_and_are_normalised() {
        let s = check(
            &[
                "https://app.example.com/",
                "http://localhost:5173",
                "https://app.example.com",
            ],
            "https://bff.example.com",
        )
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert!(s.cross_site);
        assert_eq!(s.max_age, DEFAULT_MAX_AGE);
        let same_host = check(&["http://127.0.0.1:5173"], "http://127.0.0.1:3000").unwrap();
        assert!(
            !same_host.cross_site,
            "another port on the same host is the same site"
        );
        assert!(!CorsSettings::default().enabled());
    }

    #[test]
    fn wildcards_paths_and_non_origins_are_refused_with_the_fix() {
        for bad in [
            "*",
            "https://*.example.com",
            "https://app.example.com/app",
            "app.example.com",
            "ftp://x",
            "https://u:p@x.com",
        ] {
            let p = check(&[bad], "https://bff.example.com").unwrap_err();
            assert_eq!(p[0].key, "cors.allowed_origins", "{bad}");
            assert!(
                p[0].message.contains("e.g. \"https://app.example.com\""),
                "{bad}: {p:?}"
            );
        }
        assert!(
            check(&["*"], "https://b.example.com").unwrap_err()[0]
                .message
                .contains("wildcards are refused")
        );
    }

    #[test]
    fn another_host_needs_an_https_public_url_except_on_loopback() {
        let p = check(&["http://app.example.com"], "http://bff.example.com").unwrap_err();
        assert!(
            p[0].message.contains("SameSite=None; Secure") && p[0].message.contains("https"),
            "{p:?}"
        );
        let p = check(&["https://app.example.com"], "http://bff.example.com").unwrap_err();
        assert!(
            p.iter().any(|p| p.message.contains("mixed content")),
            "{p:?}"
        );
        assert!(
            check(&["http://localhost:5173"], "http://127.0.0.1:3000")
                .unwrap()
                .cross_site
        );
    }
}
