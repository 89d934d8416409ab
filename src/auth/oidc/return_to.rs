//! Where a finished login may send the browser: same-origin relative paths only.
//!
//! `return_to` comes from the URL, so an attacker chooses it; if it could name another origin,
//! our login would be an open redirect (a phishing aid). Browsers are lenient in ways that
//! turn innocent-looking strings into other origins: `//evil` and `/\evil` are
//! scheme-relative, tabs and newlines are stripped (`/\t/evil` becomes `//evil`), and some
//! stacks decode `%2F` before redirecting. So the check is an allow-list (one leading `/`,
//! then no `/` or `\`, no control characters, no backslash anywhere, and the same after
//! percent-decoding) confirmed by resolving it against a placeholder origin.

use percent_encoding::percent_decode_str;
use reqwest::Url;

/// Longest accepted target.
const MAX_LEN: usize = 2048;

/// The target if it is a safe same-origin path, else `None`.
pub fn sanitize(target: &str) -> Option<String> {
    let decoded = percent_decode_str(target).decode_utf8().ok()?;
    let raw_ok = looks_local(target) && !target.chars().any(char::is_whitespace);
    if target.len() > MAX_LEN || !raw_ok || !looks_local(&decoded) {
        return None;
    }
    let base = Url::parse("https://bff.invalid/").expect("static URL");
    let resolved = base.join(target).ok()?;
    (resolved.origin() == base.origin()).then(|| target.to_owned())
}

fn looks_local(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !s.chars().any(|c| c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_pass() {
        for ok in ["/", "/dashboard", "/a/b?x=1&y=https://x#frag", "/%20ok"] {
            assert_eq!(sanitize(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "dashboard",
            "//evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com",
            "javascript:alert(1)",
            "/\t/evil.com",
            "/\n/evil.com",
            "/%2F/evil.com",
            "/%5Cevil.com",
            "/a\\b",
            "/ leading-space-hidden",
            "http:/evil.com",
        ] {
            assert_eq!(sanitize(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(sanitize(&format!("/{}", "a".repeat(3000))), None);
    }
}
