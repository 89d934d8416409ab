//! `tinybird-bff keys create|list|revoke|roll --config F`: the operator manages any tenant's
//! API keys against the same store the server uses (docs/api-keys.md). Standard output holds
//! the answer only (a new key, or the list), so scripts can capture it; the rest goes to
//! standard error, with the audit line when `[audit] output = "stdout"`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Settings;
use crate::keys::record::{KeyScopes, KeyView, Period, Quota};
use crate::keys::{Actor, Keys, NewKey};

/// `tinybird-bff keys ...`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// The TOML config file (its `[keys]` section names the store).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Who is acting, for the audit log and `created_by` [default: $USER].
    #[arg(long, global = true)]
    pub by: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The key subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it (shown this once) on standard output.
    Create {
        /// The tenant that owns it.
        #[arg(long)]
        tenant: String,
        /// A name for people, e.g. "nightly export".
        #[arg(long)]
        name: String,
        /// A pipe it may read (repeatable).
        #[arg(long = "pipe")]
        pipes: Vec<String>,
        /// A data source it may read with SQL (repeatable).
        #[arg(long = "datasource")]
        datasources: Vec<String>,
        /// When it stops working, from now: "30d", "12h".
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// Requests per second.
        #[arg(long)]
        rps: Option<u32>,
        /// Requests per day or month: "1000/day", "50000/month".
        #[arg(long)]
        quota: Option<String>,
        /// An attribute it acts with, NAME=VALUE (repeatable; grants and the workspace rule
        /// read them, e.g. region=eu).
        #[arg(long = "attribute")]
        attributes: Vec<String>,
    },
    /// List keys (every tenant's, or one).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// As JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: refused on every instance within keys.revocation_delay.
    Revoke {
        /// The key id (12 hex characters, as `list` shows).
        id: String,
    },
    /// Give a key a new secret (printed on standard output); the old one works for --grace.
    Roll {
        /// The key id.
        id: String,
        /// How long the old secret keeps working.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
}

fn parse_quota(text: &str) -> anyhow::Result<Quota> {
    let help = "write --quota <requests>/<day|month>, e.g. 1000/day";
    let (n, period) = text
        .split_once('/')
        .with_context(|| format!("--quota {text:?}: {help}"))?;
    Ok(Quota {
        requests: n
            .trim()
            .parse()
            .with_context(|| format!("--quota {text:?}: {help}"))?,
        period: Period::parse(period.trim())
            .with_context(|| format!("--quota {text:?}: {help}"))?,
    })
}

fn parse_attributes(list: &[String]) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    for a in list {
        let (k, v) = a
            .split_once('=')
            .with_context(|| format!("--attribute {a:?}: write NAME=VALUE, e.g. region=eu"))?;
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(Some(out))
}

/// Runs `tinybird-bff keys ...`.
pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let config = args
        .config
        .context("keys: pass --config with the server's config file")?;
    let settings = Settings::load(&config).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!("{} has problems:\n{}", config.display(), list.join("\n"))
    })?;
    let keys_settings = settings.keys.clone().with_context(|| {
        format!(
            "{} has no [keys] section: API keys are off",
            config.display()
        )
    })?;
    crate::redact::register_log_secrets(keys_settings.secrets());
    let output = match &settings.audit {
        crate::audit::AuditOutput::Stdout => crate::audit::AuditOutput::Stderr,
        other => other.clone(),
    };
    let metrics = crate::metrics::Metrics::new();
    let audit = Arc::new(crate::audit::Audit::open(&output, metrics.clone())?);
    let keys = Keys::open(keys_settings, audit, metrics)
        .await
        .context("keys: the key store")?;
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let actor = Actor::Operator(&by);
    let now = chrono::Utc::now().timestamp();
    let result = match args.command {
        KeysCommand::Create {
            tenant,
            name,
            pipes,
            datasources,
            expires_in,
            rps,
            quota,
            attributes,
        } => {
            let new = NewKey {
                name,
                tenant: Some(tenant),
                scopes: KeyScopes { pipes, datasources },
                expires_at: expires_in.map(|d| now + d.as_secs() as i64),
                rps,
                quota: quota.as_deref().map(parse_quota).transpose()?,
                attributes: parse_attributes(&attributes)?,
            };
            let issued = keys.create(&settings.grants, actor, new, now).await?;
            eprintln!("{}", describe(&issued.view));
            eprintln!("the key below is shown this once: store it now");
            println!("{}", issued.secret);
            Ok(())
        }
        KeysCommand::List { tenant, json } => {
            let listed = keys.list(&actor, tenant.as_deref(), now).await?;
            if json {
                let all: Vec<_> = listed
                    .iter()
                    .map(|(v, u)| serde_json::json!({ "key": v, "usage": u }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{}",
                    table(&listed.iter().map(|(v, _)| v).collect::<Vec<_>>())
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            let view = keys.revoke(actor, &id, now).await?;
            eprintln!("{}", describe(&view));
            Ok(())
        }
        KeysCommand::Roll { id, grace } => {
            let issued = keys.roll(actor, &id, grace, now).await?;
            eprintln!("{}", describe(&issued.view));
            eprintln!(
                "the old secret works for {} more; the new key below is shown this once",
                humantime::format_duration(grace)
            );
            println!("{}", issued.secret);
            Ok(())
        }
    };
    keys.close().await;
    result.map_err(|e: crate::error::AppError| anyhow::anyhow!("{e}"))
}

fn when(at: Option<i64>) -> String {
    at.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn describe(v: &KeyView) -> String {
    format!(
        "key {} ({}…) {:?} of tenant {}: {}, pipes [{}], data sources [{}], expires {}",
        v.id,
        v.prefix,
        v.name,
        v.tenant,
        serde_json::to_value(v.status)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("?"),
        v.scopes.pipes.join(", "),
        v.scopes.datasources.join(", "),
        when(v.expires_at),
    )
}

fn table(views: &[&KeyView]) -> String {
    if views.is_empty() {
        return "no keys".into();
    }
    let mut out = format!(
        "{:<12}  {:<14}  {:<12}  {:<8}  {:<16}  {:<16}  {}\n",
        "ID", "PREFIX", "TENANT", "STATUS", "LAST USED", "CREATED", "NAME"
    );
    for v in views {
        let status = serde_json::to_value(v.status).unwrap_or_default();
        out.push_str(&format!(
            "{:<12}  {:<14}  {:<12}  {:<8}  {:<16}  {:<16}  {}\n",
            v.id,
            v.prefix,
            v.tenant,
            status.as_str().unwrap_or("?"),
            when(v.last_used_at),
            when(Some(v.created_at)),
            v.name
        ));
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_attributes_parse_or_say_how() {
        let q = parse_quota("1000/day").unwrap();
        assert_eq!((q.requests, q.period), (1000, Period::Day));
        assert!(
            parse_quota("1000")
                .unwrap_err()
                .to_string()
                .contains("1000/day")
        );
        assert!(parse_quota("x/month").is_err());
        let a = parse_attributes(&["region=eu".into()]).unwrap().unwrap();
        assert_eq!(a["region"], "eu");
        assert!(parse_attributes(&["region".into()]).is_err());
        assert_eq!(parse_attributes(&[]).unwrap(), None);
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(table(&[]), "no keys");
    }
}
