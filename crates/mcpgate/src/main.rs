//! The `mcpgate` binary: parses the command line and the configuration, sets up
//! logging, wires the gateway, and exits with a message and a code on bad input.
//! It holds no protocol logic of its own.

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
mod fd_limit;
mod init;
mod keys;
mod listener;
mod logging;
mod observability;
mod preflight;
mod resources;
mod serve;
mod signing_keys;
mod telemetry_config;
mod users;
mod vault_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcpgate: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(cli::run(cli))
}
