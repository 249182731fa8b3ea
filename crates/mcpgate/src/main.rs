//! The `mcpgate` binary: parses the command line and the configuration, sets up
//! logging, wires the gateway, and exits with a message and a code on bad input.
//! It holds no protocol logic of its own.
//!
//! The path of `mcpgate serve` (`serve.rs`):
//!
//! ```text
//! cli::Cli::parse → cli::run → serve::run
//!   → config::load: TOML, MCPGATE_ variables, flags; preflight refusals
//!   → observability::init_logging (tracing, human or JSON, to stderr; spans to OTLP); fd_limit::raise
//!   → event_loops::EventLoops::start: one single-threaded runtime per core
//!     (`server.worker_threads`), the main thread's the first
//!   → wire the roles: authserver::start (the OAuth server, if enabled),
//!     auth::build (the guard's verifiers), vault_cmd::wire (per-user
//!     secrets), then mcpgate_gateway::Gateway with its upstreams
//!   → listener::spawn (connection cap, deadlines; each connection on one
//!     event loop) serving live::LiveApp,
//!     the router of the running configuration (reload::Running), until
//!     shutdown::signal; SIGHUP reloads (reload.rs), `mcpgate reload`
//!     sends it (reload_cmd.rs, pid_file.rs)
//! ```
//!
//! The other subcommands are one file each: administration of the store
//! (`keys`, `users`, `clients`, `resources`, `signing_keys`, `vault_cmd`,
//! their lists drawn by `table`), `init`, `demo` (the demo MCP server), and
//! the client side (`client_cmd`: login/call/token; `bridge_cmd`).

mod assertion_login;
mod audit_cmd;
mod audit_record;
mod auth;
mod authserver;
mod bridge_cmd;
mod cli;
mod client_cmd;
mod clients;
mod config;
mod demo;
mod event_loops;
mod fd_limit;
mod init;
mod keys;
mod listener;
mod live;
mod logging;
mod manual;
mod observability;
mod pid_file;
mod policy_cmd;
mod preflight;
mod quotas;
mod random;
mod reload;
mod reload_cmd;
mod resources;
mod serve;
mod shutdown;
mod signing_keys;
mod store_cmd;
mod table;
mod telemetry_config;
mod users;
mod vault_cmd;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc (the `mimalloc` feature, on by
/// default): see docs/BENCHMARKS.md, "Idle memory and the allocator".
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match runtime(cli.serves()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(cli::run(cli))
}

/// The async runtime the command runs on.
///
/// `serve` gets a current-thread runtime on the main thread: it is the first
/// of `serve`'s event loops, which start the others (`event_loops.rs`).
/// Every other command gets a multi-thread runtime, one worker per core.
/// Blocking work goes to the blocking pool (`spawn_blocking`) either way.
fn runtime(serve: bool) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if serve {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
