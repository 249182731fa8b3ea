//! What a virtual server says of itself, the same to every front.

use super::naming::VirtualServer;

/// What a virtual server says of itself at `initialize`.
pub(super) fn initialize_result(server: &VirtualServer, version: &str) -> serde_json::Value {
    serde_json::json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "listChanged": true, "subscribe": true },
            "completions": {},
            "logging": {},
        },
        "serverInfo": server_info(server),
        "instructions": instructions(server),
    })
}

pub(super) fn server_info(server: &VirtualServer) -> serde_json::Value {
    serde_json::json!({
        "name": format!("mcpgate virtual server {}", server.name),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

pub(super) fn instructions(server: &VirtualServer) -> String {
    format!(
        "This server combines the MCP servers {}.",
        server
            .members
            .iter()
            .map(|m| &*m.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}
