//! Requests to the authorization server's back-channel endpoints (token,
//! device authorization, revocation), authenticated as the registration says:
//! `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`
//! (an RFC 7523 client assertion signed with the client's key).

#[cfg(test)]
mod tests;

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::challenge::split_scopes;
use crate::clock::now_secs;
use crate::error::ClientError;
use crate::registration::ClientRegistration;
use crate::store::Tokens;

/// A private key for `private_key_jwt`, read from a PEM file.
#[derive(Clone)]
pub struct PrivateKey {
    key: jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", &self.alg)
            .finish()
    }
}

impl PrivateKey {
    /// Reads an RSA (RS256), EC P-256 (ES256) or Ed25519 (EdDSA) PEM key.
    pub fn from_pem_file(path: &Path) -> Result<Self, ClientError> {
        let pem = std::fs::read(path).map_err(|e| {
            ClientError::Config(format!("cannot read private key {}: {e}", path.display()))
        })?;
        Self::from_pem(&pem).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a PEM key (see [`from_pem_file`](Self::from_pem_file)).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ClientError> {
        use jsonwebtoken::{Algorithm, EncodingKey};
        let text = String::from_utf8_lossy(pem);
        let (key, alg) = if text.contains("RSA PRIVATE KEY") {
            (EncodingKey::from_rsa_pem(pem), Algorithm::RS256)
        } else if text.contains("EC PRIVATE KEY") {
            (EncodingKey::from_ec_pem(pem), Algorithm::ES256)
        } else if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
            (Ok(k), Algorithm::RS256)
        } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
            (Ok(k), Algorithm::ES256)
        } else {
            (EncodingKey::from_ed_pem(pem), Algorithm::EdDSA)
        };
        let key = key.map_err(|e| {
            ClientError::Config(format!(
                "not an RSA, EC P-256 or Ed25519 PEM private key: {e}"
            ))
        })?;
        Ok(Self {
            key,
            alg,
            kid: None,
        })
    }

    /// Names the key (`kid` header), for servers holding several of the client's keys.
    pub fn with_kid(mut self, kid: Option<String>) -> Self {
        self.kid = kid;
        self
    }

    /// An RFC 7523 client assertion: `iss` = `sub` = client ID, `aud` = the
    /// issuer, a fresh `jti`, valid for 60 seconds.
    pub fn client_assertion(&self, client_id: &str, audience: &str) -> Result<String, ClientError> {
        let now = now_secs();
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": audience,
            "jti": mcpgate_types::random::hex::<16>(),
            "iat": now, "exp": now + 60,
        });
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| ClientError::Config(format!("signing the client assertion failed: {e}")))
    }
}

/// How to authenticate this client at one authorization server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAuth<'a> {
    /// The registration (ID, secret, method).
    pub registration: &'a ClientRegistration,
    /// The key for `private_key_jwt`.
    pub private_key: Option<&'a PrivateKey>,
    /// The DPoP key token requests prove possession of (RFC 9449 §5).
    pub dpop: Option<&'a mcpgate_dpop::ProofKey>,
}

impl ClientAuth<'_> {
    /// Adds the client's credentials to a form POST to `endpoint`.
    fn apply(
        &self,
        req: reqwest::RequestBuilder,
        form: &mut Vec<(String, String)>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let reg = self.registration;
        let secret = || {
            reg.client_secret.as_deref().ok_or_else(|| {
                ClientError::Config(format!(
                    "the client {} uses {} but has no client secret (--client-secret)",
                    reg.client_id, reg.token_endpoint_auth_method
                ))
            })
        };
        Ok(match reg.token_endpoint_auth_method.as_str() {
            "client_secret_basic" => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&reg.client_id), enc(secret()?));
                let value = base64::engine::general_purpose::STANDARD.encode(pair);
                req.header("Authorization", format!("Basic {value}"))
            }
            "client_secret_post" => {
                form.push(("client_id".into(), reg.client_id.as_str().to_owned()));
                form.push(("client_secret".into(), secret()?.to_owned()));
                req
            }
            "private_key_jwt" => {
                let key = self.private_key.ok_or_else(|| {
                    ClientError::Config(format!(
                        "the client {} uses private_key_jwt: pass --private-key-file",
                        reg.client_id
                    ))
                })?;
                form.push(("client_id".into(), reg.client_id.as_str().to_owned()));
                form.push((
                    "client_assertion_type".into(),
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push((
                    "client_assertion".into(),
                    key.client_assertion(&reg.client_id, &reg.issuer)?,
                ));
                req
            }
            _ => {
                form.push(("client_id".into(), reg.client_id.as_str().to_owned()));
                req
            }
        })
    }
}

/// A token endpoint's successful answer.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Normally `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// A refresh token, when issued.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Granted scopes, when they differ from those asked for.
    #[serde(default)]
    pub scope: Option<String>,
}

fn bearer() -> String {
    "Bearer".into()
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .field("scope", &self.scope)
            .finish()
    }
}

/// POSTs a form to a back-channel endpoint with client authentication;
/// returns the status and body.
pub async fn post_form(
    http: &reqwest::Client,
    endpoint: &str,
    auth: ClientAuth<'_>,
    params: &[(&str, &str)],
) -> Result<(reqwest::StatusCode, bytes_body::Body), ClientError> {
    post_form_proved(http, endpoint, auth, params, None)
        .await
        .map(|(s, b, _)| (s, b))
}

/// [`post_form`] with a DPoP proof, when there is one; also returns the
/// server's `DPoP-Nonce`.
async fn post_form_proved(
    http: &reqwest::Client,
    endpoint: &str,
    auth: ClientAuth<'_>,
    params: &[(&str, &str)],
    proof: Option<&str>,
) -> Result<(reqwest::StatusCode, bytes_body::Body, Option<String>), ClientError> {
    let mut form: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut req = http.post(endpoint).header("Accept", "application/json");
    if let Some(p) = proof {
        req = req.header(mcpgate_dpop::HEADER, p);
    }
    let req = auth.apply(req, &mut form)?;
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(|e| ClientError::http(&format!("calling {endpoint}"), e))?;
    let status = resp.status();
    let nonce = resp
        .headers()
        .get(mcpgate_dpop::NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| ClientError::http(&format!("reading the answer of {endpoint}"), e))?;
    Ok((status, bytes_body::Body(body.to_vec()), nonce))
}

/// A response body (kept out of `Debug`, it may hold tokens).
pub mod bytes_body {
    /// Raw bytes of a response body.
    pub struct Body(pub Vec<u8>);

    impl std::fmt::Debug for Body {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Body({} bytes)", self.0.len())
        }
    }
}

/// Calls the token endpoint with a grant; maps OAuth errors to [`ClientError`].
pub async fn token_request(
    http: &reqwest::Client,
    token_endpoint: &str,
    auth: ClientAuth<'_>,
    params: &[(&str, &str)],
) -> Result<TokenResponse, ClientError> {
    let prove = |nonce: Option<&str>| {
        auth.dpop
            .map(|k| k.proof("POST", token_endpoint, None, nonce))
            .transpose()
            .map_err(|e| ClientError::Store(e.to_string()))
    };
    let proof = prove(None)?;
    let (mut status, mut body, nonce) =
        post_form_proved(http, token_endpoint, auth, params, proof.as_deref()).await?;
    // RFC 9449 §8: a server that wants a nonce says which; one retry with it.
    if let (Some(_), Some(n)) = (&proof, &nonce)
        && status == reqwest::StatusCode::BAD_REQUEST
        && crate::error::oauth_error_fields(&body.0).0 == mcpgate_dpop::USE_NONCE
    {
        let proof = prove(Some(n))?;
        (status, body, _) =
            post_form_proved(http, token_endpoint, auth, params, proof.as_deref()).await?;
    }
    if status.is_success() {
        let t: TokenResponse = serde_json::from_slice(&body.0).map_err(|e| {
            ClientError::Http(format!(
                "the token endpoint answered something that is not a token response: {e}"
            ))
        })?;
        let expected = if auth.dpop.is_some() {
            "dpop"
        } else {
            "bearer"
        };
        if !t.token_type.eq_ignore_ascii_case(expected) {
            return Err(ClientError::Http(format!(
                "the token endpoint issued a {:?} token where a {expected} token was asked for{}",
                t.token_type,
                if auth.dpop.is_some() {
                    " (the server may not support DPoP: sign in without --dpop)"
                } else {
                    ""
                }
            )));
        }
        return Ok(t);
    }
    let (error, description) = crate::error::oauth_error_fields(&body.0);
    Err(match error.as_str() {
        "invalid_client" => ClientError::InvalidClient(description),
        _ => ClientError::OAuth { error, description },
    })
}

/// RFC 7009: revokes a token; errors are reported, not fatal to a logout.
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &str,
    auth: ClientAuth<'_>,
    token: &str,
    hint: &str,
) -> Result<(), ClientError> {
    let (status, body) = post_form(
        http,
        endpoint,
        auth,
        &[("token", token), ("token_type_hint", hint)],
    )
    .await?;
    if status.is_success() {
        Ok(())
    } else {
        let (error, description) = crate::error::oauth_error_fields(&body.0);
        Err(ClientError::OAuth { error, description })
    }
}

/// Tokens from a token response; keeps the old refresh token when the
/// response omits a new one, and the held scopes when it names none.
pub fn tokens_from(t: TokenResponse, old: Option<&Tokens>) -> Tokens {
    Tokens {
        access_token: t.access_token,
        refresh_token: t
            .refresh_token
            .or_else(|| old.and_then(|o| o.refresh_token.clone())),
        expires_at: t.expires_in.map(|s| now_secs().saturating_add(s)),
        issued_at: Some(now_secs()),
        scopes: match t.scope {
            Some(s) => split_scopes(&s),
            None => old.map(|o| o.scopes.clone()).unwrap_or_default(),
        },
        dpop_key: old.and_then(|o| o.dpop_key.clone()),
    }
}
