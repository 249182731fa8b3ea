//! One sign-in: discovery (or a config's endpoints), registration in the
//! order pre-registered → CIMD → stored → dynamic → ask, scope selection,
//! and the grant; registers again once when the server forgot the client.

use mcpgate_types::ClientId;
use url::Url;

use super::{AssertionSignIn, SignInMethod, TokenManager};
use crate::authorize::{self, Loopback};
use crate::challenge::split_scopes;
use crate::discovery::{self, Discovered};
use crate::error::ClientError;
use crate::metadata::AuthServerMetadata;
use crate::oauth::tokens_from;
use crate::oauth::{ClientAuth, TokenResponse};
use crate::registration::{
    ClientRegistration, DynamicRequest, RegistrationSource, choose_auth_method, register_dynamic,
};
use crate::store::{Grant, SignIn};

pub(super) async fn sign_in(
    m: &TokenManager,
    extra_scopes: &[String],
) -> Result<SignIn, ClientError> {
    if let Some(a) = &m.opts.assertion {
        return by_assertion(m, a, extra_scopes).await;
    }
    let found = match &m.opts.preset {
        Some(p) if p.token_url.is_some() => preset_discovery(m, p)?,
        _ => discovery::discover(&m.http, &m.server_url).await?,
    };
    let scope = select_scope(m, &found, extra_scopes);
    // A sign-in bound to a key stays bound when it is made again (an expired
    // refresh token, a step-up), even if this run did not ask for DPoP.
    let dpop = m.opts.dpop
        || m.stored()
            .await?
            .is_some_and(|s| s.tokens.dpop_key.is_some());
    let key = dpop
        .then(mcpgate_dpop::ProofKey::generate)
        .transpose()
        .map_err(|e| ClientError::Store(e.to_string()))?;
    let mut retried = false;
    loop {
        let (registration, loopback) = register(m, &found.auth_server).await?;
        match run_grant(
            m,
            &found,
            &registration,
            loopback,
            scope.as_deref(),
            key.as_ref(),
        )
        .await
        {
            Ok((grant, t)) => {
                let mut tokens = tokens_from(t, None);
                tokens.dpop_key = key.as_ref().map(|k| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.pkcs8())
                });
                let s = SignIn {
                    issuer: found.auth_server.parsed_issuer()?,
                    resource: found.resource.clone(),
                    server_url: m.server_url.to_string(),
                    resource_metadata_url: found.resource_metadata_url.clone(),
                    auth_server: found.auth_server.clone(),
                    registration,
                    grant,
                    tokens,
                    updated_at: 0,
                    updated_ms: 0,
                };
                m.store.save(&s)?;
                return Ok(s);
            }
            Err(ClientError::InvalidClient(d))
                if !retried && registration.source != RegistrationSource::Preregistered =>
            {
                tracing::info!("the authorization server forgot our client{d}; registering again");
                m.store.delete_registration(&registration.issuer)?;
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A config `auth` block's endpoints stand in for discovery.
fn preset_discovery(
    m: &TokenManager,
    p: &crate::mcp_config::AuthBlock,
) -> Result<Discovered, ClientError> {
    let token_url = p.token_url.clone().unwrap_or_default();
    let origin = Url::parse(&token_url)
        .map_err(|e| ClientError::Config(format!("auth.token_url {token_url:?}: {e}")))?
        .origin()
        .ascii_serialization();
    let meta: AuthServerMetadata = serde_json::from_value(serde_json::json!({
        "issuer": origin,
        "authorization_endpoint": p.authorization_url,
        "token_endpoint": token_url,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported":
            ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
    }))
    .map_err(|e| ClientError::Config(format!("auth block: {e}")))?;
    discovery::check_auth_server(&meta)?;
    let mut resource = m.server_url.clone();
    resource.set_fragment(None);
    Ok(Discovered {
        resource: resource.to_string(),
        resource_metadata_url: None,
        resource_metadata: None,
        auth_server: meta,
        challenge: None,
    })
}

/// `--scope` (or the config's), else the challenge's `scope`, else every
/// `scopes_supported` of the resource, else none; plus what a step-up needs.
/// `offline_access` (a refresh token) is asked for exactly when the
/// authorization server lists it and the grant has refresh tokens, and left
/// out otherwise (SEP-2207) unless the person named it in `--scope`.
fn select_scope(m: &TokenManager, found: &Discovered, extra: &[String]) -> Option<String> {
    let named = m
        .opts
        .scope
        .clone()
        .or_else(|| m.opts.preset.as_ref().and_then(|p| p.scope.clone()));
    let offline = found
        .auth_server
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|x| x == OFFLINE_ACCESS))
        && m.opts.method != SignInMethod::ClientCredentials;
    let base: Vec<String> = if let Some(s) = &named {
        crate::challenge::split_scopes(s)
    } else if let Some(s) = found.challenge.as_ref().and_then(|c| c.scope.clone()) {
        crate::challenge::split_scopes(&s)
    } else if let Some(prm) = &found.resource_metadata {
        prm.scopes_supported.clone()
    } else {
        Vec::new()
    };
    let mut all = base;
    for s in extra {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    if named.is_none() {
        all.retain(|s| s != OFFLINE_ACCESS);
        if offline && !all.is_empty() {
            all.push(OFFLINE_ACCESS.to_owned());
        }
    }
    (!all.is_empty()).then(|| all.join(" "))
}

/// The scope that asks for a refresh token (OpenID Connect Core §11).
const OFFLINE_ACCESS: &str = "offline_access";

fn grant_types(method: SignInMethod) -> Vec<&'static str> {
    match method {
        SignInMethod::ClientCredentials => vec!["client_credentials"],
        SignInMethod::Device => vec![crate::device::GRANT_TYPE, "refresh_token"],
        _ => vec!["authorization_code", "refresh_token"],
    }
}

fn loopback_port(uri: &str) -> Option<u16> {
    let u = Url::parse(uri).ok()?;
    (u.scheme() == "http" && u.host_str() == Some("127.0.0.1"))
        .then(|| u.port())
        .flatten()
}

/// Chooses the redirect URI: a fixed one, or a loopback one on a port that
/// prefers `--callback-port`, then the registered port, then any free one.
/// Browser sign-ins keep the listener bound.
async fn redirect(
    m: &TokenManager,
    registered: Option<&ClientRegistration>,
) -> Result<(String, Option<Loopback>), ClientError> {
    if let Some(uri) = m
        .opts
        .redirect_uri
        .clone()
        .or_else(|| m.opts.preset.as_ref().and_then(|p| p.redirect_uri.clone()))
    {
        let lb = match (m.opts.method, loopback_port(&uri)) {
            (SignInMethod::Browser, Some(port)) => Some(Loopback::bind(port).await?),
            _ => None,
        };
        return Ok((uri, lb));
    }
    let preferred = m
        .opts
        .callback_port
        .or_else(|| registered.and_then(|r| r.redirect_uris.iter().find_map(|u| loopback_port(u))));
    let lb = match preferred {
        Some(p) => match Loopback::bind(p).await {
            Ok(lb) => lb,
            Err(e) if m.opts.callback_port.is_some() => return Err(e),
            Err(_) => Loopback::bind(0).await?,
        },
        None => Loopback::bind(0).await?,
    };
    let uri = lb.redirect_uri();
    let keep = m.opts.method == SignInMethod::Browser;
    Ok((uri, keep.then_some(lb)))
}

/// A registration this client did not make at the server (pre-registered,
/// or a client ID metadata document): no grant types recorded, nothing to
/// manage through RFC 7592.
fn unmanaged(
    meta: &AuthServerMetadata,
    client_id: &str,
    client_secret: Option<String>,
    token_endpoint_auth_method: String,
    redirect_uris: Vec<String>,
) -> Result<ClientRegistration, ClientError> {
    Ok(ClientRegistration {
        issuer: meta.parsed_issuer()?,
        client_id: client_id
            .parse::<ClientId>()
            .map_err(|e| ClientError::Config(format!("client id: {e}")))?,
        client_secret,
        token_endpoint_auth_method,
        redirect_uris,
        source: RegistrationSource::Preregistered,
        grant_types: Vec::new(),
        registration_client_uri: None,
        registration_access_token: None,
    })
}

/// Registration in the spec's order; returns it with the redirect listener.
async fn register(
    m: &TokenManager,
    meta: &AuthServerMetadata,
) -> Result<(ClientRegistration, Option<Loopback>), ClientError> {
    let o = &m.opts;
    let needs_redirect = matches!(
        o.method,
        SignInMethod::Browser | SignInMethod::Manual | SignInMethod::NonInteractive
    );
    // 1. Pre-registered: flags, then the config's auth block.
    let pre_id = o
        .client_id
        .clone()
        .or_else(|| o.preset.as_ref().and_then(|p| p.client_id.clone()));
    if let Some(client_id) = pre_id {
        let secret = o
            .client_secret
            .clone()
            .or_else(|| o.preset.as_ref().and_then(|p| p.client_secret.clone()));
        let method = choose_auth_method(
            meta,
            o.token_endpoint_auth_method.as_deref(),
            secret.is_some(),
            o.private_key.is_some(),
        )?;
        let (uri, lb) = if needs_redirect {
            redirect(m, None).await?
        } else {
            (String::new(), None)
        };
        let redirect_uris = if uri.is_empty() { vec![] } else { vec![uri] };
        let reg = unmanaged(meta, &client_id, secret, method, redirect_uris)?;
        return Ok((reg, lb));
    }
    // 2. A client ID metadata document, when the server accepts them.
    if let Some(url) = &o.client_metadata_url {
        if meta.client_id_metadata_document_supported {
            let method = if o.private_key.is_some() {
                "private_key_jwt"
            } else {
                "none"
            };
            let (uri, lb) = if needs_redirect {
                redirect(m, None).await?
            } else {
                (String::new(), None)
            };
            let reg = ClientRegistration {
                source: RegistrationSource::Cimd,
                ..unmanaged(meta, url, None, method.into(), vec![uri])?
            };
            return Ok((reg, lb));
        }
        tracing::info!(issuer = %meta.issuer, "the server does not support client ID metadata documents");
    }
    // 3. A registration this store made earlier with this issuer, unless the
    // server says (RFC 7592) it has forgotten it.
    let wanted = grant_types(o.method);
    let mut stored = m.store.load_registration(&meta.issuer)?;
    if let Some(reg) = &stored
        && !crate::registration::still_registered(&m.http, reg).await
    {
        tracing::info!(client = %reg.client_id, "the authorization server forgot our client; registering again");
        m.store.delete_registration(&meta.issuer)?;
        stored = None;
    }
    if let Some(reg) = stored
        && wanted
            .iter()
            .all(|g| reg.grant_types.iter().any(|h| h == g))
        && o.token_endpoint_auth_method
            .as_deref()
            .is_none_or(|am| am == reg.token_endpoint_auth_method)
    {
        let (uri, lb) = if needs_redirect {
            redirect(m, Some(&reg)).await?
        } else {
            (String::new(), None)
        };
        let mut reg = reg;
        if needs_redirect && !reg.redirect_uris.contains(&uri) {
            // RFC 8252 §7.3: the port of a loopback URI may vary.
            tracing::debug!(%uri, "using a loopback port other than the registered one");
            reg.redirect_uris.insert(0, uri);
        }
        return Ok((reg, lb));
    }
    // 4. Dynamic registration.
    if meta.registration_endpoint.is_some() {
        let method = match &o.token_endpoint_auth_method {
            Some(am) => choose_auth_method(meta, Some(am), true, o.private_key.is_some())?,
            None if o.method == SignInMethod::ClientCredentials => {
                choose_auth_method(meta, None, true, false)?
            }
            None if meta.supports_auth_method("none") => "none".into(),
            None => choose_auth_method(meta, None, true, false)?,
        };
        if method == "private_key_jwt" {
            return Err(ClientError::Registration(
                "private_key_jwt needs a pre-registered client: pass --client-id with --private-key-file".into(),
            ));
        }
        let (uri, lb) = if needs_redirect {
            redirect(m, None).await?
        } else {
            (String::new(), None)
        };
        let reg = register_dynamic(
            &m.http,
            meta,
            &DynamicRequest {
                redirect_uris: if uri.is_empty() { vec![] } else { vec![uri] },
                grant_types: wanted,
                token_endpoint_auth_method: &method,
                // Not `scope`: some servers then cap the client at it, which breaks step-up.
                scope: None,
                client_name: &o.client_name,
            },
        )
        .await?;
        m.store.save_registration(&reg)?;
        return Ok((reg, lb));
    }
    // 5. Ask.
    Err(ClientError::Registration(format!(
        "{} offers neither dynamic client registration nor client ID metadata documents{}: \
         register a client there and pass --client-id (and --client-secret if it is confidential), \
         or put them in an mcp_config.json auth block",
        meta.issuer,
        if o.client_metadata_url.is_some() {
            " (it ignores --client-metadata-url)"
        } else {
            ""
        }
    )))
}

async fn run_grant(
    m: &TokenManager,
    found: &Discovered,
    reg: &ClientRegistration,
    loopback: Option<Loopback>,
    scope: Option<&str>,
    dpop: Option<&mcpgate_dpop::ProofKey>,
) -> Result<(Grant, TokenResponse), ClientError> {
    let meta = &found.auth_server;
    let auth = ClientAuth {
        dpop,
        registration: reg,
        private_key: m.opts.private_key.as_ref(),
    };
    let token_endpoint = meta
        .token_endpoint
        .as_deref()
        .ok_or_else(|| ClientError::Unsafe(format!("{} has no token_endpoint", meta.issuer)))?;
    let resource = found.resource.as_str();
    match m.opts.method {
        SignInMethod::ClientCredentials => {
            let mut params = vec![("grant_type", "client_credentials"), ("resource", resource)];
            if let Some(s) = scope {
                params.push(("scope", s));
            }
            let t = crate::oauth::token_request(&m.http, token_endpoint, auth, &params).await?;
            Ok((Grant::ClientCredentials, t))
        }
        SignInMethod::Device => {
            let t = crate::device::run(&m.http, meta, auth, scope, resource).await?;
            Ok((Grant::DeviceCode, t))
        }
        method => {
            let redirect_uri = reg.redirect_uris.first().cloned().unwrap_or_default();
            let req =
                authorize::build_request(meta, &reg.client_id, &redirect_uri, scope, resource)?;
            let code = match (method, loopback) {
                (SignInMethod::Browser, Some(lb)) => {
                    authorize::via_browser(&req, lb, meta, m.opts.callback_timeout).await?
                }
                (SignInMethod::NonInteractive, _) => authorize::via_redirect(&req, meta).await?,
                _ => authorize::via_paste(&req, meta).await?,
            };
            let t = crate::oauth::token_request(
                &m.http,
                token_endpoint,
                auth,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &req.redirect_uri),
                    ("code_verifier", &req.pkce.verifier),
                    ("resource", resource),
                ],
            )
            .await?;
            Ok((Grant::AuthorizationCode, t))
        }
    }
}

/// Renews a client-credentials sign-in (no person involved).
pub(super) async fn client_credentials_again(
    m: &TokenManager,
    s: &SignIn,
) -> Result<SignIn, ClientError> {
    let endpoint = s
        .auth_server
        .token_endpoint
        .as_deref()
        .ok_or_else(|| ClientError::Unsafe(format!("{} has no token_endpoint", s.issuer)))?;
    let scope = s.tokens.scopes.join(" ");
    let mut params = vec![
        ("grant_type", "client_credentials"),
        ("resource", s.resource.as_str()),
    ];
    if !scope.is_empty() {
        params.push(("scope", &scope));
    }
    let key = s.tokens.proof_key()?;
    let auth = ClientAuth {
        dpop: key.as_ref(),
        registration: &s.registration,
        private_key: m.opts.private_key.as_ref(),
    };
    let t = crate::oauth::token_request(&m.http, endpoint, auth, &params).await?;
    let mut next = s.clone();
    next.tokens = tokens_from(t, Some(&s.tokens));
    Ok(next)
}

/// A jwt-bearer sign-in with the next assertion; a step-up's scopes join
/// those asked for before.
async fn by_assertion(
    m: &TokenManager,
    a: &AssertionSignIn,
    extra_scopes: &[String],
) -> Result<SignIn, ClientError> {
    let mut client = a.client.clone();
    if !extra_scopes.is_empty() {
        let mut scopes = client
            .scope
            .as_deref()
            .map(split_scopes)
            .unwrap_or_default();
        for s in extra_scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        client.scope = Some(scopes.join(" "));
    }
    let assertion = (a.source)()?;
    crate::assertion_grant::sign_in(&m.server_url, &m.store, &client, &assertion).await
}
