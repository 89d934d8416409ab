//! `GET`/`POST /api/sql`: Tinybird's `/v0/sql` through the BFF, for users whose grants give
//! data sources.
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
//! allowlist and streamed, capped body (see `respond`). `token` parameters are dropped.
//! Other parameters pass through. A trailing `FORMAT CSV` (or `JSON`, `CSVWithNames`,
//! `JSONEachRow`) is part of the query, so the format and its content type pass through too.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use super::respond::{Attempts, ProxyError, respond};
use super::{Credentials, MAX_FORM_BYTES, MAX_QUERY_BYTES};
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::params::Params;

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

/// `GET`/`POST /api/sql`: one log line per call, never the query or a token.
pub async fn sql(
    State(state): State<AppState>,
    user: Result<CurrentUser, AppError>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = handle(&state, user, &method, &uri, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    let attempts = response.extensions().get::<Attempts>().map_or(0, |a| a.0);
    let tenant = response
        .extensions()
        .get::<super::TenantLabel>()
        .and_then(|t| t.0.as_deref());
    let status = response.status().as_u16();
    // SQL is counted under one pipe label: its text never becomes a label.
    state
        .metrics
        .proxy_request(tenant, "(sql)", status, attempts, started.elapsed());
    tracing::info!(
        status,
        attempts,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "proxied sql call"
    );
    response
}

async fn handle(
    state: &AppState,
    user: Result<CurrentUser, AppError>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    // As for pipes: a bearer IdP token authenticates on its own and needs no CSRF defence.
    let CurrentUser(user) = user?;
    if method == Method::POST && !headers.contains_key(header::AUTHORIZATION) {
        crate::auth::csrf::check(headers, &state.settings.public_url)?;
    }
    if matches!(state.proxy.credentials, Credentials::Static(_)) {
        return Err(ProxyError::SqlNeedsJwt);
    }
    let access = state
        .settings
        .grants
        .evaluate_cached(&user)
        .map_err(|e| AppError::Forbidden(e.to_string()))?;
    if access.datasources.is_empty() {
        return Err(AppError::Forbidden(
            "no grant gives you a data source: /api/sql reads data sources through their row filters; ask an admin for a grant with `datasources`".into(),
        )
        .into());
    }
    let bytes = match *method {
        Method::POST => axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ProxyError::BodyTooLarge(MAX_FORM_BYTES))?,
        _ => Default::default(),
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let sql_body = match (bytes.is_empty(), form) {
        (true, _) => SqlBody::None,
        (false, true) => SqlBody::Form(&bytes),
        (false, false) => SqlBody::Raw(&bytes),
    };
    let params = sql_params(uri.query().unwrap_or(""), sql_body)?;
    let bearer = state.proxy.bearer(state, &user, &access)?;
    let (outcome, attempts) = state
        .proxy
        .upstream
        .sql(&params, &bearer.token, method == Method::POST)
        .await;
    let max = state.proxy.max_response_bytes;
    let mut response =
        respond(outcome, max, "SQL", &bearer.redactor).unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(Attempts(attempts));
    response
        .extensions_mut()
        .insert(super::TenantLabel(user.tenant));
    Ok(response)
}

/// The parameters to send upstream: the query string plus the body's part, with exactly one
/// non-blank `q` and no `token` (pure, no I/O).
///
/// A `q` parameter wins over a raw body, as on Tinybird's own endpoint; several `q`s become
/// the first one, so what runs is never ambiguous.
pub fn sql_params(query: &str, body: SqlBody<'_>) -> Result<Params, ProxyError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ProxyError::UriTooLong(MAX_QUERY_BYTES));
    }
    let bad = |e: crate::params::ParamsError| ProxyError::App(AppError::BadRequest(e.to_string()));
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
    use super::*;

    fn sent(query: &str, body: SqlBody<'_>) -> String {
        sql_params(query, body).unwrap().to_query_string()
    }

    #[test]
    fn the_query_arrives_as_q_from_the_url_the_form_or_the_raw_body() {
        assert_eq!(sent("q=SELECT+1", SqlBody::None), "q=SELECT%201");
        assert_eq!(sent("", SqlBody::Form(b"q=SELECT+1")), "q=SELECT%201");
        assert_eq!(sent("", SqlBody::Raw(b"SELECT 1")), "q=SELECT%201");
        // Other parameters pass; `q` from the URL beats a raw body, as on Tinybird.
        assert_eq!(
            sent(
                "output_format_json_quote_64bit_integers=0&q=SELECT+1",
                SqlBody::Raw(b"SELECT 2")
            ),
            "output_format_json_quote_64bit_integers=0&q=SELECT%201"
        );
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
