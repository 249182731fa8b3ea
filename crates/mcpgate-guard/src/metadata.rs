//! RFC 9728 protected-resource metadata, and what counts as "the same resource".

use mcpgate_types::{Issuer, ResourceUri};
use serde::Serialize;

/// The metadata document of one protected MCP endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ProtectedResource {
    /// The resource identifier: the endpoint's URL, in canonical form.
    pub resource: ResourceUri,
    /// Authorization servers that issue tokens for it (at least one): their
    /// RFC 8414 issuers, from which a client finds their metadata.
    pub authorization_servers: Vec<Issuer>,
    /// Scopes a client may ask for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Only the Authorization header (RFC 6750 §2.1).
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// DPoP proof algorithms taken (RFC 9449 §5.1); empty where DPoP is off.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether only DPoP-bound access tokens are taken (RFC 9449 §5.1).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
}

impl ProtectedResource {
    /// Metadata for `resource`.
    pub fn new(
        resource: ResourceUri,
        authorization_servers: Vec<Issuer>,
        scopes: Vec<String>,
    ) -> Self {
        ProtectedResource {
            resource,
            authorization_servers,
            scopes_supported: scopes,
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
        }
    }

    /// Says what the resource takes of DPoP.
    pub fn with_dpop(mut self, mode: crate::dpop_mode::DpopMode) -> Self {
        if mode != crate::dpop_mode::DpopMode::Off {
            self.dpop_signing_alg_values_supported =
                mcpgate_dpop::ALGS.iter().map(|a| (*a).to_owned()).collect();
        }
        self.dpop_bound_access_tokens_required = mode == crate::dpop_mode::DpopMode::Required;
        self
    }

    /// Where clients look for it: the path-inserted well-known URL
    /// (`/.well-known/oauth-protected-resource/public/mcp`) and, for older
    /// clients, the root one.
    pub fn well_known_paths(resource: &url::Url) -> (String, String) {
        let path = resource.path().trim_end_matches('/');
        (
            format!("/.well-known/oauth-protected-resource{path}"),
            "/.well-known/oauth-protected-resource".to_owned(),
        )
    }

    /// The absolute URL of the path-inserted metadata document.
    pub fn metadata_url(resource: &url::Url) -> String {
        let (path, _) = Self::well_known_paths(resource);
        let mut u = resource.clone();
        u.set_path(&path);
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }
}

/// A resource URL in the form compared for audience checks: scheme and host
/// lower-case (the url crate does that), default port dropped, no trailing slash.
pub fn canonical(u: &url::Url) -> String {
    let s = u.as_str();
    s.strip_suffix('/').unwrap_or(s).to_owned()
}

/// Whether two resource identifiers name the same resource (`X`, `X/`, and an
/// upper-case scheme or host are the same).
pub fn same_resource(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => canonical(&a) == canonical(&b),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_compare_loosely_and_metadata_paths_are_inserted() {
        assert!(same_resource(
            "https://H.example/mcp",
            "https://h.example/mcp/"
        ));
        assert!(same_resource(
            "HTTPS://h.example:443/mcp",
            "https://h.example/mcp"
        ));
        assert!(!same_resource(
            "https://h.example/mcp",
            "https://h.example/other"
        ));
        let r = url::Url::parse("https://h.example/public/mcp").unwrap();
        assert_eq!(
            ProtectedResource::metadata_url(&r),
            "https://h.example/.well-known/oauth-protected-resource/public/mcp"
        );
        assert_eq!(
            ProtectedResource::well_known_paths(&r).1,
            "/.well-known/oauth-protected-resource"
        );
    }
}
