//! The MCP transport's names and versions, shared by the client-facing fronts
//! and the HTTP upstream link.

/// The session header of Streamable HTTP (both directions).
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header of Streamable HTTP (both directions).
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";

/// Protocol versions the front accepts in `MCP-Protocol-Version`.
pub(crate) const SUPPORTED_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
/// The first stateless protocol version.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";
/// Assumed when a session client sends no version header (the spec's rule).
pub(crate) const DEFAULT_VERSION: &str = "2025-03-26";
/// The version of the legacy HTTP+SSE transport.
pub(crate) const LEGACY_SSE_VERSION: &str = "2024-11-05";

/// 2026-07-28: a routing header disagrees with the body.
pub(crate) const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability its `_meta` does not declare.
pub(crate) const MISSING_CAPABILITY: i64 = -32021;
/// 2026-07-28: the requested protocol version is not spoken here.
pub(crate) const UNSUPPORTED_VERSION: i64 = -32022;

/// The protocol version the gateway asks for when it initializes an upstream
/// session itself (shared children, stateless clients' upstream sessions).
pub(crate) const GATEWAY_PROTOCOL_VERSION: &str = "2025-11-25";
