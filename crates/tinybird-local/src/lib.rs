//! The Tinybird-compatible local endpoint: the "Tinybird" of every offline run.
//!
//! It serves pipes (SQL templates in Tinybird's syntax over SQLite) with Tinybird's auth, JSON
//! shape, status codes and rate limits, so the demo, our tests and our users' tests need no
//! Tinybird account. Fidelity to the API contract matters here, not the SQL dialect.
//!
//! Use it standalone (`tinybird-bff local`) or in-process: build a [`LocalEndpoint`], then
//! [`LocalEndpoint::serve`] it on any listener (port 0 in tests).

pub mod auth;
pub mod budget;
pub mod clickhouse;
pub mod data;
pub mod error;
pub mod events;
pub mod execute;
pub mod format;
pub mod headers;
pub mod offload;
pub mod pipes;
pub mod project;
pub mod query;
pub mod ratelimit;
pub mod routes;
pub mod settings;
pub mod sql;
pub mod stats;
pub mod template;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use tinybird_contract::serve::ConnLimits;

use auth::{Keys, StaticToken};
use clickhouse::TranslateLimits;
use data::{Database, DemoData};
use pipes::{PipeLoadError, PipeSet};
use query::QueryLimits;
use stats::{PipeStats, StatsSettings};
use tinybird_contract::AdminToken;

/// Translations running at once, each on its own thread (see [`offload`]); more wait for a
/// free one, within their deadline.
const TRANSLATION_THREADS: usize = 4;

/// Names of the embedded demo pipes (file stems).
pub fn embedded_pipe_names() -> Vec<String> {
    project::DEMO_FILES
        .iter()
        .filter_map(|(file, _)| file.strip_suffix(".pipe"))
        .map(|file| file.rsplit('/').next().unwrap_or(file).to_owned())
        .collect()
}

/// What to serve and with which key.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The workspace admin token: verifies JWTs and reads everything itself.
    pub signing_key: AdminToken,
    /// The workspace id JWTs must carry; defaults to the one in the signing key.
    pub workspace_id: Option<String>,
    /// A Tinybird project folder (data sources, pipes, fixtures); the embedded demo when
    /// `None`.
    pub project: Option<PathBuf>,
    /// A directory of `.pipe` files over the demo's data sources (ignored with `project`).
    pub pipes_dir: Option<PathBuf>,
    /// A SQLite file to serve; generated demo data when `None`.
    pub data: Option<PathBuf>,
    /// Shape of the generated demo data.
    pub demo: DemoData,
    /// Per-query time, row, byte and memory budget.
    pub query_limits: QueryLimits,
    /// How long, deep and large a query the translator takes on (its `deadline` is ignored
    /// here: each request's comes from `query_limits.timeout`).
    pub translate_limits: TranslateLimits,
    /// Largest accepted request body (form POSTs, token requests).
    pub max_body: usize,
    /// Largest Events API body (`--max-events-body`).
    pub max_events_body: usize,
    /// Static tokens accepted besides the admin token (e.g. one scoped to
    /// `DATASOURCES:READ:tinybird.pipe_stats_rt`).
    pub static_tokens: Vec<StaticToken>,
    /// How much of `tinybird.pipe_stats_rt` is kept.
    pub stats: StatsSettings,
    /// Timeouts and the connection cap of the listener (slow clients are cut, not held).
    pub conn_limits: ConnLimits,
}

impl LocalConfig {
    /// Defaults around a signing key: embedded pipes, generated data.
    pub fn new(signing_key: AdminToken) -> Self {
        Self {
            signing_key,
            workspace_id: None,
            project: None,
            pipes_dir: None,
            data: None,
            demo: DemoData::default(),
            query_limits: QueryLimits::default(),
            translate_limits: TranslateLimits::default(),
            max_body: 1024 * 1024,
            max_events_body: events::DEFAULT_MAX_EVENTS_BODY,
            static_tokens: Vec::new(),
            stats: StatsSettings::default(),
            conn_limits: ConnLimits::default(),
        }
    }
}

/// Shared state of the handlers.
pub struct LocalState {
    /// Loaded pipes, by name and id.
    pub pipes: PipeSet,
    /// The SQLite database the pipes read.
    pub db: Arc<Database>,
    /// Signing key, and the admin credential.
    pub admin: AdminToken,
    /// The workspace JWTs must name.
    pub workspace_id: String,
    /// Static tokens besides the admin token.
    pub static_tokens: Vec<StaticToken>,
    /// `limits.rps` buckets per (workspace, pipe, JWT name).
    pub limiter: ratelimit::RpsLimiter,
    /// `tinybird.pipe_stats_rt`.
    pub stats: PipeStats,
    /// Per-query budget.
    pub query_limits: QueryLimits,
    /// Translation limits (the deadline is set per request).
    pub translate_limits: TranslateLimits,
    /// The threads translations run on.
    pub offload: offload::Offload,
    /// Body size cap.
    pub max_body: usize,
    /// Events API body size cap.
    pub max_events_body: usize,
}

impl LocalState {
    /// What verifies presented tokens.
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            admin: &self.admin,
            workspace_id: &self.workspace_id,
            statics: &self.static_tokens,
        }
    }
}

/// A ready-to-serve local endpoint.
#[derive(Clone)]
pub struct LocalEndpoint {
    state: Arc<LocalState>,
    conn_limits: ConnLimits,
}

/// Why the endpoint cannot start at all (a broken pipe file is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The pipes directory cannot be read.
    #[error("cannot read pipes directory {0}: {1}")]
    PipesDir(PathBuf, std::io::Error),
    /// The data file cannot be opened, or the demo data cannot be generated.
    #[error("cannot open data {0}: {1}")]
    Data(String, rusqlite::Error),
    /// The in-memory `tinybird.pipe_stats_rt` cannot be set up.
    #[error("cannot set up tinybird.pipe_stats_rt: {0}")]
    Stats(rusqlite::Error),
}

/// Loads what `config` names (a project folder, a pipes folder over the demo's data sources,
/// or the embedded demo) into the pipes and the database to serve. Broken files come back
/// beside them.
fn open(config: &LocalConfig) -> Result<(PipeSet, Arc<Database>, Vec<PipeLoadError>), StartError> {
    let project = match (&config.project, &config.pipes_dir) {
        (Some(dir), _) => {
            project::Project::load_dir(dir).map_err(|e| StartError::PipesDir(dir.clone(), e))?
        }
        (None, Some(dir)) => {
            project::Project::pipes_dir(dir).map_err(|e| StartError::PipesDir(dir.clone(), e))?
        }
        (None, None) => project::Project::embedded_demo(),
    };
    let mut problems = project.problems.clone();
    // Materializations are run by the database on appends (see `project::materialize`).
    let sources: Vec<(String, &str)> = project::materialize::split(&project.pipes)
        .1
        .into_iter()
        .map(|(path, contents)| (path.display().to_string(), contents.as_str()))
        .collect();
    let sources: Vec<(&str, &str)> = sources.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    let (pipes, pipe_problems) = PipeSet::from_sources(&sources);
    problems.extend(pipe_problems);
    let db = match &config.data {
        Some(path) => {
            Database::open(path).map_err(|e| StartError::Data(path.display().to_string(), e))?
        }
        None => {
            let (db, fixture_problems) = Database::from_project(&project, &config.demo)
                .map_err(|e| StartError::Data("(project data)".into(), e))?;
            problems.extend(fixture_problems);
            db
        }
    };
    Ok((pipes, db, problems))
}

impl LocalEndpoint {
    /// Loads pipes and data. Broken pipe files come back beside the endpoint: log them; the
    /// other pipes still serve.
    pub fn new(config: LocalConfig) -> Result<(Self, Vec<PipeLoadError>), StartError> {
        let (pipes, db, problems) = open(&config)?;
        let workspace_id = config
            .workspace_id
            .or_else(|| config.signing_key.workspace_id())
            .unwrap_or_else(|| "local".to_owned());
        let stats = PipeStats::new(config.stats).map_err(StartError::Stats)?;
        db.for_each_connection(|conn| stats.attach(conn))
            .map_err(StartError::Stats)?;
        let state = LocalState {
            pipes,
            db,
            admin: config.signing_key,
            workspace_id,
            static_tokens: config.static_tokens,
            limiter: ratelimit::RpsLimiter::default(),
            stats,
            query_limits: config.query_limits,
            translate_limits: config.translate_limits,
            offload: offload::Offload::new(TRANSLATION_THREADS, &config.translate_limits),
            max_body: config.max_body,
            max_events_body: config.max_events_body,
        };
        Ok((
            Self {
                state: Arc::new(state),
                conn_limits: config.conn_limits,
            },
            problems,
        ))
    }

    /// The workspace id JWTs must carry.
    pub fn workspace_id(&self) -> &str {
        &self.state.workspace_id
    }

    /// Names of the pipes being served.
    pub fn pipe_names(&self) -> Vec<String> {
        self.state.pipes.iter().map(|p| p.name.clone()).collect()
    }

    /// The router, with Tinybird's headers on every answer (CORS for any origin, a request
    /// id) and its bare 204 to `OPTIONS` (see [`headers`]).
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/v0/pipes/{file}",
                get(routes::pipe)
                    .post(routes::pipe)
                    .fallback(routes::method_not_allowed),
            )
            .route(
                "/v0/tokens",
                post(routes::create_token).fallback(routes::post_only),
            )
            .route(
                "/v0/tokens/",
                post(routes::create_token).fallback(routes::post_only),
            )
            .route(
                "/v0/events",
                post(events::events).fallback(events::post_only),
            )
            .route(
                "/v0/sql",
                get(sql::sql)
                    .post(sql::sql)
                    .fallback(routes::method_not_allowed),
            )
            .fallback(routes::not_found)
            .layer(axum::middleware::from_fn(headers::tinybird_headers))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests; slow and idle
    /// clients are cut and connections capped as `conn_limits` says (see `tinybird_contract::serve`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tinybird_contract::serve::serve(listener, self.router(), self.conn_limits, shutdown).await
    }
}
