//! Sign-in without a person at the MCP server's authorization server: the
//! JWT bearer grant (RFC 7523 §2.1) with an assertion the client already has
//! or gets from elsewhere.
//!
//! - **Enterprise-managed authorization** (MCP SEP-990): the user's ID token
//!   from the enterprise IdP is exchanged there (RFC 8693 token exchange,
//!   `requested_token_type=urn:ietf:params:oauth:token-type:id-jag`, the
//!   authorization server as `audience`, the MCP server as `resource`) for an
//!   Identity Assertion JWT Authorization Grant, which the authorization
//!   server redeems for an access token.
//! - **Workload identity** (MCP SEP-1933): a token the platform gives the
//!   workload (a Kubernetes service-account token, a CI OIDC token) is the
//!   assertion itself.
//!
//! Discovery is the usual one (`discovery.rs`); the client is the one the
//! person names (pre-registered at the authorization server with the
//! jwt-bearer grant). Neither grant returns a refresh token: a new access
//! token is a new assertion.

use url::Url;

use crate::error::ClientError;
use crate::oauth::{ClientAuth, PrivateKey, tokens_from};
use crate::registration::{ClientRegistration, RegistrationSource, choose_auth_method};
use crate::store::{Grant, SignIn, TokenStore};

/// The JWT bearer grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The token type of an ID-JAG (RFC 8693 `requested_token_type`).
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The enterprise IdP's side of an ID-JAG sign-in.
#[derive(Clone)]
pub struct IdpExchange {
    /// The IdP's token endpoint (it does the RFC 8693 token exchange).
    pub token_endpoint: Url,
    /// This client's ID at the IdP.
    pub client_id: String,
    /// Its secret there (`client_secret_basic`); none: a public client.
    pub client_secret: Option<String>,
    /// The user's ID token from the IdP (the subject token).
    pub id_token: String,
}

impl std::fmt::Debug for IdpExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpExchange")
            .field("token_endpoint", &self.token_endpoint.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Where the assertion comes from.
#[derive(Debug, Clone)]
pub enum Assertion {
    /// An ID-JAG from the enterprise IdP, for the ID token given.
    IdJag(IdpExchange),
    /// A workload token, presented as it is.
    Workload(WorkloadToken),
}

/// A workload identity token (never shown by `Debug`).
#[derive(Clone)]
pub struct WorkloadToken(pub String);

impl std::fmt::Debug for WorkloadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkloadToken(..)")
    }
}

/// The client at the MCP server's authorization server.
#[derive(Debug, Clone, Default)]
pub struct AssertionClient {
    /// Its client ID there (pre-registered with the jwt-bearer grant).
    pub client_id: String,
    /// Its secret, if confidential.
    pub client_secret: Option<String>,
    /// Its key, for `private_key_jwt`.
    pub private_key: Option<PrivateKey>,
    /// A token endpoint auth method to force.
    pub token_endpoint_auth_method: Option<String>,
    /// Scopes to ask for (default: the challenge's, else what the assertion allows).
    pub scope: Option<String>,
    /// Bind the access token to a new DPoP key (RFC 9449).
    pub dpop: bool,
}

fn http() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::http("building an HTTP client", e))
}

/// Signs in to the MCP server at `server_url` with `assertion` as `client`
/// and keeps the sign-in in `store`.
pub async fn sign_in(
    server_url: &Url,
    store: &TokenStore,
    client: &AssertionClient,
    assertion: &Assertion,
) -> Result<SignIn, ClientError> {
    let http = http()?;
    let found = crate::discovery::discover(&http, server_url).await?;
    let meta = &found.auth_server;
    if let Some(grants) = &meta.grant_types_supported
        && !grants.iter().any(|g| g == JWT_BEARER)
    {
        return Err(ClientError::Config(format!(
            "the authorization server {} does not offer the jwt-bearer grant (its grant_types_supported: {}); it must trust your IdP or platform first",
            meta.issuer,
            grants.join(", ")
        )));
    }
    let token_endpoint = meta
        .token_endpoint
        .clone()
        .ok_or_else(|| ClientError::Unsafe(format!("{} has no token_endpoint", meta.issuer)))?;
    let scope = client
        .scope
        .clone()
        .or_else(|| found.challenge.as_ref().and_then(|c| c.scope.clone()));
    let jwt = match assertion {
        Assertion::Workload(t) => t.0.trim().to_owned(),
        Assertion::IdJag(idp) => {
            exchange_for_id_jag(&http, idp, &meta.issuer, &found.resource, scope.as_deref()).await?
        }
    };
    let registration = ClientRegistration {
        issuer: meta.parsed_issuer()?,
        client_id: client
            .client_id
            .parse()
            .map_err(|e| ClientError::Config(format!("client id: {e}")))?,
        client_secret: client.client_secret.clone(),
        token_endpoint_auth_method: choose_auth_method(
            meta,
            client.token_endpoint_auth_method.as_deref(),
            client.client_secret.is_some(),
            client.private_key.is_some(),
        )?,
        redirect_uris: Vec::new(),
        source: RegistrationSource::Preregistered,
        grant_types: vec![JWT_BEARER.to_owned()],
        registration_client_uri: None,
        registration_access_token: None,
    };
    let key = client
        .dpop
        .then(mcpgate_dpop::ProofKey::generate)
        .transpose()
        .map_err(|e| ClientError::Store(e.to_string()))?;
    let mut form = vec![
        ("grant_type", JWT_BEARER),
        ("assertion", jwt.as_str()),
        ("resource", found.resource.as_str()),
    ];
    if let Some(s) = &scope {
        form.push(("scope", s));
    }
    let t = crate::oauth::token_request(
        &http,
        &token_endpoint,
        ClientAuth {
            registration: &registration,
            private_key: client.private_key.as_ref(),
            dpop: key.as_ref(),
        },
        &form,
    )
    .await?;
    let mut tokens = tokens_from(t, None);
    tokens.dpop_key = key.as_ref().map(|k| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.pkcs8())
    });
    let s = SignIn {
        issuer: registration.issuer.clone(),
        resource: found.resource.clone(),
        server_url: server_url.to_string(),
        resource_metadata_url: found.resource_metadata_url.clone(),
        auth_server: meta.clone(),
        registration,
        grant: Grant::JwtBearer,
        tokens,
        updated_at: 0,
        updated_ms: 0,
    };
    store.save(&s)?;
    Ok(s)
}

/// RFC 8693 at the IdP: the ID token for an ID-JAG for `audience` (the
/// authorization server's issuer) and `resource`.
async fn exchange_for_id_jag(
    http: &reqwest::Client,
    idp: &IdpExchange,
    audience: &str,
    resource: &str,
    scope: Option<&str>,
) -> Result<String, ClientError> {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("requested_token_type", ID_JAG_TOKEN_TYPE),
        ("audience", audience),
        ("resource", resource),
        ("subject_token", idp.id_token.trim()),
        ("subject_token_type", ID_TOKEN_TYPE),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let mut req = http.post(idp.token_endpoint.clone());
    match &idp.client_secret {
        Some(secret) => req = req.basic_auth(&idp.client_id, Some(secret)),
        None => form.push(("client_id", &idp.client_id)),
    }
    let at = idp.token_endpoint.as_str();
    let r = req
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| ClientError::http(&format!("the token exchange at the IdP ({at})"), e))?;
    let status = r.status();
    let body: serde_json::Value = r
        .json()
        .await
        .map_err(|e| ClientError::http(&format!("the IdP's token exchange answer ({at})"), e))?;
    let field = |k: &str| body.get(k).and_then(|v| v.as_str());
    if !status.is_success() {
        return Err(ClientError::Authorization(format!(
            "the IdP ({at}) refused the token exchange for an ID-JAG: {} {}",
            field("error").unwrap_or("(no error code)"),
            field("error_description").unwrap_or("")
        )));
    }
    if field("issued_token_type") != Some(ID_JAG_TOKEN_TYPE) {
        return Err(ClientError::Authorization(format!(
            "the IdP ({at}) answered the token exchange with issued_token_type {:?}, not an ID-JAG ({ID_JAG_TOKEN_TYPE})",
            field("issued_token_type").unwrap_or("(none)")
        )));
    }
    field("access_token")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ClientError::Authorization(format!(
                "the IdP ({at}) answered the token exchange without the ID-JAG (access_token)"
            ))
        })
}
