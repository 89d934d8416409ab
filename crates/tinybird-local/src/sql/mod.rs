//! `GET`/`POST /v0/sql`: ad-hoc SQL over data sources, with row-level security.
//!
//! A JWT's `DATASOURCES:READ` scopes name the data sources (tables) it may read, each with
//! an SQL `filter` that Tinybird adds to every read of it. Here SQLite enforces that, for
//! any shape of query (joins, subqueries, `UNION`, CTEs named like a data source,
//! `main.orders`, `OR 1=1` in the user's own `WHERE`), in two passes on the pooled
//! connection (see [`sandbox`]):
//!
//! 1. **Check.** Every granted data source becomes an empty `temp` table with its name and
//!    columns, so the statement resolves every name exactly as it will in pass 2. It is
//!    compiled with an authorizer ([`policy`]) that refuses *any* read of `main`, pragmas,
//!    `ATTACH`, writes and functions off an allow-list; it must be one read-only statement,
//!    not `EXPLAIN`. Then its bytecode (`EXPLAIN`) must open no b-tree outside `temp` and
//!    no virtual table. The bytecode check exists because SQLite never asks the authorizer
//!    about the columns of a `USING`/`NATURAL` join, so `FROM (SELECT 'globex' AS org_id)
//!    JOIN main.orders USING (org_id)` would otherwise count another tenant's rows.
//! 2. **Run.** The stand-ins are replaced by views: `temp."orders"` reads a secret-named
//!    `temp` view that alone reads `main."orders" WHERE (<filter>)`. Unqualified names find
//!    `temp` first, so the user's `orders` is the filtered view. The authorizer now allows
//!    `main` reads only when the innermost view is a secret one (SQLite reports that
//!    "accessor"; a CTE or view the user names `orders` cannot pass for it), then the
//!    statement runs `query_only`, with the time, row and value-length limits.
//!
//! The admin token reads every table unfiltered, under the same read-only, allow-listed
//! rules. A JWT with no `DATASOURCES:READ` scope gets a 403; so does any statement that
//! reads a data source its token does not grant, or reads one around its filter. Statements
//! that are not plain reads get a 400.
//!
//! Service data sources (`tinybird.pipe_stats_rt`, see [`super::stats`]) live in the attached
//! `tinybird` schema. The admin token reads them; a static token reads those its
//! `DATASOURCES:READ` scopes name, unfiltered; a JWT never does, whatever its scopes.
//!
//! The query is ClickHouse SQL: it is translated to SQLite first (`super::clickhouse`,
//! cached per text), and the sandbox only ever sees the translation (schema-qualified names
//! such as `tinybird.pipe_stats_rt` pass through untouched). Differences from Tinybird: the
//! ClickHouse subset the translator supports (the rest is a 400 naming it), JSON as the
//! default format, no pipes as tables, and data sources are the tables of the database
//! (`orders`, `products`, `orgs` in the demo); views in a `--data` file cannot be granted.

pub mod policy;
pub mod sandbox;
pub mod statement;

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::LocalState;
use super::auth::{Caller, StaticScope, authenticate, presented_token};
use super::error::{Api, ApiError};
use super::execute;
use super::format::{self, Format};
use super::headers::RequestId;
use super::query::{QueryError, QueryOutput};
use super::routes::Trace;
use super::stats::{QUERY_API, SCHEMA};
use policy::Denial;
use statement::{SqlFormat, split_format};
use tinybird_contract::claims::{Scope, ScopeType};
use tinybird_contract::params::Params;

/// What a caller may read with SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlAccess {
    /// The workspace admin token: every table, unfiltered.
    Admin,
    /// Data source name to its filter (`None`: the scope has no filter, so every row).
    Filtered(BTreeMap<String, Option<String>>),
}

impl SqlAccess {
    /// The access a verified caller has; a token without `DATASOURCES:READ` scopes has none.
    /// A static token reads its data sources unfiltered, service ones (`tinybird.*`) too; a
    /// JWT's scopes on service data sources are dropped (tenants never read them).
    pub fn for_caller(caller: &Caller) -> Result<Self, SqlError> {
        match caller {
            Caller::Admin => Ok(SqlAccess::Admin),
            Caller::Static(token) => {
                let granted: BTreeMap<String, Option<String>> = token
                    .scopes
                    .iter()
                    .filter_map(|s| match s {
                        StaticScope::DatasourcesRead(name) => Some((name.clone(), None)),
                        StaticScope::PipesRead(_) | StaticScope::DatasourcesAppend(_) => None,
                    })
                    .collect();
                if granted.is_empty() {
                    return Err(no_datasource_scope());
                }
                Ok(SqlAccess::Filtered(granted))
            }
            Caller::Jwt(claims) => {
                let tenant_scopes: Vec<Scope> = claims
                    .scopes
                    .iter()
                    .filter(|s| !is_service(&s.resource))
                    .cloned()
                    .collect();
                Self::from_scopes(&tenant_scopes)
            }
        }
    }

    /// Collects the `DATASOURCES:READ` scopes; two for one data source must agree.
    pub fn from_scopes(scopes: &[Scope]) -> Result<Self, SqlError> {
        let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
        for scope in scopes
            .iter()
            .filter(|s| s.scope_type == ScopeType::DatasourcesRead)
        {
            match out.get(&scope.resource) {
                Some(existing) if *existing != scope.filter => {
                    return Err(SqlError::Scopes(format!(
                        "token has two DATASOURCES:READ scopes for {} with different filters: mint one",
                        scope.resource
                    )));
                }
                _ => {
                    out.insert(scope.resource.clone(), scope.filter.clone());
                }
            }
        }
        if out.is_empty() {
            return Err(no_datasource_scope());
        }
        Ok(SqlAccess::Filtered(out))
    }
}

/// Whether `name` is a service data source (`tinybird.pipe_stats_rt`).
pub fn is_service(name: &str) -> bool {
    name.strip_prefix(SCHEMA)
        .is_some_and(|rest| rest.starts_with('.'))
}

fn no_datasource_scope() -> SqlError {
    SqlError::Scopes(
        "token has no DATASOURCES:READ scope: /v0/sql reads data sources, and PIPES:READ scopes do not cover it".into(),
    )
}

/// Why a `/v0/sql` statement did not run.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The token cannot use `/v0/sql` at all (403).
    #[error("{0}")]
    Scopes(String),
    /// The statement reads something the token may not read, or around a filter (403).
    #[error("{0}")]
    Denied(Denial),
    /// Outside the ClickHouse the local endpoint runs (400).
    #[error("{0}")]
    Translate(#[from] crate::clickhouse::TranslateError),
    /// Not one plain read, or a function off the allow-list (400).
    #[error("{0}")]
    Statement(String),
    /// A token's filter does not compile against the data source (400).
    #[error("the token's filter for data source {datasource} does not work here: {message}")]
    BadFilter {
        /// The data source.
        datasource: String,
        /// SQLite's complaint.
        message: String,
    },
    /// SQLite refused the query: syntax, unknown column, ... (400).
    #[error("query failed: {0}")]
    Sql(String),
    /// Past the time (408) or row (400) budget.
    #[error(transparent)]
    Query(QueryError),
    /// Setting up the connection failed (500).
    #[error("internal error preparing the query: {0}")]
    Internal(String),
}

impl SqlError {
    /// The HTTP status Tinybird would answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            SqlError::Scopes(_) => StatusCode::FORBIDDEN,
            SqlError::Denied(d) if d.is_access() => StatusCode::FORBIDDEN,
            SqlError::Query(QueryError::Timeout(_)) => StatusCode::REQUEST_TIMEOUT,
            SqlError::Translate(crate::clickhouse::TranslateError::Timeout) => {
                StatusCode::REQUEST_TIMEOUT
            }
            SqlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// `GET /v0/sql?q=...` and `POST /v0/sql` (form `q`, or the query as the raw body); a row
/// of `tinybird.pipe_stats_rt` (`pipe_name = 'query_api'`) whatever it answers.
pub async fn sql(
    State(state): State<Arc<LocalState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut trace = Trace::new(&state, &id, uri.path());
    trace.row.pipe_name = QUERY_API.to_owned();
    let request = (&method, &uri, &headers, started);
    let response = match run_sql(&state, &mut trace, request, body).await {
        Ok(response) => response,
        Err(e) => e.for_api(Api::Query).into_response(),
    };
    trace.finish(&state, response, started)
}

async fn run_sql(
    state: &LocalState,
    trace: &mut Trace,
    (method, uri, headers, started): (&Method, &Uri, &HeaderMap, Instant),
    body: Body,
) -> Result<Response, ApiError> {
    let (params, raw) = request(state, method, uri, headers, body).await?;
    let now = chrono::Utc::now().timestamp();
    let caller = authenticate(presented_token(&params, headers), &state.keys(), now)?;
    trace.row = state.stats.row(&trace.row.request_id, uri.path(), &params);
    trace.row.pipe_name = QUERY_API.to_owned();
    (trace.row.token, trace.row.token_name) = caller.stats_identity();
    trace.authenticated = true;
    let access = SqlAccess::for_caller(&caller)?;
    trace.rate = match state
        .limiter
        .enforce(&caller, &state.workspace_id, QUERY_API)
    {
        Ok(rate) => rate,
        Err((refusal, rate)) => {
            trace.rate = Some(rate);
            return Err(refusal);
        }
    };
    let query = params
        .first("q")
        .map(str::to_owned)
        .or(raw)
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing query: send it as `q` (GET or form POST) or as the POST body",
            )
        })?;
    let (sql, format) = split_format(&query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let deadline = execute::deadline(state, started);
    let translated = execute::translate_query(state, sql, deadline)
        .await?
        .map_err(SqlError::from)?;
    let quote_64bit = params.first("output_format_json_quote_64bit_integers") != Some("0");
    let conn = execute::connection(state, deadline).await?;
    let limits = state.query_limits;
    let out = execute::blocking(move || {
        sandbox::run_typed(
            &conn,
            &translated.sql,
            translated.columns.as_deref(),
            &access,
            limits,
            deadline,
        )
    })
    .await?
    .map_err(|e| {
        tracing::info!(status = e.status().as_u16(), error = %e, "/v0/sql refused");
        ApiError::from(e)
    })?;
    trace.row.read_rows = out.rows_read;
    trace.row.read_bytes = out.bytes_read;
    trace.row.result_rows = out.rows.len() as u64;
    let (content_type, text) = render(&out, format, quote_64bit);
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Query parameters (plus a form body), or the raw body as the query.
async fn request(
    state: &LocalState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Params, Option<String>), ApiError> {
    let mut params = Params::parse(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if method != Method::POST {
        return Ok((params, None));
    }
    let limit = state.max_body;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    })?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        params
            .extend(Params::parse_bytes(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?);
        return Ok((params, None));
    }
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("the query body is not valid UTF-8"))?;
    Ok((params, Some(text)))
}

fn render(out: &QueryOutput, format: SqlFormat, quote_64bit: bool) -> (&'static str, String) {
    match format {
        SqlFormat::Json => (
            Format::Json.content_type(),
            format::render(out, Format::Json, quote_64bit),
        ),
        SqlFormat::JsonEachRow => (
            Format::Ndjson.content_type(),
            format::render(out, Format::Ndjson, quote_64bit),
        ),
        SqlFormat::CsvWithNames => (
            Format::Csv.content_type(),
            format::render(out, Format::Csv, quote_64bit),
        ),
        SqlFormat::Csv => {
            // ClickHouse's plain CSV has no header row: render the header alone to cut it.
            let header_only = QueryOutput {
                columns: out.columns.clone(),
                rows: Vec::new(),
                rows_read: 0,
                bytes_read: 0,
                elapsed: out.elapsed,
            };
            let header = format::render(&header_only, Format::Csv, quote_64bit);
            let body = format::render(out, Format::Csv, quote_64bit);
            let rows = body.strip_prefix(&header).unwrap_or(&body).to_owned();
            (Format::Csv.content_type(), rows)
        }
    }
}

#[cfg(test)]
mod tests;
