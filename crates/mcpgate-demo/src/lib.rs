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

mod ask;
mod error;
mod http_server;
mod identity;
mod notes;
mod options;
mod progress;
mod prompts;
mod resources;
mod server;
mod stdio;
mod store;
mod tools;

pub use error::DemoError;
pub use http_server::serve_http;
pub use options::DemoOptions;
pub use stdio::serve_stdio;
