//! A small MCP server with per-user tools, the upstream behind
//! `mcpgate serve --demo`, the quickstart and many tests.
//!
//! It serves MCP over stdio ([`serve_stdio`]) or Streamable HTTP at `/mcp`
//! ([`serve_http`]), with tools that exercise what a gateway must relay:
//! per-user state (`whoami`, `create_secure_note`, `list_secure_notes`,
//! `get_api_usage`), credential presence (`health_check`), progress and
//! cancellation (`slow_count`), elicitation (`confirm_action`), sampling
//! (`summarize`) and a trivial `echo` for benchmarks; the resources
//! `user://profile` and `user://notes/{id}`; and the prompt `note_summary`.
//! Notes and usage persist in `<data_dir>/demo.sqlite`.
//!
//! What it must never do:
//! - authenticate anyone. It believes the `x-mcpgate-subject` header (HTTP)
//!   or `MCPGATE_SUBJECT` (stdio), so it must only be reachable through
//!   mcpgate or on loopback;
//! - show one user another user's notes or usage;
//! - reveal a credential's value (`health_check` says only configured/missing);
//! - write to stdout other than the stdio transport's JSON-RPC; its logs go
//!   through `tracing`, which the binary sends to stderr;
//! - panic on anything a client sends.

#![deny(clippy::print_stdout, clippy::unwrap_used)]

use std::path::PathBuf;

use anyhow::Context as _;
use rmcp::{RoleServer, ServiceExt as _, transport::IntoTransport};

mod ask;
mod error;
mod http_server;
mod identity;
mod notes;
mod progress;
mod prompts;
mod resources;
mod server;
mod store;
mod tools;

pub use http_server::serve_http;

/// What the demo server needs to start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where `demo.sqlite` lives; created if missing.
    pub data_dir: PathBuf,
    /// Names of the environment variables `health_check` reports on
    /// (as configured or missing, never their values).
    pub credential_names: Vec<String>,
}

/// Serves MCP on stdin/stdout until the client closes stdin.
///
/// The caller is named by `MCPGATE_SUBJECT` (one process per user), else
/// `anonymous`.
///
/// # Errors
/// When the data directory or database cannot be opened, `MCPGATE_SUBJECT`
/// is invalid, or the client does not complete the MCP handshake.
pub async fn serve_stdio(opts: DemoOptions) -> anyhow::Result<()> {
    let process_subject = identity::subject_from_env()?;
    tracing::info!(data_dir = %opts.data_dir.display(), "demo MCP server on stdio");
    serve_stream(rmcp::transport::stdio(), opts, process_subject).await
}

/// Serves one MCP session on a byte stream until the peer closes it.
async fn serve_stream<T, E, A>(
    transport: T,
    opts: DemoOptions,
    process_subject: Option<identity::Subject>,
) -> anyhow::Result<()>
where
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let store = store::Store::open(&opts.data_dir).await?;
    let server = server::DemoServer::new(store.clone(), opts.credential_names, process_subject);
    let result = async {
        let running = server
            .serve(transport)
            .await
            .context("the MCP client did not complete the initialize handshake")?;
        let reason = running.waiting().await.context("the MCP session failed")?;
        tracing::info!(?reason, "MCP session ended");
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests;
