//! RFC 8628 device authorization: show a code and a URL, poll the token
//! endpoint at the server's `interval`, slowing down when told to.

use std::time::Duration;

use serde::Deserialize;

use crate::error::ClientError;
use crate::metadata::AuthServerMetadata;
use crate::oauth::{ClientAuth, TokenResponse, post_form, token_request};

/// The device-code grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Deserialize)]
struct Authorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
}

/// Runs the device flow to its end (tokens, denial or expiry).
pub async fn run(
    http: &reqwest::Client,
    meta: &AuthServerMetadata,
    auth: ClientAuth<'_>,
    scope: Option<&str>,
    resource: &str,
) -> Result<TokenResponse, ClientError> {
    let endpoint = meta
        .device_authorization_endpoint
        .as_deref()
        .ok_or_else(|| {
            ClientError::Config(format!(
                "{} offers no device authorization (RFC 8628); sign in without --device",
                meta.issuer
            ))
        })?;
    let token_endpoint = meta
        .token_endpoint
        .as_deref()
        .ok_or_else(|| ClientError::Unsafe(format!("{} has no token_endpoint", meta.issuer)))?;
    let mut params = vec![("resource", resource)];
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        params.push(("scope", s));
    }
    let (status, body) = post_form(http, endpoint, auth, &params).await?;
    if !status.is_success() {
        let (error, description) = crate::error::oauth_error_fields(&body.0);
        return Err(match error.as_str() {
            "invalid_client" => ClientError::InvalidClient(description),
            _ => ClientError::OAuth { error, description },
        });
    }
    let a: Authorization = serde_json::from_slice(&body.0).map_err(|e| {
        ClientError::Http(format!(
            "the device authorization answer is not RFC 8628 JSON: {e}"
        ))
    })?;
    if !a.verification_uri.starts_with("https://") && !a.verification_uri.starts_with("http://") {
        return Err(ClientError::Unsafe(format!(
            "verification URI {:?} is not http(s)",
            a.verification_uri
        )));
    }
    eprintln!(
        "To sign in, visit {} and enter the code {}",
        a.verification_uri, a.user_code
    );
    if let Some(c) = &a.verification_uri_complete {
        eprintln!("(or open {c})");
    }
    let mut interval = a.interval.unwrap_or(5).max(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.expires_in.unwrap_or(600));
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::NeedsPerson(
                "the device code expired before anyone approved it; run the command again".into(),
            ));
        }
        let r = token_request(
            http,
            token_endpoint,
            auth,
            &[
                ("grant_type", GRANT_TYPE),
                ("device_code", &a.device_code),
                ("resource", resource),
            ],
        )
        .await;
        match r {
            Ok(t) => return Ok(t),
            Err(ClientError::OAuth { error, description }) => match error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += 5,
                "access_denied" => {
                    return Err(ClientError::Authorization("the sign-in was denied".into()));
                }
                "expired_token" => {
                    return Err(ClientError::NeedsPerson(
                        "the device code expired; run the command again".into(),
                    ));
                }
                _ => return Err(ClientError::OAuth { error, description }),
            },
            Err(e) => return Err(e),
        }
    }
}
