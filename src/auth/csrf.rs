//! CSRF defence for cookie-authenticated routes that change state or return a token, and the
//! cross-site read check for the data routes' GETs.
//!
//! Two independent checks, both required on a state-changing request: a custom header
//! (`X-BFF-CSRF`), which a cross-site form or a no-CORS fetch cannot send (and which makes a
//! cross-origin fetch preflighted, so only `[cors] allowed_origins` get past the browser), and
//! an origin check: `Sec-Fetch-Site` when the browser sends it, else `Origin` against the
//! `Host` the request came to (or the configured public URL, for deployments behind a proxy
//! that rewrites `Host`). A request from another origin passes only with an `Origin` in the
//! allowed list. `Origin: null` is refused.
//!
//! With a cross-site app the session cookie is `SameSite=None`, so it also rides on another
//! site's `<img>` or `<script>` GETs: [`check_read`] refuses those on the data routes (they
//! would spend the user's limits and budget), while navigations and the allowed origins' own
//! fetches pass.

use axum::http::{HeaderMap, header};
use reqwest::Url;

use crate::error::AppError;

/// The header every state-changing request must carry (any non-empty value).
pub const CSRF_HEADER: &str = "x-bff-csrf";

/// Where requests may come from: the BFF's own origin, and the allowed app origins.
#[derive(Debug, Clone, Copy)]
pub struct Origins<'a> {
    /// The configured public URL (its origin is the BFF's).
    pub public_url: &'a Url,
    /// Other origins whose pages may call with credentials (`[cors] allowed_origins`, as
    /// browsers write `Origin`).
    pub allowed: &'a [String],
}

impl Origins<'_> {
    /// Whether the request's `Origin` is one of the allowed app origins.
    fn allows(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| self.allowed.iter().any(|a| a == o))
    }
}

/// Checks a state-changing request's headers.
pub fn check(headers: &HeaderMap, origins: Origins<'_>) -> Result<(), AppError> {
    let header_ok = headers.get(CSRF_HEADER).is_some_and(|v| !v.is_empty());
    if !header_ok {
        return Err(AppError::Forbidden(format!(
            "missing {CSRF_HEADER} header: send `X-BFF-CSRF: 1` with requests from your app (CSRF defence)"
        )));
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ if origins.allows(headers) => Ok(()),
            _ => Err(AppError::Forbidden(
                "cross-site request refused (Sec-Fetch-Site): if the page is your app, add its origin to [cors] allowed_origins".into(),
            )),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser (browsers send Origin on every POST): the custom header suffices.
        return Ok(());
    };
    let public_url = origins.public_url;
    let origin = origin.to_str().unwrap_or("null");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_as_host = Url::parse(origin).ok().is_some_and(|o| {
        // `Host` has no scheme: users reach us with the public URL's, so an `http://` page
        // (a network attacker's downgrade) never passes for the `https://` site.
        let at = host.and_then(|h| Url::parse(&format!("{}://{h}", public_url.scheme())).ok());
        at.is_some_and(|h| h.origin() == o.origin())
    });
    if same_as_host
        || origin == public_url.origin().ascii_serialization()
        || origins.allows(headers)
    {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "cross-origin request refused (Origin is neither this site nor in [cors] allowed_origins)".into(),
        ))
    }
}

/// Checks a cookie-authenticated read (a data route's GET): another site's subresource
/// request (`<img>`, `<script>`, a no-CORS fetch) is refused; navigations, same-site and
/// same-origin requests, non-browsers and the allowed origins' fetches pass.
pub fn check_read(headers: &HeaderMap, origins: Origins<'_>) -> Result<(), AppError> {
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let mode = headers.get("sec-fetch-mode").map(|v| v.as_bytes());
    match (site, mode) {
        (Some(b"cross-site"), Some(m)) if m != b"navigate" && !origins.allows(headers) => {
            Err(AppError::Forbidden(
                "cross-site read refused: only the BFF's own pages and [cors] allowed_origins may read with the session cookie".into(),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_with_header_passes_everything_else_fails() {
        let url = Url::parse("https://app.example.com").unwrap();
        let public = Origins {
            public_url: &url,
            allowed: &[],
        };
        let ok = |pairs: &[(&'static str, &str)]| check(&headers(pairs), public).is_ok();
        assert!(ok(&[(CSRF_HEADER, "1")]));
        assert!(ok(&[(CSRF_HEADER, "1"), ("sec-fetch-site", "same-origin")]));
        assert!(ok(&[
            (CSRF_HEADER, "1"),
            ("origin", "https://app.example.com")
        ]));
        assert!(ok(&[
            (CSRF_HEADER, "1"),
            ("origin", "https://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(
            !ok(&[
                (CSRF_HEADER, "1"),
                ("origin", "http://127.0.0.1:3000"),
                ("host", "127.0.0.1:3000")
            ]),
            "an http page does not pass for the https site"
        );
        assert!(!ok(&[]), "missing header");
        assert!(
            !ok(&[("origin", "https://app.example.com")]),
            "missing header, right origin"
        );
        assert!(!ok(&[(CSRF_HEADER, "1"), ("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[(CSRF_HEADER, "1"), ("sec-fetch-site", "same-site")]));
        assert!(!ok(&[
            (CSRF_HEADER, "1"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[(CSRF_HEADER, "1"), ("origin", "null")]));
        assert!(!ok(&[
            (CSRF_HEADER, "1"),
            ("origin", "http://127.0.0.1:3001"),
            ("host", "127.0.0.1:3000")
        ]));
    }

    #[test]
    fn an_allowed_origin_passes_with_the_header_and_only_with_it() {
        let url = Url::parse("https://bff.example.com").unwrap();
        let allowed = ["https://app.example.com".to_owned()];
        let origins = Origins {
            public_url: &url,
            allowed: &allowed,
        };
        let ok = |pairs: &[(&'static str, &str)]| check(&headers(pairs), origins).is_ok();
        let app = ("origin", "https://app.example.com");
        assert!(ok(&[
            (CSRF_HEADER, "1"),
            ("sec-fetch-site", "cross-site"),
            app
        ]));
        assert!(ok(&[
            (CSRF_HEADER, "1"),
            ("sec-fetch-site", "same-site"),
            app
        ]));
        assert!(ok(&[(CSRF_HEADER, "1"), app]));
        assert!(
            !ok(&[("sec-fetch-site", "cross-site"), app]),
            "header still required"
        );
        let evil = ("origin", "https://evil.example");
        assert!(!ok(&[
            (CSRF_HEADER, "1"),
            ("sec-fetch-site", "cross-site"),
            evil
        ]));
        assert!(!ok(&[(CSRF_HEADER, "1"), evil]));
        assert!(!ok(&[
            (CSRF_HEADER, "1"),
            ("origin", "https://app.example.com.evil.example")
        ]));
    }

    #[test]
    fn cross_site_subresource_reads_are_refused_navigations_pass() {
        let url = Url::parse("https://bff.example.com").unwrap();
        let allowed = ["https://app.example.com".to_owned()];
        let origins = Origins {
            public_url: &url,
            allowed: &allowed,
        };
        let ok = |pairs: &[(&'static str, &str)]| check_read(&headers(pairs), origins).is_ok();
        assert!(ok(&[]), "not a browser");
        assert!(ok(&[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors")
        ]));
        assert!(ok(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate")
        ]));
        assert!(ok(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "cors"),
            ("origin", "https://app.example.com")
        ]));
        assert!(!ok(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors")
        ]));
        assert!(!ok(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "cors"),
            ("origin", "https://evil.example")
        ]));
    }
}
