//! `GET`/`POST /api/sql`: Tinybird's `/v0/sql` through the BFF, for users whose grants give
//! data sources. This file holds what is sent upstream ([`sql_params`]); the route is
//! `crate::http::sql`.
//!
//! The query is not parsed, filtered or rewritten here: row-level security for SQL is
//! Tinybird's `DATASOURCES:READ` `filter`, which it adds to every read of a data source. So
//! the one credential this route may send is the user's own JWT (the same cached one pipes
//! use), whose scopes carry the filters from the user's grants. A static read token has no
//! filter and would read every tenant: with `credentials = "static"` the route answers 501
//! and sends nothing upstream.
//!
//! Request order: who (401; the CSRF check for a cookie `POST`, 403), the credentials mode
//! (501), a data source in the user's grants (403, before any upstream call), the query
//! (`q` in the query string or form, or the raw `POST` body; 400 when missing), then
//! `{tinybird}/v0/sql` with the pipes' retries, deadline, status pass-through, header
//! allowlist and streamed, capped body (see `respond`). `token` parameters are dropped; `q`
//! is the only parameter sent, and any other is a 400 naming it (Tinybird reads settings
//! such as `output_format_*` or `template_parameters` from the URL, and none of them is the
//! client's to set). A trailing `FORMAT CSV` (or `JSON`, `CSVWithNames`, `JSONEachRow`) is
//! part of the query, so the format and its content type pass through too.

use super::MAX_QUERY_BYTES;
use super::respond::ProxyError;
use crate::error::AppError;
use crate::tinybird::params::Params;

/// How the body of a request carries its part of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlBody<'a> {
    /// A `GET`, or a `POST` without a body.
    None,
    /// `application/x-www-form-urlencoded`: parameters, `q` among them.
    Form(&'a [u8]),
    /// Any other content type: the query itself, as UTF-8 text.
    Raw(&'a [u8]),
}

/// The parameters to send upstream: exactly one non-blank `q`, from the query string or the
/// body; `token` dropped, any other parameter refused by name (pure, no I/O).
///
/// A `q` parameter wins over a raw body, as on Tinybird's own endpoint; several `q`s become
/// the first one, so what runs is never ambiguous.
pub fn sql_params(query: &str, body: SqlBody<'_>) -> Result<Params, ProxyError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ProxyError::UriTooLong(MAX_QUERY_BYTES));
    }
    let bad = |e: crate::tinybird::params::ParamsError| {
        ProxyError::App(AppError::BadRequest(e.to_string()))
    };
    let mut params = Params::parse(query).map_err(bad)?;
    let mut raw = None;
    match body {
        SqlBody::None => {}
        SqlBody::Form(bytes) => params.extend(Params::parse_bytes(bytes).map_err(bad)?),
        SqlBody::Raw(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                AppError::BadRequest("the query in the POST body is not valid UTF-8".into())
            })?;
            raw = Some(text.to_owned());
        }
    }
    params.remove("token");
    if let Some(name) = params.names().find(|&n| n != "q") {
        let name: String = name.chars().take(64).collect();
        return Err(AppError::BadRequest(format!(
            "parameter {name:?} is not accepted by /api/sql: send the query as `q` (or the POST body) and nothing else"
        ))
        .into());
    }
    let q = params
        .first("q")
        .map(str::to_owned)
        .or(raw)
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            AppError::BadRequest(
                "missing query: send it as `q` (GET or form POST) or as the POST body".into(),
            )
        })?;
    params.set("q", q);
    Ok(params)
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    fn sent(query: &str, body: SqlBody<'_>) -> String {
        sql_params(query, body).unwrap().to_query_string()
    }

    #[test]
    fn the_query_arrives_as_q_from_the_url_the_form_or_the_raw_body() {
        assert_eq!(sent("q=SELECT+1", SqlBody::None), "q=SELECT%201");
        assert_eq!(sent("", SqlBody::Form(b"q=SELECT+1")), "q=SELECT%201");
        assert_eq!(sent("", SqlBody::Raw(b"SELECT 1")), "q=SELECT%201");
        // `q` from the URL beats a raw body, as on Tinybird.
        assert_eq!(
            sent("q=SELECT+1", SqlBody::Raw(b"SELECT 2")),
            "q=SELECT%201"
        );
    }

    #[test]
    fn any_parameter_but_q_is_refused_by_name() {
        for query in [
            "q=SELECT+1&output_format_json_quote_64bit_integers=0",
            "q=SELECT+1&template_parameters=x",
            "q=SELECT+1&pipeline=p",
            "q=SELECT+1&days=7",
        ] {
            let name = query.split('&').nth(1).unwrap().split('=').next().unwrap();
            let err = sql_params(query, SqlBody::None).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name), "{query}: {text}");
            assert_eq!(err.into_response().status(), 400);
        }
        let err = sql_params("", SqlBody::Form(b"q=SELECT+1&debug=query")).unwrap_err();
        assert!(err.to_string().contains("debug"));
    }

    #[test]
    fn tokens_never_go_upstream_and_one_q_does() {
        assert_eq!(
            sent(
                "token=p.stolen&q=SELECT+1",
                SqlBody::Form(b"token=x&q=SELECT+2")
            ),
            "q=SELECT%201"
        );
    }

    #[test]
    fn a_missing_blank_or_unreadable_query_is_refused_before_any_call() {
        let status = |r: Result<Params, ProxyError>| r.unwrap_err().into_response().status();
        for (query, body) in [
            ("", SqlBody::None),
            ("q=+++", SqlBody::None),
            ("", SqlBody::Raw(b"  \n")),
            ("", SqlBody::Raw(b"\xff\xfe")),
            ("q=%FF", SqlBody::None),
        ] {
            assert_eq!(status(sql_params(query, body)), 400, "{query:?} {body:?}");
        }
        let long = format!("q={}", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(status(sql_params(&long, SqlBody::None)), 414);
    }
}
