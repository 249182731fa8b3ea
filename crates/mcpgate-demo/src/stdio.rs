//! MCP over stdin/stdout: one session per process, for a client (or the
//! gateway) that starts the demo as a child.

use rmcp::{RoleServer, ServiceExt as _, transport::IntoTransport};

use crate::{DemoError, DemoOptions, identity, server, store};

/// Serves MCP on stdin/stdout until the client closes stdin.
///
/// The caller is named by `MCPGATE_SUBJECT` (one process per user), else
/// `anonymous`.
///
/// # Errors
/// When the data directory or database cannot be opened, `MCPGATE_SUBJECT`
/// is invalid, or the client does not complete the MCP handshake.
pub async fn serve_stdio(opts: DemoOptions) -> Result<(), DemoError> {
    let process_subject = identity::subject_from_env()?;
    tracing::info!(data_dir = %opts.data_dir.display(), "demo MCP server on stdio");
    // Started by an MCP client, stdin and stdout are pipes: read and written
    // on the I/O reactor, not handed to a blocking thread per read and write
    // as `tokio::io::stdin()` does. Anything else (a terminal, a file) falls
    // back to those.
    serve_stream(rmcp::transport::stdio_pipes(), opts, process_subject).await
}

/// Serves one MCP session on a byte stream until the peer closes it.
async fn serve_stream<T, E, A>(
    transport: T,
    opts: DemoOptions,
    process_subject: Option<identity::Subject>,
) -> Result<(), DemoError>
where
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let store = store::Store::open(&opts.data_dir).await?;
    let server = server::DemoServer::new(store.clone(), opts.credential_names, process_subject);
    let result = async {
        let running = server.serve(transport).await.map_err(|e| {
            DemoError::start(
                "the MCP client did not complete the initialize handshake",
                e,
            )
        })?;
        let reason = running
            .waiting()
            .await
            .map_err(|e| DemoError::start("the MCP session failed", e))?;
        tracing::info!(?reason, "MCP session ended");
        Ok::<(), DemoError>(())
    }
    .await;
    store.close().await;
    result
}

#[cfg(test)]
mod tests;
