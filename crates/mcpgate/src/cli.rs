//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Authentication and a streaming gateway in front of MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcpgate", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the configured upstreams (or the built-in demo) over HTTP.
    Serve(crate::serve::ServeArgs),
    /// Ask the running server to reload its configuration (SIGHUP).
    Reload(crate::reload_cmd::ReloadArgs),
    /// Check a configuration file and print every problem.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, env = "MCPGATE_CONFIG", default_value = "mcpgate.toml")]
        config: PathBuf,
        /// Also print the effective configuration, each value with its source
        /// (default, file, environment), secrets redacted.
        #[arg(long)]
        show: bool,
    },
    /// Write an annotated starter configuration.
    Init {
        /// Where to write it.
        #[arg(long, short, default_value = "mcpgate.toml")]
        config: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run the demo MCP server (stdio, or Streamable HTTP with --http).
    DemoServer {
        /// Serve Streamable HTTP at this address (path /mcp) instead of stdio.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Where the demo keeps its SQLite database.
        #[arg(long, env = "MCPGATE_DEMO_DATA_DIR", default_value = "./mcpgate-data")]
        data_dir: PathBuf,
        /// Environment variables whose presence health_check reports (never their values).
        #[arg(long = "credential", value_name = "ENV_VAR")]
        credentials: Vec<String>,
    },
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: crate::keys::KeysCommand,
    },
    /// Add, re-password and remove HTTP Basic users.
    Users {
        #[command(subcommand)]
        command: crate::users::UsersCommand,
    },
    /// Pre-register, list and remove OAuth clients of the built-in authorization server.
    Clients {
        #[command(subcommand)]
        command: crate::clients::ClientsCommand,
    },
    /// Register, list and remove resource servers the authorization server issues tokens for.
    Resources {
        #[command(subcommand)]
        command: crate::resources::ResourcesCommand,
    },
    /// List and rotate the authorization server's token signing keys.
    SigningKeys {
        #[command(subcommand)]
        command: crate::signing_keys::SigningKeysCommand,
    },
    /// Manage the per-user credential vault (master key rotation).
    Vault {
        #[command(subcommand)]
        command: crate::vault_cmd::VaultCommand,
    },
    /// Try the `[policy]` rules offline.
    Policy {
        #[command(subcommand)]
        command: crate::policy_cmd::PolicyCommand,
    },
    /// List, verify and prune the audit trail of security events.
    Audit {
        #[command(subcommand)]
        command: crate::audit_cmd::AuditCommand,
    },
    /// Bring the store's schema up to date (SQLite or PostgreSQL) and exit;
    /// `serve` does the same at start, under the same lock.
    Migrate {
        #[command(flatten)]
        store: crate::keys::StoreArgs,
    },
    /// Copy a whole store between SQLite and PostgreSQL, verified.
    Store {
        #[command(subcommand)]
        command: crate::store_cmd::StoreCommand,
    },
    #[command(flatten)]
    Client(crate::client_cmd::ClientCommand),
    /// Serve a remote MCP server as a local stdio server (for apps that speak only stdio).
    Bridge(crate::bridge_cmd::BridgeArgs),
    /// Print the config snippet that starts `mcpgate bridge` in Claude Desktop, Cursor or VS Code.
    Config(crate::bridge_cmd::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; view with `mcpgate man | man -l -`).
    Man,
}

impl Cli {
    /// Whether the command is `serve`, which runs on event loops of its own.
    pub(crate) fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

pub(crate) async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => crate::serve::run(args).await,
        Command::Reload(args) => crate::reload_cmd::run(args),
        Command::CheckConfig { config, show } => {
            match crate::config::show::load_and_print(&config, show).and_then(|c| {
                // The same checks `serve` runs (its refusals), plus what would make
                // its /readyz answer 503: a check must fail on those too.
                let mut p = crate::preflight::refusals(&c);
                p.extend(crate::preflight::readiness_problems(&c));
                if p.is_empty() {
                    Ok(c)
                } else {
                    Err(p
                        .into_iter()
                        .map(|x| format!("{}: {x}", config.display()))
                        .collect())
                }
            }) {
                Ok(c) => {
                    println!(
                        "{}: OK ({} upstream{})",
                        config.display(),
                        c.upstreams.len(),
                        if c.upstreams.len() == 1 { "" } else { "s" }
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    crate::config::eprint_problems(&problems, "", "");
                    ExitCode::from(2)
                }
            }
        }
        Command::Init { config, force } => crate::init::write(&config, force),
        Command::DemoServer {
            http,
            data_dir,
            credentials,
        } => crate::demo::run(http, data_dir, credentials).await,
        Command::Keys { command } => crate::keys::run(command).await,
        Command::Users { command } => crate::users::run(command).await,
        Command::Clients { command } => crate::clients::run(command).await,
        Command::Resources { command } => crate::resources::run(command).await,
        Command::SigningKeys { command } => crate::signing_keys::run(command).await,
        Command::Vault { command } => crate::vault_cmd::run(command).await,
        Command::Audit { command } => crate::audit_cmd::run(command).await,
        Command::Policy { command } => crate::policy_cmd::run(command),
        Command::Store { command } => crate::store_cmd::run(command).await,
        Command::Migrate { store } => crate::keys::exit(crate::keys::migrate(&store).await),
        Command::Client(command) => crate::client_cmd::run(command).await,
        Command::Bridge(args) => crate::bridge_cmd::run(args).await,
        Command::Config(args) => crate::bridge_cmd::config(args),
        Command::Completions { shell } => {
            crate::manual::completions(<Cli as clap::CommandFactory>::command(), shell)
        }
        Command::Man => crate::manual::man(<Cli as clap::CommandFactory>::command()),
    }
}
