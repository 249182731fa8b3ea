//! Streamable HTTP: the demo at `http://<listener>/mcp`.

use std::{future::Future, sync::Arc, time::Duration};

use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::{DemoError, identity, options::DemoOptions, server::DemoServer, store::Store};

/// The path the MCP endpoint is served at.
const MCP_PATH: &str = "/mcp";
/// How long open streams get to finish after shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves MCP over Streamable HTTP at path `/mcp` on `listener` until
/// `shutdown` completes.
///
/// The caller is named per request by the `x-mcpgate-subject` header, else
/// by `MCPGATE_SUBJECT`, else `anonymous`. On a loopback listener only
/// loopback `Host` headers are accepted (a guard against DNS rebinding);
/// on any other address the `Host` check is off, as the gateway in front
/// may use any name for the demo.
///
/// # Errors
/// When the data directory or database cannot be opened, `MCPGATE_SUBJECT`
/// is invalid, or the listener fails.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let process_subject = identity::subject_from_env()?;
    let address = listener
        .local_addr()
        .map_err(|e| DemoError::start("the listener has no address", e))?;
    let store = Store::open(&opts.data_dir).await?;
    let prototype = DemoServer::new(store.clone(), opts.credential_names, process_subject);

    let stop = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        // Ends every session (and its open SSE streams) when we shut down.
        .with_cancellation_token(stop.child_token());
    if !address.ip().is_loopback() {
        tracing::warn!(
            %address,
            "demo MCP server listens beyond loopback: it trusts x-mcpgate-subject, so keep it \
             reachable only by mcpgate"
        );
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(prototype.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().route_service(MCP_PATH, service);

    tracing::info!(
        url = %format!("http://{address}{MCP_PATH}"),
        data_dir = %opts.data_dir.display(),
        "demo MCP server listening"
    );
    let signal = stop.clone();
    // Without TCP_NODELAY an answer written in pieces (SSE) waits ~40 ms on Nagle.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        signal.cancel();
    });
    let result = tokio::select! {
        result = serve => result.map_err(|e| DemoError::start("the listener failed", e)),
        () = async {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("demo MCP server: connections still open after shutdown; closing them");
            Ok(())
        }
    };
    store.close().await;
    tracing::info!("demo MCP server stopped");
    result
}
