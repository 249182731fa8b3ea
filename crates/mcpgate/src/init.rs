//! `mcpgate init` and the quickstart banner.

use std::path::Path;
use std::process::ExitCode;

const STARTER: &str = r#"# mcpgate configuration. Reference: docs/CONFIGURATION.md
# Every key can also be set from the environment: MCPGATE_SERVER__LISTEN=127.0.0.1:9000

[server]
# Where to listen. Keep loopback unless a reverse proxy or TLS terminator sits in front.
listen = "127.0.0.1:8080"
# The URL clients use to reach this server (default: derived from listen).
# public_url = "https://mcp.example.com"
# Where the embedded SQLite database and generated secrets live.
data_dir = "./mcpgate-data"
# Browser origins allowed besides public_url's own, e.g. the MCP Inspector:
allowed_origins = []   # ["http://localhost:6274"]
# log_format = "human"        # or "json"
# request_timeout = "60s"     # first answer from an upstream; SSE streams reset it on every message
# session_idle_timeout = "30m"
# max_body_bytes = 4194304

[auth]
# "disabled" serves without authentication and is refused on non-loopback addresses.
# "required" (the default) and "optional" need credential verifiers (API keys, JWT…).
mode = "disabled"

[[upstream]]
name = "everything"            # served at /mcp/everything (and /mcp while it is the only one)
command = ["npx", "-y", "@modelcontextprotocol/server-everything"]
isolation = "session"          # one child per client session; "shared" = one child for all
# env = { API_KEY = "..." }    # extra environment for the child
# cwd = "/srv/mcp"
# max_children = 100

# An HTTP upstream:
# [[upstream]]
# name = "remote"
# url = "http://127.0.0.1:3001/mcp"
# transport = "streamable-http"   # or "sse"; default: detect
# headers = { "X-Api-Key" = "..." }
"#;

pub(crate) fn write(path: &Path, force: bool) -> ExitCode {
    if path.exists() && !force {
        eprintln!(
            "mcpgate: {} exists; pass --force to overwrite it",
            path.display()
        );
        return ExitCode::from(2);
    }
    match std::fs::write(path, STARTER) {
        Ok(()) => {
            println!(
                "wrote {}; check it with: mcpgate check-config --config {}",
                path.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpgate: cannot write {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

/// What `serve --demo` prints: where to point a client, and how.
pub(crate) fn demo_banner(base: &str) -> String {
    format!(
        r#"
  mcpgate demo is running: {base}/mcp

  MCP Inspector (web UI: choose "Streamable HTTP", URL {base}/mcp; or from the terminal):
    npx @modelcontextprotocol/inspector --cli {base}/mcp --transport http --method tools/list

  Claude Desktop (claude_desktop_config.json), through mcp-remote:
    {{ "mcpServers": {{ "mcpgate-demo": {{ "command": "npx", "args": ["-y", "mcp-remote", "{base}/mcp"] }} }} }}

  Cursor (~/.cursor/mcp.json):
    {{ "mcpServers": {{ "mcpgate-demo": {{ "url": "{base}/mcp" }} }} }}

  VS Code (.vscode/mcp.json):
    {{ "servers": {{ "mcpgate-demo": {{ "type": "http", "url": "{base}/mcp" }} }} }}

  Authentication is disabled in the demo (loopback only). Stop with Ctrl-C.
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn starter_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mcpgate.toml");
        std::fs::write(&p, super::STARTER).unwrap();
        let c = crate::config::load(Some(&p)).unwrap();
        assert_eq!(c.upstreams.len(), 1);
        assert!(crate::config::auth_problems(&c).is_empty());
    }
}
