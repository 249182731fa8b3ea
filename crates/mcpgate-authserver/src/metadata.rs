//! Authorization server metadata (RFC 8414) and OpenID discovery: one
//! document, served at every well-known form MCP clients try.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::Inner;
use crate::settings::RegistrationPolicy;

/// The metadata document.
pub(crate) fn document(inner: &Inner) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "issuer": inner.issuer,
        "authorization_endpoint": inner.url("/authorize"),
        "token_endpoint": inner.url("/token"),
        "jwks_uri": inner.url("/jwks.json"),
        "introspection_endpoint": inner.url("/introspect"),
        "revocation_endpoint": inner.url("/revoke"),
        "userinfo_endpoint": inner.url("/userinfo"),
        "device_authorization_endpoint": inner.url("/device_authorization"),
        "scopes_supported": inner.settings.scopes.keys().collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            crate::device::DEVICE_GRANT,
        ],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA", "RS256", "PS256", "ES384"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": inner.settings.cimd.enabled,
        "prompt_values_supported": ["none", "login", "consent"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": inner.keys.algorithms(),
        "claims_supported": ["sub", "preferred_username"],
        "resource_indicators_supported": true,
        "dpop_signing_alg_values_supported": mcpgate_dpop::ALGS,
    });
    if !inner.trusted.is_empty()
        && let Some(g) = doc["grant_types_supported"].as_array_mut()
    {
        g.push(crate::token::jwt_bearer::JWT_BEARER.into());
    }
    if inner.settings.registration.policy != RegistrationPolicy::Off {
        doc["registration_endpoint"] = inner.url("/register").into();
    }
    doc
}

/// Every well-known metadata path for this issuer.
pub(crate) fn paths(inner: &Inner) -> Vec<String> {
    let p = &inner.base_path;
    if p.is_empty() {
        return vec![
            "/.well-known/oauth-authorization-server".into(),
            "/.well-known/openid-configuration".into(),
        ];
    }
    vec![
        format!("/.well-known/oauth-authorization-server{p}"),
        format!("/.well-known/openid-configuration{p}"),
        format!("{p}/.well-known/openid-configuration"),
        format!("{p}/.well-known/oauth-authorization-server"),
    ]
}

/// `GET` a metadata path.
pub(crate) async fn get(State(inner): State<Arc<Inner>>) -> Response {
    Json(document(&inner)).into_response()
}

/// `GET /jwks.json`.
pub(crate) async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.keys.jwks()).into_response()
}
