//! Identity federation's rows: external identities linked to local users, the
//! IdP tokens kept per user and provider (sealed, with expiry and a "revoked,
//! sign in again" mark), and the sign-ins in flight toward an IdP (their PKCE
//! verifier and nonce sealed, single use).

use mcpgate_types::{ScopeSet, Subject};
use std::time::{Duration, SystemTime};

use crate::Row as SqliteRow;
use sqlx::Row as _;

use crate::Store;
use crate::api_keys::split_scopes;
use crate::oauth::digest_hex;
use crate::seal::{MasterKey, SealError};
use crate::time::{from_unix, to_unix};
use crate::vault::{VaultError, VaultSecret, check_label, open_b64, seal_b64};

/// The additional data an IdP token is sealed with: its row and which token.
pub(crate) fn token_aad(subject: &str, provider: &str, which: &str) -> Vec<u8> {
    format!("mcpgate federation v1\0{subject}\0{provider}\0{which}").into_bytes()
}

pub(crate) fn login_aad(state_digest: &str, provider: &str) -> Vec<u8> {
    format!("mcpgate federation login v1\0{state_digest}\0{provider}").into_bytes()
}

/// An external identity linked to a local user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederatedIdentity {
    /// The configured provider's name.
    pub provider: String,
    /// The IdP's stable subject (OIDC `sub`, GitHub's numeric user id).
    pub external_subject: Subject,
    /// The local user it signs in as.
    pub subject: Subject,
    /// The verified email the IdP gave at the last sign-in.
    pub email: Option<String>,
    /// The IdP's login name (GitHub login, `preferred_username`).
    pub login: Option<String>,
    /// When it was linked.
    pub created_at: SystemTime,
    /// The last sign-in through it.
    pub last_login_at: SystemTime,
}

impl FederatedIdentity {
    fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(FederatedIdentity {
            provider: r.try_get("provider")?,
            external_subject: crate::decode::parsed(r, "external_subject")?,
            subject: crate::decode::parsed(r, "subject")?,
            email: r.try_get("email")?,
            login: r.try_get("login")?,
            created_at: from_unix(r.try_get("created_at")?),
            last_login_at: from_unix(r.try_get("last_login_at")?),
        })
    }
}

/// One user's tokens from one IdP.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FederatedTokens {
    /// The IdP access token.
    pub access: VaultSecret,
    /// The IdP refresh token, when it gave one.
    pub refresh: Option<VaultSecret>,
    /// The scopes the IdP granted.
    pub scopes: ScopeSet,
    /// When the access token expires (`None`: the IdP did not say).
    pub expires_at: Option<SystemTime>,
    /// When the IdP refused them; the user must sign in again.
    pub revoked_at: Option<SystemTime>,
}

/// New tokens from an IdP, to store.
#[derive(Debug, Clone, Copy)]
pub struct NewTokens<'a> {
    /// The access token.
    pub access: &'a str,
    /// The refresh token.
    pub refresh: Option<&'a str>,
    /// With `refresh` `None`: keep the stored refresh token (a refresh answer
    /// may omit it) rather than drop it (a new sign-in without one).
    pub keep_refresh: bool,
    /// The granted scopes.
    pub scopes: &'a ScopeSet,
    /// When the access token expires.
    pub expires_at: Option<SystemTime>,
}

/// A sign-in in flight, as [`Store::take_federation_login`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederationLogin {
    /// The provider it went to.
    pub provider: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The OIDC nonce.
    pub nonce: String,
    /// Where the browser returns afterwards.
    pub return_to: String,
}

impl Store {
    /// The link of `(provider, external_subject)`, if any.
    pub async fn find_federated_identity(
        &self,
        provider: &str,
        external_subject: &Subject,
    ) -> Result<Option<FederatedIdentity>, VaultError> {
        let row = sqlx::query(
            "SELECT provider, external_subject, subject, email, login, created_at, last_login_at
             FROM federated_identities WHERE provider = $1 AND external_subject = $2",
        )
        .bind(provider)
        .bind(external_subject.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(FederatedIdentity::from_row).transpose()?)
    }

    /// Every external identity linked to local user `subject`.
    // Spelt-out SQL, shaped like other tables' (why: the crate docs).
    pub async fn federated_identities_of(
        &self,
        subject: &str,
    ) -> Result<Vec<FederatedIdentity>, VaultError> {
        let rows = sqlx::query(
            "SELECT provider, external_subject, subject, email, login, created_at, last_login_at
             FROM federated_identities WHERE subject = $1 ORDER BY provider",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, FederatedIdentity::from_row)
    }

    /// Links `(provider, external_subject)` to `subject` (or records a new
    /// sign-in through an existing link, refreshing its email and login).
    pub async fn link_federated_identity(
        &self,
        provider: &str,
        external_subject: &Subject,
        subject: &Subject,
        email: Option<&str>,
        login: Option<&str>,
    ) -> Result<(), VaultError> {
        check_label("provider", provider)?;
        check_label("external subject", external_subject)?;
        check_label("subject", subject)?;
        let now = to_unix(SystemTime::now());
        sqlx::query(
            "INSERT INTO federated_identities
                 (provider, external_subject, subject, email, login, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (provider, external_subject) DO UPDATE SET
                 subject = excluded.subject, email = excluded.email, login = excluded.login,
                 last_login_at = excluded.last_login_at",
        )
        .bind(provider)
        .bind(external_subject.as_str())
        .bind(subject.as_str())
        .bind(email.map(str::to_ascii_lowercase))
        .bind(login)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The local user whose email is `email` (compared case-insensitively).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<String>, VaultError> {
        let row = sqlx::query("SELECT name FROM users WHERE email = $1 ORDER BY name LIMIT 1")
            .bind(email.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    /// Local user `name`'s email, if one is recorded.
    pub async fn user_email(&self, name: &str) -> Result<Option<String>, VaultError> {
        let row = sqlx::query("SELECT email FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("email"))
            .transpose()?
            .flatten())
    }

    /// Sets (or clears) local user `name`'s email, used to map federated sign-ins.
    pub async fn set_user_email(&self, name: &str, email: Option<&str>) -> Result<(), VaultError> {
        let done = sqlx::query("UPDATE users SET email = $1, updated_at = $2 WHERE name = $3")
            .bind(email.map(str::to_ascii_lowercase))
            .bind(to_unix(SystemTime::now()))
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(crate::StoreError::NotFound {
                kind: crate::Kind::User,
                name: name.to_owned(),
            }
            .into());
        }
        Ok(())
    }

    /// Creates local user `name` for a federated sign-in: its password is
    /// random and never shown, so it signs in only through its IdP (until an
    /// operator sets a password with `mcpgate users`).
    pub async fn create_federated_user(
        &self,
        name: &str,
        email: Option<&str>,
        scopes: &ScopeSet,
    ) -> Result<(), VaultError> {
        let password = crate::random::string_from(crate::random::ALPHANUMERIC, 40);
        self.add_user(name, &password, scopes).await?;
        if email.is_some() {
            self.set_user_email(name, email).await?;
        }
        Ok(())
    }

    /// Stores `subject`'s tokens from `provider`, sealed under `key`, and clears
    /// a revocation mark.
    pub async fn put_federated_tokens(
        &self,
        key: &MasterKey,
        subject: &str,
        provider: &str,
        tokens: NewTokens<'_>,
    ) -> Result<(), VaultError> {
        check_label("subject", subject)?;
        check_label("provider", provider)?;
        let what = || format!("the {provider} tokens of {subject:?}");
        let access = seal_b64(
            key,
            tokens.access.as_bytes(),
            &token_aad(subject, provider, "access"),
            what,
        )?;
        let refresh = tokens
            .refresh
            .map(|r| {
                seal_b64(
                    key,
                    r.as_bytes(),
                    &token_aad(subject, provider, "refresh"),
                    what,
                )
            })
            .transpose()?;
        let scopes = tokens.scopes.to_string();
        let now = to_unix(SystemTime::now());
        sqlx::query(
            "INSERT INTO federated_tokens
                 (subject, provider, access_sealed, refresh_sealed, key_id, scopes, expires_at, revoked_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)
             ON CONFLICT (subject, provider) DO UPDATE SET
                 access_sealed = excluded.access_sealed,
                 refresh_sealed = CASE WHEN $9 = 1
                     THEN COALESCE(excluded.refresh_sealed, federated_tokens.refresh_sealed)
                     ELSE excluded.refresh_sealed END,
                 key_id = excluded.key_id, scopes = excluded.scopes,
                 expires_at = excluded.expires_at, revoked_at = NULL,
                 updated_at = excluded.updated_at",
        )
        .bind(subject)
        .bind(provider)
        .bind(access)
        .bind(refresh)
        .bind(i64::from(key.id()))
        .bind(scopes)
        .bind(tokens.expires_at.map(to_unix))
        .bind(now)
        .bind(i64::from(tokens.keep_refresh))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `subject`'s tokens from `provider`, if any (also when revoked: look at
    /// `revoked_at`).
    pub async fn federated_tokens(
        &self,
        key: &MasterKey,
        subject: &str,
        provider: &str,
    ) -> Result<Option<FederatedTokens>, VaultError> {
        let row = sqlx::query(
            "SELECT access_sealed, refresh_sealed, scopes, expires_at, revoked_at
             FROM federated_tokens WHERE subject = $1 AND provider = $2",
        )
        .bind(subject)
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let what = || format!("the {provider} tokens of {subject:?}");
        let text = |plain: Vec<u8>| {
            String::from_utf8(plain).map_err(|_| VaultError::Seal {
                what: what(),
                source: SealError::Damaged,
            })
        };
        let access = open_b64(
            key,
            &r.try_get::<String, _>("access_sealed")?,
            &token_aad(subject, provider, "access"),
            what,
        )
        .and_then(text)?;
        let refresh = match r.try_get::<Option<String>, _>("refresh_sealed")? {
            Some(s) => Some(
                open_b64(key, &s, &token_aad(subject, provider, "refresh"), what).and_then(text)?,
            ),
            None => None,
        };
        Ok(Some(FederatedTokens {
            access: VaultSecret::from_plain(access),
            refresh: refresh.map(VaultSecret::from_plain),
            scopes: split_scopes(&r.try_get::<String, _>("scopes")?),
            expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_unix),
            revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(from_unix),
        }))
    }

    /// Marks `subject`'s tokens from `provider` as refused by the IdP: they are
    /// not used again, and the user's next authorization goes through the IdP.
    pub async fn mark_federated_revoked(
        &self,
        subject: &str,
        provider: &str,
    ) -> Result<bool, VaultError> {
        let now = to_unix(SystemTime::now());
        let done = sqlx::query(
            "UPDATE federated_tokens SET revoked_at = $1, updated_at = $1
             WHERE subject = $2 AND provider = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(subject)
        .bind(provider)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The providers whose tokens for `subject` are marked revoked.
    pub async fn revoked_federations_of(&self, subject: &str) -> Result<Vec<String>, VaultError> {
        let rows = sqlx::query(
            "SELECT provider FROM federated_tokens
             WHERE subject = $1 AND revoked_at IS NOT NULL ORDER BY provider",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("provider"))
            .collect::<Result<_, _>>()?)
    }

    /// Records a sign-in toward `provider` under `state` (kept as a digest),
    /// its verifier and nonce sealed; it expires after `ttl`.
    pub async fn begin_federation_login(
        &self,
        key: &MasterKey,
        state: &str,
        login: &FederationLogin,
        ttl: Duration,
    ) -> Result<(), VaultError> {
        let digest = digest_hex(state);
        let plain = format!("{}\0{}", login.verifier, login.nonce);
        let sealed = seal_b64(
            key,
            plain.as_bytes(),
            &login_aad(&digest, &login.provider),
            || "a federated sign-in".into(),
        )?;
        let now = SystemTime::now();
        sqlx::query(
            "INSERT INTO federation_logins
                 (state_digest, provider, sealed, key_id, return_to, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(digest)
        .bind(&login.provider)
        .bind(sealed)
        .bind(i64::from(key.id()))
        .bind(&login.return_to)
        .bind(to_unix(now))
        .bind(to_unix(now + ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes (single use) the sign-in recorded under `state`; `None` when it
    /// is unknown, used or expired.
    pub async fn take_federation_login(
        &self,
        key: &MasterKey,
        state: &str,
    ) -> Result<Option<FederationLogin>, VaultError> {
        let digest = digest_hex(state);
        let row = sqlx::query(
            "DELETE FROM federation_logins WHERE state_digest = $1
             RETURNING provider, sealed, return_to, expires_at",
        )
        .bind(&digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        if r.try_get::<i64, _>("expires_at")? < to_unix(SystemTime::now()) {
            return Ok(None);
        }
        let provider: String = r.try_get("provider")?;
        let plain = open_b64(
            key,
            &r.try_get::<String, _>("sealed")?,
            &login_aad(&digest, &provider),
            || "a federated sign-in".into(),
        )?;
        let damaged = || VaultError::Seal {
            what: "a federated sign-in".into(),
            source: SealError::Damaged,
        };
        let text = String::from_utf8(plain).map_err(|_| damaged())?;
        let (verifier, nonce) = text.split_once('\0').ok_or_else(damaged)?;
        Ok(Some(FederationLogin {
            provider,
            verifier: verifier.to_owned(),
            nonce: nonce.to_owned(),
            return_to: r.try_get("return_to")?,
        }))
    }

    /// Deletes sign-ins in flight that expired before `now`.
    pub async fn purge_federation_logins(&self, now: SystemTime) -> Result<u64, VaultError> {
        let done = sqlx::query("DELETE FROM federation_logins WHERE expires_at < $1")
            .bind(to_unix(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

impl FederationLogin {
    /// A sign-in toward `provider`.
    pub fn new(provider: &str, verifier: &str, nonce: &str, return_to: &str) -> Self {
        FederationLogin {
            provider: provider.to_owned(),
            verifier: verifier.to_owned(),
            nonce: nonce.to_owned(),
            return_to: return_to.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
