//! What the proxy sends upstream, decided from what the client sent (pure, no I/O).
//!
//! The client's parameters pass through as the pipe's parameters, except where they could
//! widen what the user reads: the user's fixed params (row filters) replace every same-named
//! parameter, `token` is dropped (the proxy authenticates, never the browser), `q` (SQL over
//! the pipe's result) is refused unless the pipe's grant allows it, and every other name
//! Tinybird reads itself (`debug`, `pipeline`, `template_parameters`, `__tb__*`, ...: see
//! `crate::tinybird::params::is_reserved`) is refused with a 400 naming it: with a static
//! token the BFF's overwrite of the URL parameters is the only row filter, so nothing else
//! Tinybird reads may reach it. The path is checked just as strictly, because it becomes part
//! of the upstream URL.

use crate::grants::PipeAccess;
use crate::tinybird::names::is_valid_pipe_name;
use crate::tinybird::params::{Params, is_reserved};

/// Extensions Tinybird serves. Anything else is a 400 before any upstream call.
pub const FORMATS: &[&str] = &[
    "json",
    "csv",
    "csvwithnames",
    "ndjson",
    "parquet",
    "prometheus",
];

/// Formats whose responses the response cache may keep (text the proxy can buffer as is).
pub const CACHEABLE_FORMATS: &[&str] = &["json", "csv", "csvwithnames", "ndjson"];

/// A pipe and format taken from the path's last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A valid pipe name.
    pub pipe: String,
    /// One of [`FORMATS`].
    pub format: String,
}

/// Why a request cannot be proxied as sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewriteError {
    /// Not a pipe name (including `..`, slashes and other path tricks).
    #[error("pipe {0:?} not found: pipe names are letters, digits and underscores")]
    NotAPipe(String),
    /// An extension Tinybird does not serve.
    #[error(
        "format {0:?} is not supported: use .json, .csv, .ndjson (or .csvwithnames, .parquet, .prometheus)"
    )]
    Format(String),
    /// `q` on a pipe whose grant does not allow SQL over it.
    #[error(
        "the `q` parameter (SQL over the pipe) is not allowed on pipe {0} through the proxy: ask an admin to set allow_sql_over_pipe on its grant"
    )]
    SqlRefused(String),
    /// A name Tinybird reads itself, not a pipe parameter.
    #[error(
        "parameter {0:?} is reserved by Tinybird (it is not a pipe parameter) and is not forwarded through the proxy: remove it"
    )]
    Reserved(String),
}

/// Splits `top_products.json` into pipe and format; no extension means JSON, as in Tinybird.
pub fn parse_file(file: &str) -> Result<Target, RewriteError> {
    let (pipe, format) = file.rsplit_once('.').unwrap_or((file, "json"));
    if !is_valid_pipe_name(pipe) {
        return Err(RewriteError::NotAPipe(truncate(pipe)));
    }
    if !FORMATS.contains(&format) {
        return Err(RewriteError::Format(truncate(format)));
    }
    Ok(Target {
        pipe: pipe.to_owned(),
        format: format.to_owned(),
    })
}

/// The parameters to send upstream: fixed params win, `token` is gone, `q` only if allowed,
/// any other reserved name refused.
pub fn effective_params(mut params: Params, access: &PipeAccess) -> Result<Params, RewriteError> {
    params.remove("token");
    if params.contains("q") && !access.allow_sql_over_pipe {
        return Err(RewriteError::SqlRefused(access.pipe.clone()));
    }
    if let Some(name) = params.names().find(|&n| n != "q" && is_reserved(n)) {
        return Err(RewriteError::Reserved(truncate(name)));
    }
    params.apply_fixed(&access.fixed_params);
    Ok(params)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn access(fixed: serde_json::Value, sql: bool) -> PipeAccess {
        PipeAccess {
            pipe: "top_products".into(),
            fixed_params: fixed.as_object().unwrap().clone(),
            grants: vec!["g".into()],
            allow_sql_over_pipe: sql,
        }
    }

    fn rewrite(query: &str, fixed: serde_json::Value) -> Result<String, RewriteError> {
        effective_params(Params::parse(query).unwrap(), &access(fixed, false))
            .map(|p| p.to_query_string())
    }

    #[test]
    fn fixed_params_replace_every_client_value_and_other_params_pass() {
        let out = rewrite(
            "org_id=globex&days=7&org_id=initech&limit=3",
            json!({"org_id": "acme"}),
        )
        .unwrap();
        assert_eq!(out, "days=7&limit=3&org_id=acme");
        assert_eq!(
            rewrite("days=7", json!({"org_id": "acme"})).unwrap(),
            "days=7&org_id=acme"
        );
        assert_eq!(
            rewrite("n=1", json!({"n": 5, "on": true, "ids": [1, "b"]})).unwrap(),
            "n=5&on=true&ids=1%2Cb"
        );
    }

    #[test]
    fn the_clients_token_never_goes_upstream() {
        assert_eq!(
            rewrite("token=p.stolen&days=7&token=x", json!({})).unwrap(),
            "days=7"
        );
    }

    #[test]
    fn sql_over_the_pipe_needs_the_grant() {
        assert_eq!(
            rewrite("q=select+*+from+_", json!({})),
            Err(RewriteError::SqlRefused("top_products".into()))
        );
        let allowed = effective_params(
            Params::parse("q=select+1").unwrap(),
            &access(json!({}), true),
        )
        .unwrap();
        assert_eq!(allowed.first("q"), Some("select 1"));
    }

    #[test]
    fn names_tinybird_reads_itself_are_refused_by_name() {
        for name in [
            "template_parameters",
            "debug",
            "explain",
            "pipeline",
            "query_id",
            "tag",
            "format",
            "__tb__semver",
            "output_format_json_quote_64bit_integers",
        ] {
            assert_eq!(
                rewrite(&format!("days=7&{name}=1"), json!({"org_id": "acme"})),
                Err(RewriteError::Reserved(name.into())),
                "{name}"
            );
        }
        // Names that merely look alike are pipe parameters.
        assert_eq!(
            rewrite("debugging=1&tags=a&from=ts-sdk", json!({})).unwrap(),
            "debugging=1&tags=a&from=ts-sdk"
        );
    }

    #[test]
    fn only_pipe_names_and_known_formats_reach_the_url() {
        let t = parse_file("top_products.csv").unwrap();
        assert_eq!(
            (t.pipe.as_str(), t.format.as_str()),
            ("top_products", "csv")
        );
        assert_eq!(parse_file("top_products").unwrap().format, "json");
        for bad in [
            "../v0/tokens.json",
            "a/b.json",
            "a%2Fb.json",
            ".json",
            "x y.json",
            "top.products.json",
        ] {
            assert!(
                matches!(parse_file(bad), Err(RewriteError::NotAPipe(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_file("top_products.xml"),
            Err(RewriteError::Format("xml".into()))
        );
        assert!(matches!(
            parse_file("top_products.json?x"),
            Err(RewriteError::Format(_))
        ));
    }
}
