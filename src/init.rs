//! `tinybird-bff init`: the three files a team needs to point the BFF at its own workspace.
//!
//! A config for one workspace (the example config, demo/config.toml, has two regions and the
//! demo's env names, which is not where a new team starts), a users file with one user whose
//! password is printed once, and a `.env` template with the one secret to fill in. Together
//! they pass `tinybird-bff check` as soon as the admin token is in `.env`: tests/api/cli.rs
//! runs exactly that.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::Rng;

/// What `init` writes, from its command-line options.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The folder to write into (created if missing).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Your workspace's API host (its region): https://api.tinybird.co,
    /// https://api.us-east.aws.tinybird.co, ...
    #[arg(long, default_value = "https://api.tinybird.co")]
    pub host: String,
    /// The pipes the first grant gives, comma-separated: your workspace's endpoints
    /// [default: the demo project's, which `cd demo && tb deploy` creates].
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "top_products,sales_by_day,recent_orders"
    )]
    pub pipes: Vec<String>,
    /// The first user's login.
    #[arg(long, default_value = "alice")]
    pub user: String,
    /// The first user's tenant: the `org_id` their token is pinned to.
    #[arg(long, default_value = "acme")]
    pub tenant: String,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// The config file `init` writes.
pub const CONFIG_FILE: &str = "tinybird-bff.toml";
/// The users file `init` writes.
pub const USERS_FILE: &str = "users.toml";
/// The secrets template `init` writes.
pub const ENV_FILE: &str = ".env";

/// Writes the config, the users file and the `.env` template; prints what to do next and
/// the first user's password (shown once: only its hash is written).
pub fn init(args: &InitArgs) -> anyhow::Result<()> {
    check_names(args)?;
    let password = password();
    let [config_path, users_path, env_path] =
        [CONFIG_FILE, USERS_FILE, ENV_FILE].map(|name| args.dir.join(name));
    let files = [
        (config_path, config(args)),
        (
            users_path,
            users(args, &crate::auth::users::hash_password(&password)),
        ),
        (env_path, ENV.to_owned()),
    ];
    write_all(&files, args.force)?;
    let [(config, _), _, (env, _)] = &files;
    println!("wrote {}", names(&files));
    println!(
        "first user: {} / {password} (shown once: {USERS_FILE} keeps only its hash)",
        args.user
    );
    println!("next:");
    println!(
        "  1. paste your workspace's admin token after TINYBIRD_SIGNING_KEY= in {}",
        env.display()
    );
    println!("  2. set -a; . {}; set +a", env.display());
    println!("  3. tinybird-bff check --config {}", config.display());
    println!("  4. tinybird-bff serve --config {}", config.display());
    Ok(())
}

/// Refuses values that would make the files say something else than meant.
fn check_names(args: &InitArgs) -> anyhow::Result<()> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    };
    for (what, value) in [("--user", &args.user), ("--tenant", &args.tenant)] {
        if !plain(value) {
            bail!("{what} {value:?}: use letters, digits and - _ . @ only");
        }
    }
    if let Some(pipe) = args.pipes.iter().find(|p| !plain(p)) {
        bail!("--pipes: {pipe:?} is not a pipe name");
    }
    let host = reqwest::Url::parse(&args.host).ok();
    if !host.is_some_and(|u| u.scheme() == "https" || u.scheme() == "http") {
        bail!(
            "--host {:?}: write your workspace's API host, e.g. https://api.tinybird.co",
            args.host
        );
    }
    Ok(())
}

fn write_all(files: &[(PathBuf, String)], force: bool) -> anyhow::Result<()> {
    if !force && let Some((path, _)) = files.iter().find(|(p, _)| p.exists()) {
        bail!(
            "{} already exists: nothing was written (--force overwrites {})",
            path.display(),
            names(files)
        );
    }
    if let Some(dir) = files[0].0.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (path, text) in files {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The secrets file is for its owner alone.
    restrict(&files[2].0)?;
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn names(files: &[(PathBuf, String)]) -> String {
    files
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// 20 random letters and digits: about 119 bits.
fn password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

fn config(args: &InitArgs) -> String {
    let pipes = args
        .pipes
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    CONFIG
        .replace("{host}", &args.host)
        .replace("{pipes}", &pipes)
}

fn users(args: &InitArgs, hash: &str) -> String {
    USERS
        .replace("{user}", &args.user)
        .replace("{tenant}", &args.tenant)
        .replace("{hash}", hash)
}

const CONFIG: &str = r#"# tinybird-bff for one workspace, written by `tinybird-bff init`. Every key is explained in
# docs/configuration.md; demo/config.toml shows every key with its default.
# Check it with `tinybird-bff check --config tinybird-bff.toml` after each change.

listen = "127.0.0.1:3000"
public_url = "http://127.0.0.1:3000"    # the URL users reach the BFF at; https makes the cookie Secure

[tinybird]
host = "{host}"                          # your workspace's region, e.g. https://api.us-east.aws.tinybird.co
signing_key_env = "TINYBIRD_SIGNING_KEY" # the workspace admin token, from the environment (.env), never this file
# workspace_id = "..."                   # read from the admin token; set it to be explicit

[token]
ttl = "10m"                              # short: expiry is the only revocation a Tinybird JWT has

[session]
store = "file"                           # sessions survive restarts; "redis" for several instances
dir = "data/sessions"

[users]
file = "users.toml"

# Every user reads these pipes, pinned to their own tenant: Tinybird applies org_id from the
# token whatever the URL says. Name your endpoints and the parameter your pipes filter on.
[[grants]]
name = "tenant-dashboards"
pipes = [{pipes}]
[grants.match]
roles = ["viewer"]
[grants.fixed_params]
org_id = "{{ user.tenant }}"
"#;

const USERS: &str = r#"# Users who log in with a password, written by `tinybird-bff init`. Add one per person:
# `echo -n 'their password' | tinybird-bff hash-password` prints the hash. Or log users in
# with your identity provider instead (docs/identity.md).

[[users]]
id = "{user}"
password_hash = "{hash}"
tenant = "{tenant}"
roles = ["viewer"]
"#;

const ENV: &str = r#"# Secrets for tinybird-bff, written by `tinybird-bff init`. Never commit this file.
# Load it before `check` or `serve`:  set -a; . ./.env; set +a
# (systemd: EnvironmentFile=; podman/docker: --env-file .env).

# Your workspace's admin token (Tinybird UI: Tokens, "Workspace admin token"; it starts
# with "p."). The BFF signs each user's JWT with it; it never reaches a browser.
TINYBIRD_SIGNING_KEY=
"#;
