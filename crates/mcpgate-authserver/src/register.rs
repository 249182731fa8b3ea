//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592): a registration access token, GET/PUT/DELETE on
//! `/register/{client_id}`. It accepts what real MCP clients register
//! (several URIs at once, private-use schemes, loopback URIs without port)
//! and refuses unsafe redirect URIs with `invalid_redirect_uri` and a reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_store::oauth::{ClientKind, ClientRow, digest_hex};
use mcpgate_types::RedirectUri;
use subtle::ConstantTimeEq as _;

use crate::error::{ErrorCode, OAuthError};
use crate::respond::no_store;
use crate::settings::RegistrationPolicy;
use crate::{Inner, random_token};

const GRANTS: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    crate::device::DEVICE_GRANT,
];
const METHODS: &[&str] = &[
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

fn meta_err(msg: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, msg)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Checks and normalizes submitted metadata; returns it as it will be stored.
fn validate(inner: &Inner, mut m: serde_json::Value) -> Result<serde_json::Value, OAuthError> {
    let obj = m
        .as_object_mut()
        .ok_or_else(|| meta_err("the registration request must be a JSON object"))?;
    // Fields the server sets.
    for k in [
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    ] {
        obj.remove(k);
    }
    let uris: Vec<String> = match obj.get("redirect_uris") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    OAuthError::new(
                        ErrorCode::InvalidRedirectUri,
                        "redirect_uris must be strings",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris must be an array",
            ));
        }
    };
    for u in &uris {
        RedirectUri::self_registered(u).map_err(|e| {
            tracing::info!("registration redirect_uri refused: {e}");
            OAuthError::new(ErrorCode::InvalidRedirectUri, e.to_string())
        })?;
    }
    let method = obj
        .get("token_endpoint_auth_method")
        .and_then(|v| v.as_str())
        .unwrap_or("client_secret_basic")
        .to_owned();
    if !METHODS.contains(&method.as_str()) {
        return Err(meta_err(format!(
            "token_endpoint_auth_method {method:?} is not supported; use one of {}",
            METHODS.join(", ")
        )));
    }
    let grants: Vec<String> = match obj.get("grant_types") {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec!["authorization_code".into(), "refresh_token".into()],
    };
    for g in &grants {
        if !GRANTS.contains(&g.as_str()) {
            return Err(meta_err(format!("grant type {g:?} is not supported")));
        }
    }
    if grants.iter().any(|g| g == "authorization_code") && uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    if grants.iter().any(|g| g == "client_credentials") && method == "none" {
        return Err(meta_err(
            "client_credentials needs a confidential client (token_endpoint_auth_method other than none)",
        ));
    }
    if method == "private_key_jwt" && obj.get("jwks").is_none() && obj.get("jwks_uri").is_none() {
        return Err(meta_err("private_key_jwt needs jwks or jwks_uri"));
    }
    if let Some(rt) = obj.get("response_types").and_then(|v| v.as_array())
        && rt.iter().any(|v| v.as_str() != Some("code"))
    {
        return Err(meta_err("only the response type \"code\" is supported"));
    }
    if let Some(s) = obj.get("scope").and_then(|v| v.as_str()) {
        // Unknown scopes are simply never granted.
        let known: Vec<&str> = s
            .split_ascii_whitespace()
            .filter(|x| inner.known_scope(x))
            .collect();
        obj.insert("scope".into(), known.join(" ").into());
    }
    for k in [
        "logo_uri",
        "client_uri",
        "policy_uri",
        "tos_uri",
        "jwks_uri",
    ] {
        // The test allow-list (`[authserver.cimd] allow_hosts`) lets a jwks_uri
        // be plain http on loopback, as it does for metadata documents.
        if let Some(v) = obj.get(k).and_then(|v| v.as_str())
            && !v.starts_with("https://")
            && !(k == "jwks_uri" && inner.cimd.allows_plain_http(v))
        {
            return Err(meta_err(format!("{k} must be an https URL")));
        }
    }
    obj.insert("redirect_uris".into(), uris.into());
    obj.insert("token_endpoint_auth_method".into(), method.into());
    obj.insert("grant_types".into(), grants.into());
    obj.insert("response_types".into(), serde_json::json!(["code"]));
    Ok(m)
}

fn response(
    inner: &Inner,
    row: &ClientRow,
    secret: Option<&str>,
    rat: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut body = row.metadata.clone();
    body["client_id"] = row.client_id.as_str().into();
    body["client_id_issued_at"] = crate::unix(row.created_at).into();
    if let Some(s) = secret {
        body["client_secret"] = s.into();
        body["client_secret_expires_at"] = 0.into();
    }
    if let Some(t) = rat {
        body["registration_access_token"] = t.into();
    }
    body["registration_client_uri"] = inner.url(&format!("/register/{}", row.client_id)).into();
    no_store((status, Json(body)).into_response())
}

/// `POST /register`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: String,
) -> Response {
    // Counted before any work, failed attempts included (they cost as much).
    if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>()
        && let Err(wait) = inner.registrations.take(addr.ip())
    {
        let secs = wait.as_secs() + 1;
        tracing::warn!(
            client_ip = %addr.ip(),
            rate = %inner.registrations.rate(),
            retry_after = secs,
            "registration refused: too many registrations from this address (authserver.registration_rate)"
        );
        let mut r = OAuthError::new(
            ErrorCode::TooManyRequests,
            format!(
                "too many client registrations from this address; try again in {secs} s (a client registers once and keeps its client_id)"
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    match register(&inner, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn register(inner: &Inner, headers: &HeaderMap, body: &str) -> Result<Response, OAuthError> {
    match inner.settings.registration.policy {
        RegistrationPolicy::Off => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "dynamic client registration is switched off on this server; ask the operator for a client id",
            ));
        }
        RegistrationPolicy::InitialAccessToken => {
            let sent = bearer(headers).unwrap_or_default();
            let ok = inner
                .initial_access_tokens
                .iter()
                .any(|t| bool::from(t.as_bytes().ct_eq(sent.as_bytes())));
            if !ok {
                return Err(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "registration needs a valid initial access token (Authorization: Bearer)",
                ));
            }
        }
        RegistrationPolicy::Open => {}
    }
    let m: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| meta_err(format!("the registration request is not JSON: {e}")))?;
    let m = validate(inner, m)?;
    let method = m["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("none")
        .to_owned();
    // base64url after a prefix: always a client id, but checked, not assumed.
    let id =
        mcpgate_types::ClientId::try_from(format!("mcpg-{}", random_token())).map_err(|e| {
            OAuthError::new(
                ErrorCode::ServerError,
                format!("cannot mint a client id: {e}"),
            )
        })?;
    let mut row = ClientRow::new(id, ClientKind::Dynamic, m);
    let secret = method.starts_with("client_secret").then(random_token);
    row.secret_digest = secret.as_deref().map(digest_hex);
    let rat = random_token();
    row.registration_token_digest = Some(digest_hex(&rat));
    row.expires_at = Some(row.created_at + inner.settings.dynamic_client_ttl);
    inner
        .store
        .insert_client(&row)
        .await
        .map_err(OAuthError::store)?;
    tracing::info!(client = %row.client_id, name = row.metadata.get("client_name").and_then(|v| v.as_str()).unwrap_or(""), "client registered");
    mcpgate_telemetry::audit_simple(
        mcpgate_telemetry::AuditKind::ClientRegistered,
        None,
        Some(&row.client_id),
        Some("dynamic"),
    );
    Ok(response(
        inner,
        &row,
        secret.as_deref(),
        Some(&rat),
        StatusCode::CREATED,
    ))
}

/// The dynamic client `id`, if the request carries its registration access token.
async fn managed(inner: &Inner, headers: &HeaderMap, id: &str) -> Result<ClientRow, OAuthError> {
    let denied = || {
        OAuthError::new(
            ErrorCode::InvalidToken,
            "a valid registration access token for this client is required",
        )
    };
    let sent = bearer(headers).ok_or_else(denied)?;
    let row = inner
        .store
        .find_client(id)
        .await
        .map_err(OAuthError::store)?
        .ok_or_else(denied)?;
    let ok = row
        .registration_token_digest
        .as_ref()
        .is_some_and(|d| bool::from(d.as_bytes().ct_eq(digest_hex(sent).as_bytes())));
    if ok { Ok(row) } else { Err(denied()) }
}

/// `GET /register/{client_id}`.
pub(crate) async fn read(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match managed(&inner, &headers, &id).await {
        Ok(row) => response(&inner, &row, None, None, StatusCode::OK),
        Err(e) => e.into_response(),
    }
}

/// `PUT /register/{client_id}`: replaces the metadata (the secret is kept).
pub(crate) async fn update(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let result = async {
        let mut row = managed(&inner, &headers, &id).await?;
        let m: serde_json::Value = serde_json::from_str(&body).map_err(|e| meta_err(format!("not JSON: {e}")))?;
        if m.get("client_id").and_then(|v| v.as_str()).is_some_and(|c| c != id) {
            return Err(OAuthError::request("client_id in the body differs from the URL"));
        }
        let m = validate(&inner, m)?;
        let was_secret = row.secret_digest.is_some();
        let wants_secret = m["token_endpoint_auth_method"].as_str().is_some_and(|x| x.starts_with("client_secret"));
        if was_secret != wants_secret {
            return Err(meta_err("token_endpoint_auth_method cannot switch between public and secret-based; register a new client"));
        }
        row.metadata = m;
        inner.store.upsert_client(&row).await.map_err(OAuthError::store)?;
        Ok(response(&inner, &row, None, None, StatusCode::OK))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /register/{client_id}`: the client and every grant it holds end.
pub(crate) async fn delete(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match managed(&inner, &headers, &id).await {
        Ok(_) => match inner.store.delete_client(&id).await {
            Ok(_) => {
                mcpgate_telemetry::audit_simple(
                    mcpgate_telemetry::AuditKind::ClientRemoved,
                    None,
                    Some(&id),
                    Some("deleted_by_client"),
                );
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => OAuthError::store(e).into_response(),
        },
        Err(e) => e.into_response(),
    }
}
