//! Where sign-ins live between runs: one record per (issuer, resource) with
//! the tokens, their absolute expiry, the authorization-server metadata and
//! the client registration, so a restart never forces a new sign-in.
//!
//! Secrets go to the OS keyring when one answers; otherwise (and always with
//! `MCPGATE_HOME`) they stay in the record file. Files live in a 0700
//! directory, are 0600 and are replaced atomically (temp file + rename). The
//! path does not depend on the version of mcpgate. A lock file per key lets
//! concurrent processes refresh once and open one browser tab.

#[cfg(test)]
mod tests;

mod files;
mod keyring_backend;

use std::path::{Path, PathBuf};

use mcpgate_types::Issuer;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use url::Url;

use crate::error::ClientError;
use crate::metadata::AuthServerMetadata;
use crate::registration::ClientRegistration;

pub use crate::clock::now_secs;
pub use files::StoreLock;

/// The tokens of one sign-in.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any (kept when a refresh answer omits a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Absolute expiry (seconds since the epoch); `None`: the server gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When the access token was received (seconds since the epoch), so a
    /// default refresh margin can be kept below half the token's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// Scopes held.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The DPoP key the tokens are bound to (base64url PKCS#8), a secret
    /// like the refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("dpop", &self.dpop_key.is_some())
            .finish()
    }
}

impl Tokens {
    /// The DPoP key the tokens are bound to, if they are.
    pub fn proof_key(&self) -> Result<Option<mcpgate_dpop::ProofKey>, ClientError> {
        use base64::Engine as _;
        let Some(k) = &self.dpop_key else {
            return Ok(None);
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(k)
            .ok()
            .and_then(|der| mcpgate_dpop::ProofKey::from_pkcs8(&der).ok())
            .map(Some)
            .ok_or_else(|| {
                ClientError::Store(
                    "the stored DPoP key is damaged: sign in again with `mcpgate login --dpop`"
                        .into(),
                )
            })
    }

    /// The `Authorization` value for the access token: `DPoP` when bound.
    pub fn authorization(&self) -> String {
        let scheme = if self.dpop_key.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        format!("{scheme} {}", self.access_token)
    }

    /// Whether the access token expires within `margin` seconds.
    pub fn expires_within(&self, margin: u64) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now_secs().saturating_add(margin))
    }

    /// Whether the access token is due for a refresh: within `margin` of
    /// expiry when the margin was chosen explicitly, else within the default
    /// margin capped at half the token's lifetime — a 5-minute token (a
    /// common IdP default) would otherwise be refreshed on every use.
    pub fn due(&self, margin: RefreshMargin) -> bool {
        match margin {
            RefreshMargin::Exactly(m) => self.expires_within(m.as_secs()),
            RefreshMargin::AtMost(m) => {
                let lifetime = match (self.issued_at, self.expires_at) {
                    (Some(i), Some(e)) => e.saturating_sub(i),
                    _ => u64::MAX,
                };
                self.expires_within(m.as_secs().min(lifetime / 2))
            }
        }
    }
}

/// How long before expiry an access token is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMargin {
    /// This long before expiry, whatever the token's lifetime.
    Exactly(std::time::Duration),
    /// This long before expiry, but never more than half the token's lifetime.
    AtMost(std::time::Duration),
}

impl Default for RefreshMargin {
    fn default() -> Self {
        RefreshMargin::AtMost(std::time::Duration::from_secs(300))
    }
}

/// How the tokens were obtained (decides how to get new ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Authorization code with PKCE (browser, manual paste or non-interactive).
    AuthorizationCode,
    /// RFC 8628 device authorization.
    DeviceCode,
    /// Client credentials (no person involved: renewed without asking).
    ClientCredentials,
    /// The JWT bearer grant with an ID-JAG or a workload token
    /// (`assertion_grant.rs`): renewed with a new assertion, no refresh token.
    JwtBearer,
}

/// One sign-in: what a restart needs to go on without asking anyone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignIn {
    /// The authorization server's issuer.
    #[serde(deserialize_with = "crate::registration::stored_issuer")]
    pub issuer: Issuer,
    /// The RFC 8707 resource the tokens are for.
    pub resource: String,
    /// The MCP server URL signed in to.
    pub server_url: String,
    /// Where the protected-resource metadata was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata_url: Option<String>,
    /// The authorization server's metadata at sign-in time.
    pub auth_server: AuthServerMetadata,
    /// The client registration used.
    pub registration: ClientRegistration,
    /// How the tokens were obtained.
    pub grant: Grant,
    /// The tokens.
    pub tokens: Tokens,
    /// When this record was last written (seconds since the epoch).
    #[serde(default)]
    pub updated_at: u64,
    /// The same in milliseconds: which of two sign-ins to one server is the
    /// newer, when both were written within a second.
    #[serde(default)]
    pub updated_ms: u64,
}

/// The storage key of an (issuer, resource) pair: a digest, so file names
/// stay short and reveal nothing.
pub fn key_of(issuer: &str, resource: &str) -> String {
    digest(&format!("{issuer}\n{resource}"))
}

fn digest(s: &str) -> String {
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Where secrets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In the record files (0600).
    File,
    /// In the OS keyring; the files hold everything else.
    Keyring,
}

/// The token store.
#[derive(Debug, Clone)]
pub struct TokenStore {
    home: PathBuf,
    backend: Backend,
}

impl TokenStore {
    /// The store of this user: `MCPGATE_HOME` (files only) if set, else
    /// `<config dir>/mcpgate` (e.g. `~/.config/mcpgate`), with secrets in the
    /// OS keyring when it answers. `MCPGATE_TOKEN_STORE=file` forces files.
    pub fn open_default() -> Result<Self, ClientError> {
        if let Some(home) = std::env::var_os("MCPGATE_HOME").filter(|h| !h.is_empty()) {
            return Self::open_dir(PathBuf::from(home));
        }
        let base = dirs::config_dir().ok_or_else(|| {
            ClientError::Store(
                "no configuration directory for this user; set MCPGATE_HOME=DIR".into(),
            )
        })?;
        let mut store = Self::open_dir(base.join("mcpgate"))?;
        let forced_file = std::env::var("MCPGATE_TOKEN_STORE").is_ok_and(|v| v == "file");
        if !forced_file && keyring_backend::usable() {
            store.backend = Backend::Keyring;
        }
        Ok(store)
    }

    /// A file-only store in `dir` (created 0700).
    pub fn open_dir(dir: PathBuf) -> Result<Self, ClientError> {
        files::ensure_private_dir(&dir)?;
        Ok(Self {
            home: dir,
            backend: Backend::File,
        })
    }

    /// The directory holding the store.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where secrets are kept.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn session_path(&self, key: &str) -> PathBuf {
        self.home.join("sessions").join(format!("{key}.json"))
    }

    fn registration_path(&self, issuer: &str) -> PathBuf {
        self.home
            .join("registrations")
            .join(format!("{}.json", digest(issuer)))
    }

    /// The sign-in for (issuer, resource), if stored.
    pub fn load(&self, issuer: &str, resource: &str) -> Result<Option<SignIn>, ClientError> {
        let key = key_of(issuer, resource);
        self.load_key(&key)
    }

    fn load_key(&self, key: &str) -> Result<Option<SignIn>, ClientError> {
        let Some(mut s) = files::read_json::<SignIn>(&self.session_path(key))? else {
            return Ok(None);
        };
        if self.backend == Backend::Keyring {
            keyring_backend::fill_signin(key, &mut s)?;
        }
        Ok(Some(s))
    }

    /// Writes a sign-in (replacing the one for the same issuer and resource).
    pub fn save(&self, signin: &SignIn) -> Result<(), ClientError> {
        let key = key_of(&signin.issuer, &signin.resource);
        let mut record = signin.clone();
        record.updated_at = now_secs();
        record.updated_ms = crate::clock::now_millis();
        if self.backend == Backend::Keyring {
            keyring_backend::take_signin_secrets(&key, &mut record)?;
        }
        files::write_json_atomic(&self.session_path(&key), &record)
    }

    /// Forgets a sign-in.
    pub fn delete(&self, issuer: &str, resource: &str) -> Result<(), ClientError> {
        let key = key_of(issuer, resource);
        if self.backend == Backend::Keyring {
            keyring_backend::delete(&key)?;
        }
        files::remove(&self.session_path(&key))
    }

    /// Every stored sign-in.
    pub fn list(&self) -> Result<Vec<SignIn>, ClientError> {
        let mut out = Vec::new();
        for key in files::list_keys(&self.home.join("sessions"))? {
            if let Some(s) = self.load_key(&key)? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.server_url.cmp(&b.server_url));
        Ok(out)
    }

    /// The sign-in to use for an MCP server URL: one made for exactly this
    /// URL, else one whose resource covers it.
    pub fn find_for_url(&self, url: &Url) -> Result<Option<SignIn>, ClientError> {
        let all = self.list()?;
        let norm = |s: &str| s.trim_end_matches('/').to_owned();
        let want = norm(url.as_str());
        // One server may hold sign-ins with several authorization servers
        // (it moved to another, SEP-2352): the latest one is in use.
        if let Some(s) = all
            .iter()
            .filter(|s| norm(&s.server_url) == want)
            .max_by_key(|s| (s.updated_at, s.updated_ms))
        {
            return Ok(Some(s.clone()));
        }
        Ok(all
            .into_iter()
            .filter(|s| crate::discovery::resource_covers(&s.resource, url))
            .max_by_key(|s| s.resource.len()))
    }

    /// The stored client registration for an issuer (dynamic or CIMD).
    pub fn load_registration(
        &self,
        issuer: &str,
    ) -> Result<Option<ClientRegistration>, ClientError> {
        let Some(mut reg) =
            files::read_json::<ClientRegistration>(&self.registration_path(issuer))?
        else {
            return Ok(None);
        };
        if reg.issuer != issuer {
            return Ok(None);
        }
        if self.backend == Backend::Keyring {
            keyring_backend::fill_registration(&digest(issuer), &mut reg)?;
        }
        Ok(Some(reg))
    }

    /// Remembers a client registration for its issuer.
    pub fn save_registration(&self, reg: &ClientRegistration) -> Result<(), ClientError> {
        let mut record = reg.clone();
        if self.backend == Backend::Keyring {
            keyring_backend::take_registration_secret(&digest(&reg.issuer), &mut record)?;
        }
        files::write_json_atomic(&self.registration_path(&reg.issuer), &record)
    }

    /// Forgets the registration for an issuer (after `invalid_client`).
    pub fn delete_registration(&self, issuer: &str) -> Result<(), ClientError> {
        if self.backend == Backend::Keyring {
            keyring_backend::delete(&format!("reg-{}", digest(issuer)))?;
            keyring_backend::delete(&format!("regtoken-{}", digest(issuer)))?;
        }
        files::remove(&self.registration_path(issuer))
    }

    /// Takes the cross-process lock `name` (waits for it). Sign-ins use the
    /// server URL's lock so that one process opens the browser while others
    /// wait and then read its tokens; refreshes use the record's key.
    pub async fn lock(&self, name: &str) -> Result<StoreLock, ClientError> {
        files::lock(&self.home.join("locks"), &digest(name)).await
    }
}
