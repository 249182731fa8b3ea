//! Whether a resource takes DPoP-bound tokens: a leaf, read by the
//! challenge, the metadata and the DPoP checks alike.

use serde::{Deserialize, Serialize};

/// Whether a resource takes DPoP-bound tokens (per upstream in the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// Only Bearer; a DPoP-bound token is refused (it cannot be checked).
    Off,
    /// Bearer, and DPoP-bound tokens with their proof.
    #[default]
    Allowed,
    /// Only DPoP-bound access tokens with their proof. API keys and Basic
    /// users are not access tokens and pass as configured.
    Required,
}

impl DpopMode {
    /// As written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopMode::Off => "off",
            DpopMode::Allowed => "allowed",
            DpopMode::Required => "required",
        }
    }
}
