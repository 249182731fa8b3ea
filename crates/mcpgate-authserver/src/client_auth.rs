//! Client authentication at the token, introspection, revocation and device
//! authorization endpoints: `none` (public clients name themselves),
//! `client_secret_basic`, `client_secret_post` and `private_key_jwt` (RFC 7523).
//!
//! Those endpoints take a [`ClientForm`]: the form is read and the client
//! authenticated before the handler runs, so no endpoint can skip it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcpgate_store::oauth::digest_hex;
use subtle::ConstantTimeEq as _;

use crate::Inner;
use crate::clients::{self, Client};
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, msg)
}

/// A client that proved who it is (or, if public, named itself).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) client: Client,
    /// It proved possession of a secret or key.
    pub(crate) confidential: bool,
}

/// A form POSTed by a client that proved who it is (or, if public, named
/// itself); rejected with the OAuth error before the handler runs.
pub(crate) struct ClientForm {
    pub(crate) client: Authenticated,
    pub(crate) params: Params,
}

impl FromRequest<Arc<Inner>> for ClientForm {
    type Rejection = Response;

    async fn from_request(req: Request, inner: &Arc<Inner>) -> Result<ClientForm, Response> {
        let (headers, params) = read_form(req, inner).await?;
        let client = authenticate(inner, &headers, &params)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(ClientForm { client, params })
    }
}

/// The headers and the parameters of a form POST (a repeated parameter is
/// `invalid_request`).
pub(crate) async fn read_form(
    req: Request,
    inner: &Arc<Inner>,
) -> Result<(HeaderMap, Params), Response> {
    let headers = req.headers().clone();
    let body = String::from_request(req, inner)
        .await
        .map_err(IntoResponse::into_response)?;
    let params = Params::parse(&body).map_err(IntoResponse::into_response)?;
    Ok((headers, params))
}

/// The `Authorization: Basic` credentials of a request, if it sends that
/// scheme: `Some(None)` when they do not decode to `id:secret`. Both halves
/// are form-decoded (RFC 6749 §2.3.1).
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let b = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })?;
    Some(
        STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|d| {
                let (id, secret) = d.split_once(':')?;
                Some((url_decode(id), url_decode(secret)))
            }),
    )
}

/// Authenticates the client of a token-endpoint-style request.
pub(crate) async fn authenticate(
    inner: &Inner,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Authenticated, OAuthError> {
    let basic = basic_credentials(headers);
    let methods = [
        basic.is_some(),
        params.get("client_secret").is_some(),
        params.get("client_assertion").is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::request(
            "use exactly one client authentication method",
        ));
    }
    if let Some(pair) = basic {
        let (id, secret) = pair.ok_or_else(|| invalid("malformed Basic credentials"))?;
        mcpgate_telemetry::note_client_id(Some(&id));
        if params.get("client_id").is_some_and(|p| p != id) {
            return Err(OAuthError::request(
                "client_id differs from the authenticated client",
            ));
        }
        return secret_client(inner, &id, &secret, "client_secret_basic").await;
    }
    let client_id = params.get("client_id");
    mcpgate_telemetry::note_client_id(client_id);
    if let Some(secret) = params.get("client_secret") {
        let id = client_id
            .ok_or_else(|| OAuthError::request("client_id is required with client_secret"))?;
        return secret_client(inner, id, secret, "client_secret_post").await;
    }
    if let Some(assertion) = params.get("client_assertion") {
        if params.get("client_assertion_type") != Some(ASSERTION_TYPE) {
            return Err(invalid(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        return jwt_client(inner, client_id, assertion).await;
    }
    let id = client_id.ok_or_else(|| invalid("no client authentication and no client_id"))?;
    let client = clients::require(inner, id).await?;
    if !client.is_public() {
        return Err(invalid(format!(
            "client {id:?} must authenticate ({})",
            client.auth_method
        )));
    }
    Ok(Authenticated {
        client,
        confidential: false,
    })
}

fn url_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn secret_client(
    inner: &Inner,
    id: &str,
    secret: &str,
    method: &str,
) -> Result<Authenticated, OAuthError> {
    let client = clients::find(inner, id).await?;
    // The digest is compared even for unknown clients, so timing says nothing.
    let expected = client
        .as_ref()
        .and_then(|c| c.secret_digest.clone())
        .unwrap_or_else(|| digest_hex("\u{0}no client"));
    let ok: bool = digest_hex(secret)
        .as_bytes()
        .ct_eq(expected.as_bytes())
        .into();
    match client {
        Some(c) if ok && c.secret_digest.is_some() => {
            if c.auth_method != method
                && !(c.auth_method.starts_with("client_secret_")
                    && method.starts_with("client_secret_"))
            {
                return Err(invalid(format!(
                    "client {id:?} is registered for {}",
                    c.auth_method
                )));
            }
            Ok(Authenticated {
                client: c,
                confidential: true,
            })
        }
        _ => Err(invalid("unknown client or wrong client secret")),
    }
}

async fn jwt_client(
    inner: &Inner,
    client_id: Option<&str>,
    assertion: &str,
) -> Result<Authenticated, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid("client_assertion is not a JWT"))?;
    // The client is named by the assertion's `sub` (= `iss`); read it unverified to find its keys.
    let unverified: serde_json::Value = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("client_assertion is not a JWT"))?;
    let sub = unverified
        .get("sub")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("client_assertion has no sub"))?
        .to_owned();
    if client_id.is_some_and(|c| c != sub) {
        return Err(invalid("client_id differs from the assertion's sub"));
    }
    let client = clients::require(inner, &sub).await?;
    if client.auth_method != "private_key_jwt" {
        return Err(invalid(format!(
            "client {sub:?} is not registered for private_key_jwt"
        )));
    }
    let jwks = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => j.clone(),
        (None, Some(uri)) => fetch_jwks(inner, uri).await?,
        (None, None) => return Err(invalid("the client has no jwks or jwks_uri")),
    };
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks).map_err(|_| invalid("the client's JWKS is malformed"))?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
    .ok_or_else(|| invalid("no key of the client matches the assertion's kid"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
        .map_err(|_| invalid("the client's key is unusable"))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&sub]);
    v.set_audience(&[
        inner.url("/token"),
        inner.issuer.to_string(),
        inner.url("/introspect"),
        inner.url("/revoke"),
    ]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.leeway = 30;
    let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v)
        .map_err(|e| invalid(format!("client_assertion rejected: {e}")))?;
    // One use per assertion (RFC 7523 §3): its jti is remembered until it expires.
    let jti = data
        .claims
        .get("jti")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("client_assertion has no jti"))?;
    if !inner.seen_assertions.insert(format!("{sub}\u{0}{jti}")) {
        return Err(invalid("client_assertion was used before"));
    }
    Ok(Authenticated {
        client,
        confidential: true,
    })
}

/// The client's JWKS from its `jwks_uri`, through the guarded fetcher: the URL
/// is the client's own choice, so it must not reach private addresses, and the
/// error never says what the remote answered.
async fn fetch_jwks(inner: &Inner, uri: &str) -> Result<serde_json::Value, OAuthError> {
    inner.outbound.get_json(uri).await.map_err(|e| {
        tracing::warn!(jwks_uri = uri, reason = %e, "client jwks_uri not fetched");
        invalid(format!("cannot use the client's jwks_uri: {e}"))
    })
}

/// Assertion ids seen in the last ten minutes (assertions live less than that).
#[derive(Debug)]
pub(crate) struct ReplaySet(moka::sync::Cache<String, ()>);

impl ReplaySet {
    pub(crate) fn new() -> ReplaySet {
        ReplaySet(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
        )
    }

    /// Records `key`; `false` if it was seen already.
    pub(crate) fn insert(&self, key: String) -> bool {
        let entry = self.0.entry(key).or_insert(());
        entry.is_fresh()
    }
}
