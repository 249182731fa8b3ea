//! `[upstream.tools]`: a member's tool rules as configured (a leaf: the
//! upstream's table holds them, the virtual server's naming reads them).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[upstream.tools]`: which of a member's tools a virtual server shows, and
/// under which names. Names here are the upstream's own. They apply where
/// the upstream is served as a member of a virtual server, not at its own
/// `/mcp/<upstream>` endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ToolRules {
    /// Globs: when set, only matching tools are shown and callable.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Globs: matching tools are hidden and cannot be called (wins over `allow`).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Upstream name → the name shown (before the prefix is added).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Upstream name → the description shown instead of the upstream's.
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
}
