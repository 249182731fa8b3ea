//! Talking to one IdP: endpoints (fixed for GitHub, discovered for OIDC), the
//! authorization URL, the code exchange and refresh, and the identity (a
//! validated `id_token`, or GitHub's user API).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpgate_fetch::{Fetcher, Request};
use mcpgate_types::Subject;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use super::{ProviderConfig, ProviderKind};

/// The two fetchers an IdP is reached through.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    /// For the operator's own URLs (issuer, GitHub URLs) and whatever lies on
    /// their origins: private addresses as `[server] outbound_private` says.
    pub(crate) operator: Fetcher,
    /// For URLs a discovery document names on any other origin: public https only.
    pub(crate) untrusted: Fetcher,
}

/// One configured IdP.
#[derive(Debug)]
pub(crate) struct Idp {
    pub(crate) cfg: ProviderConfig,
    /// The client secret at the IdP; `Debug` shows it redacted.
    secret: Option<SecretString>,
    outbound: Outbound,
    /// Origins (`scheme://host:port`) the operator configured for this IdP.
    trusted_origins: Vec<String>,
    /// OIDC discovery, fetched once (on first use, so a slow IdP does not block startup).
    discovered: OnceCell<Discovery>,
    jwks: tokio::sync::RwLock<Option<JwkSet>>,
}

/// What discovery tells (RFC 8414 / OpenID Connect Discovery).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) userinfo_endpoint: Option<String>,
}

/// A token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
}

impl Tokens {
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        self.expires_in
            .map(|s| SystemTime::now() + Duration::from_secs(s))
    }
}

/// Who signed in, as the IdP vouches for it.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The IdP's stable subject.
    pub(crate) subject: Subject,
    /// A verified email (unverified ones are dropped).
    pub(crate) email: Option<String>,
    /// The login name (GitHub login, `preferred_username`).
    pub(crate) login: Option<String>,
    /// GitHub organizations.
    pub(crate) orgs: Vec<String>,
    /// OIDC groups.
    pub(crate) groups: Vec<String>,
}

/// Why a refresh failed.
#[derive(Debug)]
pub(crate) enum RefreshError {
    /// The IdP refused the refresh token (`invalid_grant`): revoked or expired.
    Revoked(String),
    /// Anything else (network, server error): try again later.
    Other(String),
}

impl Idp {
    pub(crate) fn new(cfg: &ProviderConfig, outbound: Outbound) -> Result<Idp, String> {
        let name_ok = !cfg.name.is_empty()
            && cfg.name.len() <= 32
            && cfg
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err("name: use 1 to 32 of a-z 0-9 -".into());
        }
        if cfg.client_id.is_empty() {
            return Err("client_id is empty".into());
        }
        match cfg.kind {
            ProviderKind::Entra if cfg.tenant.as_deref().is_none_or(str::is_empty) => {
                return Err("kind = \"entra\" needs tenant (a tenant id or domain, \"organizations\" or \"common\")".into());
            }
            ProviderKind::Oidc if cfg.issuer.is_none() => {
                return Err("kind = \"oidc\" needs issuer (its /.well-known/openid-configuration is fetched)".into());
            }
            ProviderKind::Github if !cfg.allowed_groups.is_empty() => {
                return Err(
                    "allowed_groups applies to OIDC providers; for GitHub use allowed_orgs".into(),
                );
            }
            _ => {}
        }
        if cfg.kind != ProviderKind::Github && !cfg.allowed_orgs.is_empty() {
            return Err(
                "allowed_orgs applies to GitHub; for OIDC providers use allowed_groups".into(),
            );
        }
        for g in &cfg.allowed_users {
            globset::Glob::new(g).map_err(|e| format!("allowed_users: {g:?}: {e}"))?;
        }
        let secret = match (&cfg.client_secret_env, &cfg.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err("set client_secret_env or client_secret_file, not both".into());
            }
            (Some(var), None) => Some(SecretString::from(std::env::var(var).map_err(|_| {
                format!("the client secret's environment variable {var} is not set")
            })?)),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("client_secret_file {}: {e}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .into(),
            ),
            (None, None) => None,
        };
        if secret.is_none() && cfg.kind == ProviderKind::Github {
            return Err("GitHub needs the OAuth app's client secret: set client_secret_env or client_secret_file".into());
        }
        let mut idp = Idp {
            cfg: cfg.clone(),
            secret,
            outbound,
            trusted_origins: Vec::new(),
            discovered: OnceCell::new(),
            jwks: tokio::sync::RwLock::new(None),
        };
        let configured = match cfg.kind {
            ProviderKind::Github => vec![idp.github_web(), idp.github_api()],
            _ => idp.issuer().into_iter().collect(),
        };
        idp.trusted_origins = configured.iter().filter_map(|u| origin(u)).collect();
        Ok(idp)
    }

    /// The fetcher for `url`: the operator's trust on a configured origin, the
    /// SSRF guard anywhere a discovery document may point.
    fn fetcher_for(&self, url: &str) -> &Fetcher {
        match origin(url) {
            Some(o) if self.trusted_origins.contains(&o) => &self.outbound.operator,
            _ => &self.outbound.untrusted,
        }
    }

    pub(crate) fn display_name(&self) -> String {
        self.cfg.display_name.clone().unwrap_or_else(|| {
            match self.cfg.kind {
                ProviderKind::Github => "GitHub",
                ProviderKind::Google => "Google",
                ProviderKind::Entra => "Microsoft",
                ProviderKind::Oidc => self.cfg.name.as_str(),
            }
            .to_owned()
        })
    }

    fn github_web(&self) -> String {
        base_url(self.cfg.github_url.as_ref(), "https://github.com")
    }

    fn github_api(&self) -> String {
        base_url(self.cfg.github_api_url.as_ref(), "https://api.github.com")
    }

    /// The OIDC issuer this provider must present.
    pub(crate) fn issuer(&self) -> Option<String> {
        match self.cfg.kind {
            ProviderKind::Github => None,
            ProviderKind::Google => Some("https://accounts.google.com".into()),
            ProviderKind::Entra => Some(format!(
                "https://login.microsoftonline.com/{}/v2.0",
                self.cfg.tenant.as_deref().unwrap_or_default()
            )),
            ProviderKind::Oidc => self
                .cfg
                .issuer
                .as_deref()
                .map(|i| i.trim_end_matches('/').to_owned()),
        }
    }

    async fn discovery(&self) -> Result<&Discovery, String> {
        self.discovered
            .get_or_try_init(|| async {
                let issuer = self.issuer().unwrap_or_default();
                let url = format!("{issuer}/.well-known/openid-configuration");
                let d: Discovery = self.get_json(&url, None).await?;
                // Entra's multi-tenant issuers carry a {tenantid} placeholder.
                let expected = d.issuer.trim_end_matches('/');
                if expected != issuer
                    && !(self.cfg.kind == ProviderKind::Entra && expected.contains("{tenantid}"))
                {
                    return Err(format!(
                        "discovery at {url} names issuer {:?}, expected {issuer:?}",
                        d.issuer
                    ));
                }
                Ok(d)
            })
            .await
    }

    fn scopes(&self) -> String {
        if let Some(s) = &self.cfg.scopes {
            return s.join(" ");
        }
        match self.cfg.kind {
            ProviderKind::Github if self.cfg.allowed_orgs.is_empty() => {
                "read:user user:email".into()
            }
            ProviderKind::Github => "read:user user:email read:org".into(),
            ProviderKind::Entra => "openid email profile offline_access".into(),
            ProviderKind::Google => "openid email profile".into(),
            ProviderKind::Oidc => "openid email profile offline_access".into(),
        }
    }

    /// Where the browser goes to sign in.
    pub(crate) async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<String, String> {
        let endpoint = match self.cfg.kind {
            ProviderKind::Github => format!("{}/login/oauth/authorize", self.github_web()),
            _ => self.discovery().await?.authorization_endpoint.clone(),
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes())
            .append_pair("state", state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if self.cfg.kind != ProviderKind::Github {
            q.append_pair("nonce", nonce);
        }
        if self.cfg.kind == ProviderKind::Google {
            // Google gives a refresh token only with both.
            q.append_pair("access_type", "offline")
                .append_pair("prompt", "consent");
        }
        // Entra v2 rejects `resource` (AADSTS9010010): never sent to any IdP.
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        Ok(format!("{endpoint}{sep}{}", q.finish()))
    }

    async fn token_endpoint(&self) -> Result<String, String> {
        Ok(match self.cfg.kind {
            ProviderKind::Github => format!("{}/login/oauth/access_token", self.github_web()),
            _ => self.discovery().await?.token_endpoint.clone(),
        })
    }

    async fn token_request(
        &self,
        form: &[(&str, &str)],
    ) -> Result<Result<Tokens, (String, String)>, String> {
        let url = self.token_endpoint().await?;
        let mut body = form.to_vec();
        body.push(("client_id", &self.cfg.client_id));
        if let Some(s) = &self.secret {
            body.push(("client_secret", s.expose_secret()));
        }
        let r = self
            .fetcher_for(&url)
            .send(Request::post_form(&url, body).accept_json())
            .await
            .map_err(|e| format!("cannot use the token endpoint: {e}"))?;
        let status = r.status;
        let v: Value = r
            .json()
            .map_err(|e| format!("cannot use the token endpoint: {e}"))?;
        // GitHub answers errors with 200 and an `error` field.
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            let d = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Ok(Err((e.to_owned(), d.to_owned())));
        }
        if !status.is_success() {
            tracing::warn!(provider = %self.cfg.name, status = status.as_u16(), "the IdP's token endpoint answered without success");
            return Err("the token endpoint did not answer with success".into());
        }
        serde_json::from_value(v)
            .map(Ok)
            .map_err(|e| format!("the token response is not usable: {e}"))
    }

    /// The callback's code exchange (with the PKCE verifier).
    pub(crate) async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Tokens, String> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await?
        .map_err(|(e, d)| format!("{e} {d}").trim().to_owned())
    }

    /// New tokens from a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<Tokens, RefreshError> {
        match self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await
        {
            Ok(Ok(t)) => Ok(t),
            Ok(Err((e, d)))
                if matches!(
                    e.as_str(),
                    "invalid_grant" | "bad_refresh_token" | "unauthorized_client"
                ) =>
            {
                Err(RefreshError::Revoked(format!("{e} {d}").trim().to_owned()))
            }
            Ok(Err((e, d))) => Err(RefreshError::Other(format!("{e} {d}").trim().to_owned())),
            Err(e) => Err(RefreshError::Other(e)),
        }
    }

    /// Whether the IdP still accepts `access` (GitHub's `/user`, else the
    /// OIDC userinfo endpoint): `Some(false)` when it answers 401.
    pub(crate) async fn still_valid(&self, access: &str) -> Option<bool> {
        let url = match self.cfg.kind {
            ProviderKind::Github => format!("{}/user", self.github_api()),
            _ => self.discovery().await.ok()?.userinfo_endpoint.clone()?,
        };
        let r = self
            .fetcher_for(&url)
            .send(Request::get(&url).bearer(access))
            .await
            .ok()?;
        match r.status.as_u16() {
            401 => Some(false),
            s if (200..300).contains(&s) => Some(true),
            _ => None,
        }
    }

    /// Who signed in.
    pub(crate) async fn identity(&self, tokens: &Tokens, nonce: &str) -> Result<Identity, String> {
        match self.cfg.kind {
            ProviderKind::Github => self.github_identity(&tokens.access_token).await,
            _ => {
                let id_token = tokens
                    .id_token
                    .as_deref()
                    .ok_or("the token response has no id_token (is the openid scope granted?)")?;
                self.validate_id_token(id_token, nonce).await
            }
        }
    }

    async fn github_identity(&self, access: &str) -> Result<Identity, String> {
        let api = self.github_api();
        let user: Value = self.get_json(&format!("{api}/user"), Some(access)).await?;
        let id = match &user["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) if !s.is_empty() => s.clone(),
            _ => return Err("GitHub's /user has no id".into()),
        };
        let id = Subject::try_from(id).map_err(|e| format!("GitHub's /user id: {e}"))?;
        let emails: Value = self
            .get_json(&format!("{api}/user/emails"), Some(access))
            .await?;
        let email = emails.as_array().and_then(|a| {
            a.iter()
                .find(|e| e["primary"] == true && e["verified"] == true)
                .and_then(|e| e["email"].as_str())
                .map(str::to_owned)
        });
        let orgs = if self.cfg.allowed_orgs.is_empty() {
            Vec::new()
        } else {
            let v: Value = self
                .get_json(&format!("{api}/user/orgs?per_page=100"), Some(access))
                .await?;
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o["login"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Identity {
            subject: id,
            email,
            login: user["login"].as_str().map(str::to_owned),
            orgs,
            groups: Vec::new(),
        })
    }

    async fn keys(&self, refetch: bool) -> Result<JwkSet, String> {
        if !refetch && let Some(k) = self.jwks.read().await.as_ref() {
            return Ok(k.clone());
        }
        let uri = self
            .discovery()
            .await?
            .jwks_uri
            .clone()
            .ok_or("discovery names no jwks_uri")?;
        let set: JwkSet = self.get_json(&uri, None).await?;
        *self.jwks.write().await = Some(set.clone());
        Ok(set)
    }

    /// Checks the `id_token`'s signature (JWKS from discovery), issuer,
    /// audience, expiry and nonce; the identity it carries.
    pub(crate) async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<Identity, String> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| format!("id_token: {e}"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(format!(
                "id_token: algorithm {:?} is not accepted",
                header.alg
            ));
        }
        let mut set = self.keys(false).await?;
        let find = |set: &JwkSet| match &header.kid {
            Some(k) => set.find(k).cloned(),
            None => set.keys.first().cloned(),
        };
        let jwk = match find(&set) {
            Some(j) => j,
            None => {
                // A key rotated in since the last fetch.
                set = self.keys(true).await?;
                find(&set).ok_or("id_token: signed with a key the IdP does not publish")?
            }
        };
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| format!("id_token: the IdP's key: {e}"))?;
        let d = self.discovery().await?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[self.cfg.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        if self.cfg.kind != ProviderKind::Entra || !d.issuer.contains("{tenantid}") {
            v.set_issuer(&[d.issuer.as_str()]);
        }
        let claims: Value = jsonwebtoken::decode::<Value>(id_token, &key, &v)
            .map_err(|e| format!("id_token rejected: {e}"))?
            .claims;
        if claims["nonce"].as_str() != Some(nonce) {
            return Err("id_token rejected: the nonce does not match this sign-in".into());
        }
        if self.cfg.kind == ProviderKind::Entra && d.issuer.contains("{tenantid}") {
            let tid = claims["tid"].as_str().unwrap_or_default();
            if claims["iss"].as_str() != Some(&d.issuer.replace("{tenantid}", tid)) {
                return Err("id_token rejected: wrong issuer for its tenant".into());
            }
        }
        let subject = match claims["sub"].as_str() {
            None | Some("") => return Err("id_token has no subject".into()),
            Some(s) => s
                .parse::<Subject>()
                .map_err(|e| format!("id_token rejected: its sub: {e}"))?,
        };
        let verified = claims["email_verified"] == true || claims["email_verified"] == "true";
        let email = claims["email"]
            .as_str()
            .filter(|_| verified)
            .map(str::to_owned);
        let groups_claim = self.cfg.groups_claim.as_deref().unwrap_or("groups");
        let groups = claims[groups_claim]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Identity {
            subject,
            email,
            login: claims["preferred_username"].as_str().map(str::to_owned),
            orgs: Vec::new(),
            groups,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, String> {
        let mut req = Request::get(url).accept_json();
        if let Some(b) = bearer {
            req = req.bearer(b);
        }
        self.fetcher_for(url)
            .send(req)
            .await
            .and_then(|r| r.success())
            .and_then(|r| r.json())
            .map_err(|e| format!("{}: {e}", strip_query(url)))
    }
}

/// `scheme://host:port` of `url`, for comparing origins.
fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?
    ))
}

/// `url` without its query (which may carry identifiers) for messages.
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `configured` (GitHub Enterprise) without a trailing `/`, else `default`:
/// paths are appended to it.
fn base_url(configured: Option<&url::Url>, default: &str) -> String {
    configured.map_or(default.to_owned(), |u| {
        u.as_str().trim_end_matches('/').to_owned()
    })
}
