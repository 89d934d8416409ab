//! The subcommands behind `main.rs`: each loads what it needs and reports errors plainly.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Settings;
use crate::tinybird::AdminToken;
use crate::tinybird::mint::mint as mint_token;
use tinybird_local::settings as local_settings;
use tinybird_local::{LocalConfig, LocalEndpoint};

/// The log output, swappable once the config (`[log] format`) has been read.
type FormatLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

static LOG_FORMAT: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<FormatLayer, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

fn format_layer(format: crate::audit::LogFormat) -> FormatLayer {
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer().with_writer(|| ScrubbedStderr);
    match format {
        crate::audit::LogFormat::Text => layer.boxed(),
        crate::audit::LogFormat::Json => layer.json().boxed(),
    }
}

/// Standard error, each log line scrubbed of credentials first ([`crate::redact::scrub_line`]):
/// the last net under every log line, whatever a dependency or Tinybird put in it.
struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes one whole event per call, so a token is never split here.
        std::io::stderr()
            .lock()
            .write_all(&crate::redact::scrub_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logs to stderr as text; `RUST_LOG` filters (default `info`). Never logs secrets: see
/// `SECURITY`. Logging starts before the config is read; [`set_log_format`] switches to JSON.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (layer, handle) =
        tracing_subscriber::reload::Layer::new(format_layer(crate::audit::LogFormat::Text));
    if tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FORMAT.set(handle);
    }
}

/// Switches the application log to `format` (`[log] format`); no-op without [`init_logging`].
pub fn set_log_format(format: crate::audit::LogFormat) {
    if let Some(handle) = LOG_FORMAT.get() {
        let _ = handle.reload(format_layer(format));
    }
}

fn load(config: &Path) -> anyhow::Result<Settings> {
    Settings::load(config).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!(
            "{} has {} problem(s):\n{}",
            config.display(),
            problems.len(),
            list.join("\n")
        )
    })
}

/// `serve --config F`: refuses to start on any problem `check` would print.
pub async fn serve(config: &Path) -> anyhow::Result<()> {
    let settings = load(config)?;
    set_log_format(settings.log_format);
    let path = config.to_owned();
    let load: crate::run::Loader = std::sync::Arc::new(move || Settings::load(&path));
    crate::run::run(settings, false, Some(load), |running| {
        tracing::info!(app = %running.public_url, listen = %running.bound.app, tinybird = %running.tinybird_url, admin = ?running.bound.admin, "tinybird-bff serving");
    })
    .await
}

/// `check --config F`; with `[usage]` on a remote Tinybird, also that the usage token reads
/// none of the workspace's pipes (it should read `tinybird.pipe_stats_rt` only).
pub async fn check(config: &Path) -> anyhow::Result<()> {
    let settings = load(config)?;
    if let Some(usage) = &settings.usage {
        check_usage_token(&settings, usage).await?;
    }
    if let Some(keys) = &settings.keys {
        check_key_store(keys).await?;
    }
    let workspaces: Vec<String> = settings
        .tinybird
        .workspaces
        .iter()
        .map(|w| match w.name.as_str() {
            crate::config::tinybird::SINGLE_WORKSPACE => w.workspace_id.clone(),
            name => format!("{name} = {}", w.workspace_id),
        })
        .collect();
    println!(
        "{}: ok ({} users, workspace {}, token ttl {}s)",
        config.display(),
        settings.users.ids().count(),
        workspaces.join(", "),
        settings.token_ttl.as_secs()
    );
    Ok(())
}

/// `check` with `[keys]`: the key store answers (a SQLite file is created if missing; the
/// migrations run when the server starts).
async fn check_key_store(settings: &crate::keys::KeysSettings) -> anyhow::Result<()> {
    crate::redact::register_log_secrets(settings.secrets());
    let metrics = crate::metrics::Metrics::new();
    let audit = std::sync::Arc::new(crate::audit::Audit::open(
        &crate::audit::AuditOutput::Off,
        metrics.clone(),
    )?);
    let keys = crate::keys::Keys::new(settings.clone(), audit, metrics)?;
    keys.ping().await.map_err(|e| {
        anyhow::anyhow!(
            "keys: the {} key store does not answer: {e}",
            settings.store_kind()
        )
    })?;
    println!("keys: the {} key store answers", settings.store_kind());
    Ok(())
}

async fn check_usage_token(
    settings: &crate::config::Settings,
    usage: &crate::usage::UsageSettings,
) -> anyhow::Result<()> {
    for source in &usage.sources {
        if source.token_is_admin {
            println!(
                "warning: usage.use_admin_token: workspace {:?}'s usage is read with its admin token, which reads everything; set {} to a token scoped DATASOURCES:READ:tinybird.pipe_stats_rt",
                source.workspace,
                crate::usage::config::workspace_token_env(&source.token_env, &source.workspace)
            );
            continue;
        }
        let Some(ws) = settings
            .tinybird
            .workspaces
            .iter()
            .find(|w| w.name == source.workspace)
        else {
            continue;
        };
        let (crate::config::TinybirdHost::Remote(url), Some(pipes)) = (&ws.host, &ws.known_pipes)
        else {
            continue;
        };
        match crate::usage::poller::overreach(url.as_str(), &source.token, pipes).await {
            Ok(readable) if readable.is_empty() => {}
            Ok(readable) => bail!(
                "usage.token_env: the token in {} can read more than tinybird.pipe_stats_rt (pipes {}); create a static token with only DATASOURCES:READ:tinybird.pipe_stats_rt",
                source.token_env,
                readable.join(", ")
            ),
            Err(e) => println!(
                "note: workspace {:?}'s usage token scopes were not checked: {e}",
                source.workspace
            ),
        }
    }
    Ok(())
}

/// `mint --config F --user U [--explain]`.
pub fn mint(config: &Path, user: &str, explain: bool) -> anyhow::Result<()> {
    let settings = load(config)?;
    let record = settings
        .users
        .get(user)
        .with_context(|| format!("no user {user:?} in the users file"))?;
    let access = settings
        .grants
        .evaluate(&record.user)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (workspace, why) = settings
        .tinybird
        .for_user(&record.user)
        .map_err(|e| anyhow::anyhow!("no Tinybird workspace for user {user}: {e}"))?;
    let plan = crate::tinybird::mint::TokenPlan {
        name: settings.token_name.render(&record.user)?,
        ttl: settings.token_ttl,
        rps: settings.token_rps,
    };
    let params = crate::tinybird::mint::MintParams {
        workspace_id: &workspace.workspace_id,
        signing_key: workspace.signing_key.secret(),
        plan: &plan,
    };
    let minted = mint_token(&access, &params, chrono::Utc::now().timestamp());
    if !explain {
        return print_out(&format!("{}\n", minted.token));
    }
    let host = match &workspace.host {
        crate::config::TinybirdHost::Remote(url) => url.to_string(),
        crate::config::TinybirdHost::Local(addr) => format!("local ({addr})"),
    };
    use std::fmt::Write as _;
    let mut out = String::new();
    writeln!(
        out,
        "workspace: {} ({}, {host}) <- {why}",
        workspace.name, workspace.workspace_id
    )?;
    writeln!(
        out,
        "claims:\n{}",
        serde_json::to_string_pretty(&minted.claims)?
    )?;
    writeln!(out, "scopes and the grants behind them:")?;
    for pipe in &access.pipes {
        writeln!(
            out,
            "  PIPES:READ {} <- {} (fixed params {})",
            pipe.pipe,
            pipe.grants.join(", "),
            serde_json::Value::Object(pipe.fixed_params.clone())
        )?;
    }
    for ds in &access.datasources {
        writeln!(
            out,
            "  DATASOURCES:READ {} <- {} (filter {})",
            ds.datasource,
            ds.grants.join(", "),
            ds.filter
        )?;
    }
    print_out(&out)
}

/// Writes `text` to standard output; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// `hash-password`: reads one line from stdin (no echo control; pipe it in or type it).
pub fn hash_password() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("empty password: type or pipe the password on standard input");
    }
    println!("{}", crate::auth::users::hash_password(password));
    Ok(())
}

/// Arguments of `tinybird-bff local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7181")]
    pub listen: SocketAddr,
    /// A Tinybird project folder: `datasources/`, `endpoints/` or `pipes/`, `fixtures/`
    /// [default: the embedded demo project].
    #[arg(long, conflicts_with = "pipes")]
    pub project: Option<PathBuf>,
    /// Directory of `.pipe` files over the demo's data sources [default: the demo's pipes].
    #[arg(long)]
    pub pipes: Option<PathBuf>,
    /// SQLite database file to serve [default: generated demo data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Environment variable holding the signing key (the workspace admin token).
    #[arg(long, default_value = "TINYBIRD_SIGNING_KEY")]
    pub signing_key_env: String,
    /// Workspace id JWTs must carry [default: the key's, else "local"].
    #[arg(long)]
    pub workspace_id: Option<String>,
    /// A static token besides the admin token, as `VAR=SCOPE[,SCOPE...]`: the token is read
    /// from environment variable VAR, e.g.
    /// `--static-token-env TB_USAGE_TOKEN=DATASOURCES:READ:tinybird.pipe_stats_rt`. Repeatable.
    #[arg(long = "static-token-env", value_name = "VAR=SCOPES")]
    pub static_tokens: Vec<String>,
    /// A request head must arrive within this of its first byte.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// A request body must arrive within this of its head; a response the client stops
    /// reading for this long ends the connection.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,
    /// An idle kept-alive connection is closed after this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub keep_alive_timeout: std::time::Duration,
    /// Open connections at most (beyond: the longest-waiting idle or slow one is closed).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_connections: u32,
    /// The limits every query runs within (docs/local.md).
    #[command(flatten)]
    pub limits: LocalLimitArgs,
}

/// The local endpoint's limits: each keeps one request from taking the process down
/// (docs/local.md says what each protects against).
#[derive(Debug, clap::Args)]
pub struct LocalLimitArgs {
    /// Time a query may take, translation included (a 408 past it).
    #[arg(long, default_value = "10s", value_parser = local_settings::parse_duration, help_heading = "Limits")]
    pub query_timeout: std::time::Duration,
    /// Rows a query may return (ClickHouse's max_result_rows).
    #[arg(long, default_value_t = 100_000, help_heading = "Limits")]
    pub max_result_rows: usize,
    /// Bytes of rows a query may return (ClickHouse's max_result_bytes).
    #[arg(long, default_value = "64MiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub max_result_bytes: usize,
    /// Largest string or array one function may build (`repeat`, `leftPad`, `||`, ...).
    #[arg(long, default_value = "16MiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub max_value_bytes: usize,
    /// Bytes a query's functions may hold at once (aggregate states, parsed arrays and JSON).
    #[arg(long, default_value = "256MiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub max_memory_bytes: usize,
    /// Longest query text (ClickHouse's max_query_size).
    #[arg(long, default_value = "256KiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub max_query_size: usize,
    /// Deepest expression nesting (ClickHouse's max_ast_depth).
    #[arg(long, default_value_t = 1000, help_heading = "Limits")]
    pub max_ast_depth: usize,
    /// Expression nodes translated, aliases expanded (ClickHouse's max_expanded_ast_elements).
    #[arg(long, default_value_t = 500_000, help_heading = "Limits")]
    pub max_expanded_ast_elements: usize,
    /// Rows of tinybird.pipe_stats_rt kept.
    #[arg(long, default_value_t = 100_000, help_heading = "Limits")]
    pub stats_max_rows: usize,
    /// Bytes of tinybird.pipe_stats_rt kept in all.
    #[arg(long, default_value = "64MiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub stats_max_bytes: usize,
    /// Bytes of each text (url, parameters) a tinybird.pipe_stats_rt row keeps.
    #[arg(long, default_value = "2KiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub stats_max_text_bytes: usize,
    /// Largest Events API request body (NDJSON rows of one POST /v0/events); a 413 past it.
    #[arg(long, default_value = "10MiB", value_parser = local_settings::parse_bytes, help_heading = "Limits")]
    pub max_events_body: usize,
}

impl LocalLimitArgs {
    /// The limits these flags set, or every problem with them.
    pub fn limits(&self) -> anyhow::Result<local_settings::Limits> {
        use tinybird_local::{
            clickhouse::TranslateLimits, query::QueryLimits, stats::StatsSettings,
        };
        let limits = local_settings::Limits {
            query: QueryLimits {
                timeout: self.query_timeout,
                max_rows: self.max_result_rows,
                max_result_bytes: self.max_result_bytes,
                max_value_bytes: self.max_value_bytes,
                max_memory_bytes: self.max_memory_bytes,
            },
            translate: TranslateLimits {
                max_query_size: self.max_query_size,
                max_ast_depth: self.max_ast_depth,
                max_expanded_ast_elements: self.max_expanded_ast_elements,
                deadline: None,
            },
            stats: StatsSettings {
                max_rows: self.stats_max_rows,
                max_bytes: self.stats_max_bytes,
                max_text_bytes: self.stats_max_text_bytes,
                ..StatsSettings::default()
            },
        };
        let mut problems = limits.problems();
        problems.extend(tinybird_local::events::max_body_problem(
            self.max_events_body,
        ));
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        Ok(limits)
    }
}

/// Reads `VAR=SCOPE,SCOPE` into a static token whose value is `$VAR` and whose name is VAR.
fn static_token(spec: &str) -> anyhow::Result<tinybird_local::auth::StaticToken> {
    use tinybird_local::auth::{StaticScope, StaticToken};
    let (var, scopes) = spec.split_once('=').with_context(|| {
        format!("--static-token-env {spec:?}: write VAR=SCOPE[,SCOPE], e.g. TB_USAGE_TOKEN=DATASOURCES:READ:tinybird.pipe_stats_rt")
    })?;
    let token = std::env::var(var)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .with_context(|| format!("--static-token-env: set {var} to the token's value"))?;
    let scopes = scopes
        .split(',')
        .map(StaticScope::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--static-token-env {var}: {e}"))?;
    Ok(StaticToken {
        name: var.to_owned(),
        token: token.into(),
        scopes,
    })
}

/// `local`: the Tinybird-compatible endpoint on its own.
pub async fn local(args: LocalArgs) -> anyhow::Result<()> {
    let key = match std::env::var(&args.signing_key_env) {
        Ok(key) => AdminToken::new(key).with_context(|| format!("${}", args.signing_key_env))?,
        Err(_) => bail!(
            "set {} to the signing key JWTs are verified with (any string works locally, e.g. `export {}=p.local-dev-key`)",
            args.signing_key_env,
            args.signing_key_env
        ),
    };
    crate::redact::register_log_secrets([secrecy::ExposeSecret::expose_secret(key.secret())]);
    let limits = args.limits.limits()?;
    let mut config = LocalConfig::new(key);
    config.query_limits = limits.query;
    config.translate_limits = limits.translate;
    config.stats = limits.stats;
    config.max_events_body = args.limits.max_events_body;
    config.project = args.project;
    config.pipes_dir = args.pipes;
    config.data = args.data;
    config.workspace_id = args.workspace_id;
    config.conn_limits = tinybird_contract::serve::ConnLimits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        keep_alive_timeout: args.keep_alive_timeout,
        max_connections: args.max_connections as usize,
    }
    .within(tinybird_contract::serve::raise_fd_limit(), 1);
    for spec in &args.static_tokens {
        let token = static_token(spec)?;
        crate::redact::register_log_secrets([secrecy::ExposeSecret::expose_secret(&token.token)]);
        config.static_tokens.push(token);
    }
    let (endpoint, problems) = LocalEndpoint::new(config)?;
    for p in &problems {
        tracing::error!("{p} (this pipe is not served; the others are)");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("tinybird: http://{}", listener.local_addr()?);
    println!("workspace_id: {}", endpoint.workspace_id());
    println!("pipes: {}", endpoint.pipe_names().join(", "));
    endpoint
        .serve(listener, crate::run::shutdown_signal())
        .await?;
    Ok(())
}
