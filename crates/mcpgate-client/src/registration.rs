//! How this client is known to an authorization server: pre-registered, a
//! client ID metadata document (CIMD), or dynamic registration (RFC 7591).
//! Registrations belong to one issuer and are never used with another.

use mcpgate_types::{ClientId, Issuer};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ClientError;
use crate::metadata::AuthServerMetadata;

/// Where a client registration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSource {
    /// `--client-id` or a config file.
    Preregistered,
    /// A client ID metadata document URL.
    Cimd,
    /// RFC 7591 dynamic registration.
    Dynamic,
}

/// A client identity at one authorization server.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientRegistration {
    /// The authorization server this registration belongs to.
    #[serde(deserialize_with = "stored_issuer")]
    pub issuer: Issuer,
    /// The client ID.
    pub client_id: ClientId,
    /// The client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    /// The redirect URIs registered.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where it came from.
    pub source: RegistrationSource,
    /// Grant types registered (empty: unknown, e.g. pre-registered).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// RFC 7592: where this registration can be read, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
    /// RFC 7592: the bearer token for that URI (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
}

impl std::fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("source", &self.source)
            .field("registration_client_uri", &self.registration_client_uri)
            .field(
                "registration_access_token",
                &self.registration_access_token.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

/// An issuer as this client stores it (the text it was given, so files
/// written before it was typed read the same): an RFC 8414 issuer, or a
/// 2025-03-26 server's origin, which may be plain http (see
/// [`crate::metadata::AuthServerMetadata::parsed_issuer`]).
pub(crate) fn stored_issuer<'de, D: Deserializer<'de>>(d: D) -> Result<Issuer, D::Error> {
    let s = String::deserialize(d)?;
    Issuer::allowing_plain_http(&s).map_err(serde::de::Error::custom)
}

/// Picks the token-endpoint auth method for a client with (or without) a
/// secret or a private key, among those the server supports.
pub fn choose_auth_method(
    meta: &AuthServerMetadata,
    requested: Option<&str>,
    has_secret: bool,
    has_private_key: bool,
) -> Result<String, ClientError> {
    if let Some(m) = requested {
        let known = [
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ];
        if !known.contains(&m) {
            return Err(ClientError::Config(format!(
                "unknown token endpoint auth method {m:?}; use one of {}",
                known.join(", ")
            )));
        }
        if !meta.supports_auth_method(m) {
            return Err(ClientError::Config(format!(
                "{} does not support the token endpoint auth method {m} (it lists {:?})",
                meta.issuer,
                meta.token_endpoint_auth_methods_supported
                    .as_deref()
                    .unwrap_or_default()
            )));
        }
        return Ok(m.to_owned());
    }
    let order: &[&str] = if has_private_key {
        &["private_key_jwt"]
    } else if has_secret {
        &["client_secret_basic", "client_secret_post"]
    } else {
        &["none"]
    };
    order
        .iter()
        .find(|m| meta.supports_auth_method(m))
        .map(|m| (*m).to_owned())
        .ok_or_else(|| {
            ClientError::Config(format!(
                "{} supports none of the token endpoint auth methods {order:?} this client could use \
                 (it lists {:?})",
                meta.issuer,
                meta.token_endpoint_auth_methods_supported
                    .as_deref()
                    .unwrap_or_default()
            ))
        })
}

/// What a dynamic registration asks for.
#[derive(Debug, Clone)]
pub struct DynamicRequest<'a> {
    /// Redirect URIs (loopback).
    pub redirect_uris: Vec<String>,
    /// Grant types to ask for.
    pub grant_types: Vec<&'a str>,
    /// Token endpoint auth method to ask for.
    pub token_endpoint_auth_method: &'a str,
    /// Scopes to ask for, if any.
    pub scope: Option<String>,
    /// Name shown on consent pages.
    pub client_name: &'a str,
}

/// Registers a native client (RFC 7591, `application_type: native`).
pub async fn register_dynamic(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    req: &DynamicRequest<'_>,
) -> Result<ClientRegistration, ClientError> {
    let Some(endpoint) = &meta.registration_endpoint else {
        return Err(ClientError::Registration(format!(
            "{} offers no dynamic client registration",
            meta.issuer
        )));
    };
    let mut body = serde_json::json!({
        "client_name": req.client_name,
        "application_type": "native",
        "redirect_uris": req.redirect_uris,
        "grant_types": req.grant_types,
        "response_types": if req.grant_types.contains(&"authorization_code") { vec!["code"] } else { vec![] },
        "token_endpoint_auth_method": req.token_endpoint_auth_method,
    });
    if let (Some(scope), Some(obj)) = (&req.scope, body.as_object_mut()) {
        obj.insert("scope".into(), scope.clone().into());
    }
    let resp = http
        .post(endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| ClientError::http(&format!("registering at {endpoint}"), e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::http("reading the registration response", e))?;
    if !status.is_success() {
        let (error, description) = crate::error::oauth_error_fields(&bytes);
        return Err(ClientError::Registration(format!(
            "dynamic registration at {endpoint} failed with {status}: {error}{description}"
        )));
    }
    #[derive(Deserialize)]
    struct Answer {
        client_id: ClientId,
        #[serde(default)]
        client_secret: Option<String>,
        #[serde(default)]
        token_endpoint_auth_method: Option<String>,
        #[serde(default)]
        redirect_uris: Option<Vec<String>>,
        #[serde(default)]
        registration_client_uri: Option<String>,
        #[serde(default)]
        registration_access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| {
        ClientError::Registration(format!("registration response is not RFC 7591 JSON: {e}"))
    })?;
    Ok(ClientRegistration {
        issuer: meta.parsed_issuer()?,
        client_id: answer.client_id,
        client_secret: answer.client_secret,
        token_endpoint_auth_method: answer
            .token_endpoint_auth_method
            .unwrap_or_else(|| req.token_endpoint_auth_method.to_owned()),
        redirect_uris: answer
            .redirect_uris
            .unwrap_or_else(|| req.redirect_uris.clone()),
        source: RegistrationSource::Dynamic,
        grant_types: req.grant_types.iter().map(|g| (*g).to_owned()).collect(),
        registration_client_uri: answer.registration_client_uri,
        registration_access_token: answer.registration_access_token,
    })
}

/// Whether the server still knows a dynamically registered client, asked
/// through RFC 7592 (`GET registration_client_uri` with its token): `false`
/// on 401, 403 or 404; `true` when it answers 2xx, and also when it cannot
/// tell (no RFC 7592 data, other statuses, network errors), so that only a
/// definite "forgotten" makes the client register again.
///
/// Why ask before a browser sign-in: a server that forgot the client shows
/// the person an error page, and the loopback callback would never arrive.
pub async fn still_registered(http: &reqwest::Client, reg: &ClientRegistration) -> bool {
    let (Some(uri), Some(token)) = (&reg.registration_client_uri, &reg.registration_access_token)
    else {
        return true;
    };
    match http.get(uri).bearer_auth(token).send().await {
        Ok(r) => !matches!(r.status().as_u16(), 401 | 403 | 404),
        Err(e) => {
            tracing::debug!(error = %e, "could not check the client registration");
            true
        }
    }
}
