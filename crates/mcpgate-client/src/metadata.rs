//! The two metadata documents a client reads: RFC 9728 protected-resource
//! metadata and RFC 8414 / OpenID authorization-server metadata. Unknown
//! members are kept, so a stored copy is the document as served.

use mcpgate_types::Issuer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ClientError;

/// RFC 9728 protected-resource metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (sent as RFC 8707 `resource`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Issuers of authorization servers for this resource, in preference order.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes this resource knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Everything else, as served.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// RFC 8414 (or OpenID Connect discovery) authorization-server metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthServerMetadata {
    /// The issuer identifier; equal, byte for byte, to the one metadata was fetched for.
    pub issuer: String,
    /// Where the browser goes to sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 7591 dynamic client registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// RFC 7009 token revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 device authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Scopes the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// PKCE methods; a client refuses a server that does not list `S256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Grant types the server supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Whether a client ID may be the URL of a client ID metadata document.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Everything else, as served.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AuthServerMetadata {
    /// The issuer as a type. Discovery checked it: an RFC 8414 issuer, or the
    /// origin of a 2025-03-26 server without metadata, which may be plain
    /// http on any host (the document's `issuer` stays the text as served).
    pub fn parsed_issuer(&self) -> Result<Issuer, ClientError> {
        Issuer::allowing_plain_http(&self.issuer)
            .map_err(|e| ClientError::Unsafe(format!("authorization server {e}")))
    }

    /// Whether the server lists this token-endpoint auth method. RFC 8414's
    /// default, when the member is absent, is `client_secret_basic`.
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(list) => list.iter().any(|m| m == method),
            None => method == "client_secret_basic",
        }
    }

    /// Whether PKCE with S256 is advertised.
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"))
    }
}
