//! `mcpgate demo-server`: the demo MCP server, over stdio or Streamable HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::LogFormat;

pub(crate) async fn run(
    http: Option<SocketAddr>,
    data_dir: PathBuf,
    credential_names: Vec<String>,
) -> ExitCode {
    // stdout is the MCP transport in stdio mode: logs go to stderr, and quietly,
    // because the gateway relays a child's stderr into its own log.
    crate::logging::init(LogFormat::Human, "warn");
    let opts = mcpgate_demo::DemoOptions {
        data_dir,
        credential_names,
    };
    let result = match http {
        None => mcpgate_demo::serve_stdio(opts).await,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let local = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                println!("mcpgate demo-server: listening on http://{local}/mcp");
                mcpgate_demo::serve_http(listener, opts, crate::shutdown::signal()).await
            }
            Err(e) => {
                eprintln!("mcpgate demo-server: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgate demo-server: {e:#}");
            ExitCode::from(1)
        }
    }
}
