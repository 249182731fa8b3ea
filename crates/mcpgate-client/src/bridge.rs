//! `mcpgate bridge`: a local stdio MCP server that relays to a remote one.
