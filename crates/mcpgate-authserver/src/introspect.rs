//! `/introspect` (RFC 7662) and `/userinfo`.
//!
//! Introspection tells the details of an active token only to whom it
//! concerns (RFC 7662 §4): a registered resource server presenting its own
//! credentials, about tokens issued for it; or the client the token was
//! issued to. Any other authenticated client learns `{"active": false}`, so
//! that one client cannot read another's tokens (subject, scopes, audience).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::{Credential, Verifier as _, same_resource};
use mcpgate_store::oauth::digest_hex;

use crate::error::{ErrorCode, OAuthError};
use crate::resource_servers::{self, ResourceServer};
use crate::respond::no_store;
use crate::verifier::AccessTokenVerifier;
use crate::{Inner, client_auth, unix};

/// `POST /introspect`.
pub(crate) async fn post(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (headers, params) = match client_auth::read_form(req, &inner).await {
        Ok(form) => form,
        Err(r) => return r,
    };
    let result = async {
        let caller = match resource_servers::authenticate(&inner, &headers, &params).await? {
            Some(rs) => Caller::Resource(rs),
            None => {
                let client = client_auth::authenticate(&inner, &headers, &params).await?;
                if !client.confidential {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidClient,
                        "introspection needs client authentication",
                    ));
                }
                Caller::Client(client.client.id.into())
            }
        };
        let token = params.require("token")?;
        Ok(Json(caller.filter(introspect(&inner, token).await?)))
    }
    .await;
    no_store(match result {
        Ok(j) => j.into_response(),
        Err(e) => e.into_response(),
    })
}

/// Who asks `/introspect`.
enum Caller {
    /// A registered resource server, with its credentials.
    Resource(ResourceServer),
    /// An OAuth client (confidential).
    Client(String),
}

impl Caller {
    /// The answer this caller may see: an active token's details only when
    /// the token is for this resource server, or was issued to this client.
    fn filter(&self, answer: serde_json::Value) -> serde_json::Value {
        if answer["active"] != true {
            return answer;
        }
        let (allowed, who) = match self {
            Caller::Resource(rs) => {
                let aud = match &answer["aud"] {
                    serde_json::Value::String(a) => vec![a.as_str()],
                    serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
                    _ => Vec::new(),
                };
                (
                    aud.iter().any(|a| same_resource(a, &rs.resource)),
                    format!("resource server {} ({})", rs.client_id, rs.resource),
                )
            }
            Caller::Client(id) => (
                answer["client_id"].as_str() == Some(id.as_str()),
                format!("client {id}"),
            ),
        };
        if allowed {
            return answer;
        }
        tracing::info!(
            caller = %who,
            token_client = answer["client_id"].as_str().unwrap_or("-"),
            token_audience = %answer["aud"],
            "introspection answered active=false: the token is neither for this resource server nor issued to this client"
        );
        serde_json::json!({ "active": false })
    }
}

async fn introspect(inner: &Arc<Inner>, token: &str) -> Result<serde_json::Value, OAuthError> {
    let inactive = serde_json::json!({ "active": false });
    let cred = Credential::Bearer(token.to_owned());
    let v = AccessTokenVerifier::new(inner.clone());
    if v.accepts(&cred) {
        return Ok(match v.verify(&cred).await {
            Ok(ok) => {
                let mut claims = serde_json::Value::Object(ok.principal().claims().clone());
                claims["active"] = true.into();
                // RFC 9449 §6.2: a bound token is introspected with its `cnf`.
                claims["token_type"] = if claims.get("cnf").is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                }
                .into();
                claims["username"] = ok.principal().subject().as_str().into();
                claims
            }
            Err(_) => inactive,
        });
    }
    let Some(row) = inner
        .store
        .find_refresh(&digest_hex(token))
        .await
        .map_err(OAuthError::store)?
    else {
        return Ok(inactive);
    };
    let now = std::time::SystemTime::now();
    let grant = inner
        .store
        .find_grant(&row.grant_id)
        .await
        .map_err(OAuthError::store)?;
    match grant {
        Some(g) if g.is_active(now) && row.expires_at > now && row.rotated_at.is_none() => {
            Ok(serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": row.scopes.to_string(),
                "client_id": g.client_id,
                "sub": g.subject,
                "username": g.subject,
                "aud": g.resource,
                "iss": inner.issuer,
                "exp": unix(row.expires_at),
                "iat": unix(row.created_at),
            }))
        }
        _ => Ok(inactive),
    }
}

/// `GET|POST /userinfo` with an access token.
pub(crate) async fn userinfo(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = |why: &str| {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({ "error": "invalid_token", "error_description": why })),
        )
            .into_response();
        if let Ok(v) = "Bearer error=\"invalid_token\"".parse() {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(token) = token else {
        return unauthorized("send the access token as Authorization: Bearer");
    };
    let cred = Credential::Bearer(token.to_owned());
    let v = AccessTokenVerifier::new(inner.clone());
    // Userinfo serves tokens for any of this server's audiences.
    match v.verify(&cred).await {
        Ok(ok) => {
            let subject = ok.principal().subject().as_str();
            let mut body = serde_json::json!({ "sub": subject, "preferred_username": subject });
            if let Some(email) = crate::federation::user_email(&inner, subject).await {
                body["email"] = email.into();
                body["email_verified"] = true.into();
            }
            no_store(Json(body).into_response())
        }
        Err(e) => unauthorized(&e.to_string()),
    }
}
