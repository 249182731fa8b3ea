//! The token manager: signs in (discovery → registration → grant), keeps the
//! sign-in in the [`TokenStore`], refreshes before expiry and on 401, steps
//! up on 403 `insufficient_scope`, and serves `Authorization` values to the
//! transports through [`Credentials`].

mod signin;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;
use url::Url;

use crate::assertion_grant::{Assertion, AssertionClient};
use crate::challenge::BearerChallenge;
use crate::credentials::{Credentials, CredentialsError};
use crate::error::ClientError;
use crate::mcp_config::AuthBlock;
use crate::oauth::{ClientAuth, PrivateKey, tokens_from};
use crate::registration::RegistrationSource;
use crate::store::{Grant, RefreshMargin, SignIn, TokenStore};

/// How a sign-in gets its grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// Browser + loopback callback.
    Browser,
    /// Print the URL, read the redirect URL or code from stdin.
    Manual,
    /// RFC 8628 device authorization.
    Device,
    /// Fetch the authorization URL ourselves; never prompt.
    NonInteractive,
    /// The client credentials grant (no person).
    ClientCredentials,
}

/// Everything a sign-in may use; the defaults suit an interactive CLI.
#[derive(Debug, Clone)]
pub struct SignInOptions {
    /// A pre-registered client ID.
    pub client_id: Option<String>,
    /// Its secret.
    pub client_secret: Option<String>,
    /// A client ID metadata document URL (used when the server supports CIMD).
    pub client_metadata_url: Option<String>,
    /// A key for `private_key_jwt`.
    pub private_key: Option<PrivateKey>,
    /// Force a token-endpoint auth method.
    pub token_endpoint_auth_method: Option<String>,
    /// Scopes to ask for (overrides the challenge and metadata).
    pub scope: Option<String>,
    /// How to get the grant.
    pub method: SignInMethod,
    /// Fixed loopback callback port.
    pub callback_port: Option<u16>,
    /// A fixed redirect URI (e.g. `urn:ietf:wg:oauth:2.0:oob` with `Manual`).
    pub redirect_uri: Option<String>,
    /// Endpoints from a config `auth` block (skips AS discovery).
    pub preset: Option<AuthBlock>,
    /// Whether [`Credentials`] calls may start a sign-in when none is
    /// usable (`mcpgate call`), or must fail asking for `mcpgate login`.
    pub may_sign_in: bool,
    /// When to refresh before expiry.
    pub refresh_margin: RefreshMargin,
    /// Step-up re-authorizations allowed per process.
    pub max_step_ups: u32,
    /// How long to wait for the browser callback.
    pub callback_timeout: Duration,
    /// The name registered with the authorization server.
    pub client_name: String,
    /// Sign in with a new DPoP key (RFC 9449); a sign-in made so keeps
    /// using its key whatever later runs say.
    pub dpop: bool,
    /// Sign in with the jwt-bearer grant (an ID-JAG or a workload token)
    /// instead of `method`. Such a sign-in has no refresh token, so every
    /// renewal is a new assertion: a long-running `bridge` stays signed in.
    pub assertion: Option<AssertionSignIn>,
}

/// A jwt-bearer sign-in: the client at the authorization server, and where
/// each new assertion comes from. The source is asked anew on every renewal
/// because a workload platform rotates its token file, and an ID-JAG is
/// single-use.
#[derive(Clone)]
pub struct AssertionSignIn {
    /// The pre-registered client presenting the assertion.
    pub client: AssertionClient,
    /// Reads or obtains the next assertion.
    pub source: Arc<dyn Fn() -> Result<Assertion, ClientError> + Send + Sync>,
}

impl std::fmt::Debug for AssertionSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSignIn")
            .field("client_id", &self.client.client_id)
            .finish_non_exhaustive()
    }
}

impl Default for SignInOptions {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            client_metadata_url: None,
            private_key: None,
            token_endpoint_auth_method: None,
            scope: None,
            method: SignInMethod::Browser,
            callback_port: None,
            redirect_uri: None,
            preset: None,
            may_sign_in: false,
            refresh_margin: RefreshMargin::default(),
            max_step_ups: 3,
            callback_timeout: Duration::from_secs(300),
            client_name: "mcpgate".into(),
            dpop: false,
            assertion: None,
        }
    }
}

/// Tokens for one MCP server, kept fresh.
pub struct TokenManager {
    http: reqwest::Client,
    server_url: Url,
    store: TokenStore,
    opts: SignInOptions,
    current: Mutex<Option<SignIn>>,
    step_ups: AtomicU32,
    /// The resource server's latest DPoP nonce, put in every proof.
    resource_nonce: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("server_url", &self.server_url)
            .finish()
    }
}

impl TokenManager {
    /// A manager for the MCP server at `server_url`.
    pub fn new(
        server_url: Url,
        store: TokenStore,
        opts: SignInOptions,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| ClientError::http("building an HTTP client", e))?;
        Ok(Self {
            http,
            server_url,
            store,
            opts,
            current: Mutex::new(None),
            step_ups: AtomicU32::new(0),
            resource_nonce: std::sync::Mutex::new(None),
        })
    }

    /// As an `Arc<dyn Credentials>` for the transports.
    pub fn into_credentials(self) -> Arc<dyn Credentials> {
        Arc::new(self)
    }

    /// The MCP server URL.
    pub fn server_url(&self) -> &Url {
        &self.server_url
    }

    /// The store used.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    fn login_hint(&self) -> String {
        format!("sign-in needed: run `mcpgate login {}`", self.server_url)
    }

    /// The stored sign-in for this server, if any.
    pub async fn stored(&self) -> Result<Option<SignIn>, ClientError> {
        let mut cur = self.current.lock().await;
        if cur.is_none() {
            *cur = self.store.find_for_url(&self.server_url)?;
        }
        Ok(cur.clone())
    }

    /// Signs in. Unless `force`, a usable stored sign-in holding `scopes`
    /// (perhaps just made by another process) is returned instead. Processes
    /// signing in to one server queue on a lock: one browser tab.
    pub async fn login(&self, extra_scopes: &[String], force: bool) -> Result<SignIn, ClientError> {
        let _lock = self
            .store
            .lock(&format!("login {}", self.server_url))
            .await?;
        if !force && let Some(s) = self.store.find_for_url(&self.server_url)? {
            let has_scopes = extra_scopes.iter().all(|x| s.tokens.scopes.contains(x));
            if has_scopes && !s.tokens.due(self.opts.refresh_margin) {
                *self.current.lock().await = Some(s.clone());
                return Ok(s);
            }
        }
        let s = signin::sign_in(self, extra_scopes).await?;
        *self.current.lock().await = Some(s.clone());
        Ok(s)
    }

    /// A fresh access token: the stored one, refreshed when it expires within
    /// the margin; a new sign-in only when allowed (`may_sign_in`).
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let s = match self.stored().await? {
            Some(s) => s,
            None if self.may_renew_without_person() => self.login(&[], false).await?,
            None => return Err(ClientError::NeedsPerson(self.login_hint())),
        };
        if !s.tokens.access_token.is_empty() && !s.tokens.due(self.opts.refresh_margin) {
            return Ok(s.tokens.access_token);
        }
        Ok(self
            .renew(Some(&s.tokens.access_token))
            .await?
            .tokens
            .access_token)
    }

    fn may_renew_without_person(&self) -> bool {
        self.opts.may_sign_in
            || self.opts.method == SignInMethod::ClientCredentials
            || self.opts.assertion.is_some()
    }

    /// Gets a new access token to replace `stale`: another process's newer
    /// one if it wrote one meanwhile, else a refresh, else (if allowed) a
    /// new sign-in. Refreshes of one sign-in are serialized across processes.
    pub async fn renew(&self, stale: Option<&str>) -> Result<SignIn, ClientError> {
        let Some(known) = self.stored().await? else {
            // Nothing stored: another process may be signing in to this server
            // right now (two app windows after a 401). Waiting on its login
            // lock and using its sign-in keeps it to one browser tab.
            return if self.may_renew_without_person() {
                self.login(&[], false).await
            } else {
                Err(ClientError::NeedsPerson(self.login_hint()))
            };
        };
        let key = crate::store::key_of(&known.issuer, &known.resource);
        let lock = self.store.lock(&key).await?;
        // Someone else may have refreshed while we waited for the lock.
        let latest = self
            .store
            .load(&known.issuer, &known.resource)?
            .unwrap_or(known);
        // A token other than the one we found stale was written by another
        // process that held this lock: use it unless it has actually expired.
        if Some(latest.tokens.access_token.as_str()) != stale
            && !latest.tokens.access_token.is_empty()
            && !latest.tokens.expires_within(0)
        {
            *self.current.lock().await = Some(latest.clone());
            return Ok(latest);
        }
        let result = match (&latest.tokens.refresh_token, latest.grant) {
            (_, Grant::ClientCredentials) => signin::client_credentials_again(self, &latest).await,
            (_, Grant::JwtBearer) if self.opts.assertion.is_some() => {
                signin::sign_in(self, &latest.tokens.scopes).await
            }
            (None, Grant::JwtBearer) => Err(ClientError::Config(format!(
                "the sign-in to {} was made with an assertion (jwt-bearer) and has no refresh token: run again with the same --id-jag or --workload-token-* flags",
                latest.resource
            ))),
            (Some(rt), _) => self.refresh_with(&latest, rt).await,
            (None, _) => Err(ClientError::RefreshRejected(
                "no refresh token was issued".into(),
            )),
        };
        match result {
            Ok(s) => {
                self.store.save(&s)?;
                *self.current.lock().await = Some(s.clone());
                Ok(s)
            }
            Err(e @ (ClientError::RefreshRejected(_) | ClientError::InvalidClient(_))) => {
                // Only a dynamic registration is ours to forget; a pre-registered
                // or CIMD client ID stays what the person configured.
                if matches!(e, ClientError::InvalidClient(_))
                    && latest.registration.source == RegistrationSource::Dynamic
                {
                    self.store.delete_registration(&latest.issuer)?;
                }
                drop(lock);
                tracing::info!(error = %e, "refresh failed; a new sign-in is needed");
                // A machine (client credentials) signs in again without a person.
                if self.may_renew_without_person() {
                    let scopes = latest.tokens.scopes.clone();
                    self.sign_in_again(&scopes).await
                } else {
                    Err(ClientError::NeedsPerson(format!(
                        "{e}. {}",
                        self.login_hint()
                    )))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The authorization servers the server's protected-resource metadata
    /// names now, when the stored sign-in's issuer is not among them: the
    /// resource moved to another authorization server (SEP-2352). `None`
    /// when it did not, or when the metadata cannot be read (then the 401 is
    /// handled as an expired token).
    async fn moved(&self, s: &SignIn, challenge: Option<&str>) -> Option<Vec<String>> {
        let challenge = challenge.and_then(BearerChallenge::parse);
        let found = crate::discovery::fetch_resource_metadata(
            &self.http,
            &self.server_url,
            challenge.as_ref(),
        )
        .await;
        match found {
            Ok(Some((_, prm))) if !prm.authorization_servers.iter().any(|a| s.issuer == *a) => {
                Some(prm.authorization_servers)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("protected-resource metadata after a 401: {e}");
                None
            }
        }
    }

    /// Signs in with the authorization server the resource names now; the
    /// old sign-in and registration stay, kept under their issuer.
    async fn signin_elsewhere(&self, old: &SignIn, now: &[String]) -> Result<SignIn, ClientError> {
        tracing::info!(
            "{} now names {} as its authorization server, not {}; signing in there",
            self.server_url,
            now.join(", "),
            old.issuer
        );
        if !self.may_renew_without_person() {
            return Err(ClientError::NeedsPerson(format!(
                "{} moved to another authorization server ({}): {}",
                self.server_url,
                now.join(", "),
                self.login_hint()
            )));
        }
        // The old scopes belong to the old authorization server.
        self.login(&[], true).await
    }

    async fn sign_in_again(&self, scopes: &[String]) -> Result<SignIn, ClientError> {
        if self.may_renew_without_person() {
            self.login(scopes, true).await
        } else {
            Err(ClientError::NeedsPerson(self.login_hint()))
        }
    }

    async fn refresh_with(&self, s: &SignIn, refresh_token: &str) -> Result<SignIn, ClientError> {
        let endpoint =
            s.auth_server.token_endpoint.as_deref().ok_or_else(|| {
                ClientError::Unsafe(format!("{} has no token_endpoint", s.issuer))
            })?;
        let key = s.tokens.proof_key()?;
        let auth = ClientAuth {
            dpop: key.as_ref(),
            registration: &s.registration,
            private_key: self.opts.private_key.as_ref(),
        };
        let r = crate::oauth::token_request(
            &self.http,
            endpoint,
            auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("resource", &s.resource),
            ],
        )
        .await;
        let t = match r {
            Ok(t) => t,
            Err(ClientError::OAuth { error, description }) if error == "invalid_grant" => {
                return Err(ClientError::RefreshRejected(format!(
                    "invalid_grant{description}"
                )));
            }
            Err(e) => return Err(e),
        };
        let mut next = s.clone();
        next.tokens = tokens_from(t, Some(&s.tokens));
        Ok(next)
    }

    /// Revokes (RFC 7009, when the server offers it) and forgets the sign-in.
    /// Returns whether anything was stored, and any revocation error.
    pub async fn logout(&self) -> Result<(bool, Option<String>), ClientError> {
        let Some(s) = self.stored().await? else {
            return Ok((false, None));
        };
        let mut problem = None;
        if let Some(endpoint) = &s.auth_server.revocation_endpoint {
            let auth = ClientAuth {
                dpop: None,
                registration: &s.registration,
                private_key: self.opts.private_key.as_ref(),
            };
            if let Some(rt) = &s.tokens.refresh_token
                && let Err(e) =
                    crate::oauth::revoke(&self.http, endpoint, auth, rt, "refresh_token").await
            {
                problem = Some(e.to_string());
            }
            if !s.tokens.access_token.is_empty()
                && let Err(e) = crate::oauth::revoke(
                    &self.http,
                    endpoint,
                    auth,
                    &s.tokens.access_token,
                    "access_token",
                )
                .await
            {
                problem.get_or_insert(e.to_string());
            }
        } else {
            problem = Some(format!(
                "{} has no revocation endpoint; the tokens stay valid until they expire",
                s.issuer
            ));
        }
        self.store.delete(&s.issuer, &s.resource)?;
        *self.current.lock().await = None;
        Ok((true, problem))
    }

    async fn step_up(&self, challenge: &str) -> Result<SignIn, ClientError> {
        let c = BearerChallenge::parse(challenge).unwrap_or_default();
        let held = self
            .stored()
            .await?
            .map(|s| s.tokens.scopes)
            .unwrap_or_default();
        let mut want = held.clone();
        for s in c.scopes() {
            if !want.contains(&s) {
                want.push(s);
            }
        }
        let attempt = self.step_ups.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt > self.opts.max_step_ups {
            return Err(ClientError::NeedsPerson(format!(
                "the server still wants more scope ({}) after {} re-authorizations; \
                 ask its administrator to grant it",
                c.scope.unwrap_or_default(),
                self.opts.max_step_ups
            )));
        }
        if !self.may_renew_without_person() {
            return Err(ClientError::NeedsPerson(format!(
                "this needs more scope: run `mcpgate login {} --scope \"{}\"`",
                self.server_url,
                want.join(" ")
            )));
        }
        eprintln!(
            "The server needs more scope ({}); signing in again for: {}",
            c.scope.as_deref().unwrap_or(""),
            want.join(" ")
        );
        self.login(&want, true).await
    }
}

fn bearer(s: &SignIn) -> Option<String> {
    Some(s.tokens.authorization())
}

impl Credentials for TokenManager {
    fn authorization(&self) -> BoxFuture<'_, Result<Option<String>, CredentialsError>> {
        Box::pin(async move {
            let t = self.access_token().await?;
            let bound = self
                .stored()
                .await?
                .is_some_and(|s| s.tokens.dpop_key.is_some());
            let scheme = if bound { "DPoP" } else { "Bearer" };
            Ok(Some(format!("{scheme} {t}")))
        })
    }

    // The trait's boxed-future signature, repeated as `dyn Credentials` needs.
    fn proof<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        authorization: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        Box::pin(async move {
            let Some(token) = authorization.strip_prefix("DPoP ") else {
                return Ok(None);
            };
            let Some(key) = self
                .stored()
                .await?
                .map(|s| s.tokens.proof_key())
                .transpose()?
                .flatten()
            else {
                return Ok(None);
            };
            let nonce = self
                .resource_nonce
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            key.proof(method, url, Some(token), nonce.as_deref())
                .map(Some)
                .map_err(|e| CredentialsError::new(e.to_string()))
        })
    }

    fn dpop_nonce(&self, nonce: &str) -> bool {
        *self
            .resource_nonce
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(nonce.to_owned());
        true
    }

    fn unauthorized<'a>(
        &'a self,
        challenge: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        Box::pin(async move {
            let stored = self.stored().await?;
            if let Some(s) = &stored
                && let Some(now) = self.moved(s, challenge).await
            {
                let s = self.signin_elsewhere(s, &now).await?;
                return Ok(bearer(&s));
            }
            let stale = stored.map(|s| s.tokens.access_token);
            let s = self.renew(stale.as_deref()).await?;
            Ok(bearer(&s))
        })
    }

    fn insufficient_scope<'a>(
        &'a self,
        challenge: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        Box::pin(async move {
            let s = self.step_up(challenge).await?;
            Ok(bearer(&s))
        })
    }
}
