//! CSRF defence for cookie-authenticated routes that change state or return a token.
//!
//! Two independent checks, both required: a custom header (`X-BFF-CSRF`), which a cross-site
//! form or a no-CORS fetch cannot send, and a same-origin check: `Sec-Fetch-Site` when the
//! browser sends it, else `Origin` against the `Host` the request came to (or the configured
//! public URL, for deployments behind a proxy that rewrites `Host`). `Origin: null` is refused.

use axum::http::{HeaderMap, header};
use reqwest::Url;

use crate::error::AppError;

/// The header every state-changing request must carry (any non-empty value).
pub const CSRF_HEADER: &str = "x-bff-csrf";

/// Checks a request's headers; `public_url` is the configured origin.
pub fn check(headers: &HeaderMap, public_url: &Url) -> Result<(), AppError> {
    let header_ok = headers.get(CSRF_HEADER).is_some_and(|v| !v.is_empty());
    if !header_ok {
        return Err(AppError::Forbidden(format!(
            "missing {CSRF_HEADER} header: send `X-BFF-CSRF: 1` with requests from your app (CSRF defence)"
        )));
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(AppError::Forbidden(
                "cross-site request refused (Sec-Fetch-Site)".into(),
            )),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser (browsers send Origin on every POST): the custom header suffices.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_as_host = Url::parse(origin).ok().is_some_and(|o| {
        // `Host` has no scheme: users reach us with the public URL's, so an `http://` page
        // (a network attacker's downgrade) never passes for the `https://` site.
        let at = host.and_then(|h| Url::parse(&format!("{}://{h}", public_url.scheme())).ok());
        at.is_some_and(|h| h.origin() == o.origin())
    });
    if same_as_host || origin == public_url.origin().ascii_serialization() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "cross-origin request refused (Origin does not match this site)".into(),
        ))
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
        let public = Url::parse("https://app.example.com").unwrap();
        let ok = |pairs: &[(&'static str, &str)]| check(&headers(pairs), &public).is_ok();
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
}
