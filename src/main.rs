//! The `tinybird-bff` command: thin, parses the CLI and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: per-thread free lists make the many short-lived
/// allocations of a request cheaper, and it hands freed memory back to the OS instead of
/// keeping a heap per thread (see docs/benchmarks.md for the measured difference).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A backend-for-frontend that mints short-lived, row-filtered Tinybird JWTs for your app's users.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The offline demo (the default): the BFF and a local Tinybird-compatible endpoint.
    Demo {
        /// BFF address [default: 127.0.0.1:3000, or a free port if taken].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Local endpoint address [default: 127.0.0.1:7181, or a free port if taken].
        #[arg(long)]
        local_listen: Option<SocketAddr>,
        /// Minted token lifetime in seconds [default: 600].
        #[arg(long)]
        token_ttl: Option<u64>,
    },
    /// Run the BFF with a config file.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print every problem with its key and fix.
    Check {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a token for a user without starting a server.
    Mint {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The user id (as in the users file).
        #[arg(long, short)]
        user: String,
        /// Print the decoded claims and the grant behind each scope instead of the token.
        #[arg(long)]
        explain: bool,
    },
    /// Print an argon2id hash of a password read from standard input, for the users file.
    HashPassword,
    /// Run the Tinybird-compatible local endpoint on its own.
    Local(tinybird_bff::cli::LocalArgs),
    /// Write a config for one workspace, a users file and a .env template to start from.
    Init(tinybird_bff::init::InitArgs),
    /// Manage tenant API keys: create, list, revoke, roll (docs/api-keys.md).
    Keys(tinybird_bff::keys_cli::KeysArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tinybird_bff::cli::init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        use tinybird_bff::cli;
        match cli.command.unwrap_or(Command::Demo {
            listen: None,
            local_listen: None,
            token_ttl: None,
        }) {
            Command::Demo {
                listen,
                local_listen,
                token_ttl,
            } => {
                let options = tinybird_bff::demo::DemoOptions {
                    listen,
                    local_listen,
                    token_ttl: token_ttl.map(std::time::Duration::from_secs),
                };
                tinybird_bff::demo::run(options).await
            }
            Command::Serve { config } => cli::serve(&config).await,
            Command::Check { config } => cli::check(&config).await,
            Command::Mint {
                config,
                user,
                explain,
            } => cli::mint(&config, &user, explain),
            Command::HashPassword => cli::hash_password(),
            Command::Local(args) => cli::local(args).await,
            Command::Init(args) => tinybird_bff::init::init(&args),
            Command::Keys(args) => tinybird_bff::keys_cli::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
