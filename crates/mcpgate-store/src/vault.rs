//! The per-user credential vault: one secret per user and upstream (for
//! example a personal API key), sealed with AES-256-GCM under the
//! [`MasterKey`] and bound to its `(subject, upstream)` row, so that a sealed
//! value copied into another row does not open.
//!
//! [`Store::rotate_master_key`] re-seals everything sealed under the master key
//! (vault entries, federated IdP tokens, the authorization server's signing
//! keys) under a new key in one transaction: either every row moves to the new
//! key or none does.

mod rotate;

use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Row as _;
use subtle::ConstantTimeEq as _;

pub use rotate::Rotated;

use crate::Store;
use crate::error::StoreError;
use crate::seal::{MasterKey, SealError};
use crate::time::{from_unix, to_unix};

/// The largest secret the vault keeps (bytes).
pub const MAX_SECRET_LEN: usize = 8 * 1024;

/// Why a vault or federation operation failed. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed value cannot be opened (wrong master key, damage) or sealing failed.
    #[error("{what}: {source}")]
    Seal {
        /// Which value, e.g. "the vault secret of alice for upstream weather".
        what: String,
        /// The cause.
        source: SealError,
    },
    /// The secret is empty, too long, or holds control characters.
    #[error("{0}")]
    InvalidSecret(String),
    /// A subject, upstream or provider name that cannot be stored.
    #[error("invalid {kind} {name:?}: use 1 to 256 printable characters")]
    InvalidName {
        /// What was being named.
        kind: &'static str,
        /// The name given.
        name: String,
    },
}

impl VaultError {
    /// Whether this is a transient storage failure ([`StoreError::Unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VaultError::Store(e) if e.is_unavailable())
    }
}

impl From<sqlx::Error> for VaultError {
    fn from(e: sqlx::Error) -> Self {
        VaultError::Store(StoreError::from(e))
    }
}

/// A secret read back from the vault, zeroed when dropped. `Debug` and
/// `Display` never show it.
pub struct VaultSecret(SecretString);

impl Clone for VaultSecret {
    fn clone(&self) -> Self {
        VaultSecret::from_plain(self.expose().to_owned())
    }
}

/// In constant time, like every comparison of secrets here.
impl PartialEq for VaultSecret {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for VaultSecret {}

impl VaultSecret {
    pub(crate) fn from_plain(text: String) -> Self {
        VaultSecret(SecretString::from(text))
    }

    /// The secret itself, to hand to an upstream.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret as a plain `String`, for a caller that wraps it in its own
    /// secret type; this copy is not zeroed on drop.
    pub fn into_inner(self) -> String {
        self.0.expose_secret().to_owned()
    }
}

// `SecretString`'s own Debug says only "SecretBox<str>([REDACTED])"; this
// names the type.
impl fmt::Debug for VaultSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultSecret(<redacted>)")
    }
}

/// What the vault holds for one user and upstream, without the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultEntry {
    /// The user.
    pub subject: mcpgate_types::Subject,
    /// The upstream the secret is for.
    pub upstream: String,
    /// When it was first stored.
    pub created_at: SystemTime,
    /// When it was last replaced.
    pub updated_at: SystemTime,
}

/// The additional data a vault value is sealed with: its row.
pub(crate) fn vault_aad(subject: &str, upstream: &str) -> Vec<u8> {
    format!("mcpgate vault v1\0{subject}\0{upstream}").into_bytes()
}

pub(crate) fn check_label(kind: &'static str, name: &str) -> Result<(), VaultError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(VaultError::InvalidName {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_secret(secret: &str) -> Result<(), VaultError> {
    if secret.is_empty() {
        return Err(VaultError::InvalidSecret("the secret is empty".into()));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(VaultError::InvalidSecret(format!(
            "the secret is longer than {MAX_SECRET_LEN} bytes"
        )));
    }
    if secret.chars().any(char::is_control) {
        return Err(VaultError::InvalidSecret(
            "the secret holds a line break or another control character; paste it on one line"
                .into(),
        ));
    }
    Ok(())
}

pub(crate) fn seal_b64(
    key: &MasterKey,
    plain: &[u8],
    aad: &[u8],
    what: impl FnOnce() -> String,
) -> Result<String, VaultError> {
    key.seal(plain, aad)
        .map(|s| STANDARD.encode(s))
        .map_err(|source| VaultError::Seal {
            what: what(),
            source,
        })
}

pub(crate) fn open_b64(
    key: &MasterKey,
    sealed: &str,
    aad: &[u8],
    what: impl Fn() -> String,
) -> Result<Vec<u8>, VaultError> {
    let bytes = STANDARD.decode(sealed).map_err(|_| VaultError::Seal {
        what: what(),
        source: SealError::Damaged,
    })?;
    key.open(&bytes, aad).map_err(|source| VaultError::Seal {
        what: what(),
        source,
    })
}

fn what_vault(subject: &str, upstream: &str) -> String {
    format!("the vault secret of {subject:?} for upstream {upstream:?}")
}

impl Store {
    /// Stores (or replaces) `subject`'s secret for `upstream`, sealed under `key`.
    pub async fn vault_put(
        &self,
        key: &MasterKey,
        subject: &str,
        upstream: &str,
        secret: &str,
    ) -> Result<(), VaultError> {
        check_label("subject", subject)?;
        check_label("upstream", upstream)?;
        check_secret(secret)?;
        let sealed = seal_b64(
            key,
            secret.as_bytes(),
            &vault_aad(subject, upstream),
            || what_vault(subject, upstream),
        )?;
        let now = to_unix(SystemTime::now());
        sqlx::query(
            "INSERT INTO vault_secrets (subject, upstream, sealed, key_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (subject, upstream)
             DO UPDATE SET sealed = excluded.sealed, key_id = excluded.key_id, updated_at = excluded.updated_at",
        )
        .bind(subject)
        .bind(upstream)
        .bind(sealed)
        .bind(i64::from(key.id()))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `subject`'s secret for `upstream`, `None` when they have not stored one.
    pub async fn vault_get(
        &self,
        key: &MasterKey,
        subject: &str,
        upstream: &str,
    ) -> Result<Option<VaultSecret>, VaultError> {
        let row =
            sqlx::query("SELECT sealed FROM vault_secrets WHERE subject = $1 AND upstream = $2")
                .bind(subject)
                .bind(upstream)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: String = row.try_get("sealed")?;
        let plain = open_b64(key, &sealed, &vault_aad(subject, upstream), || {
            what_vault(subject, upstream)
        })?;
        let text = String::from_utf8(plain).map_err(|_| VaultError::Seal {
            what: what_vault(subject, upstream),
            source: SealError::Damaged,
        })?;
        Ok(Some(VaultSecret::from_plain(text)))
    }

    /// Deletes `subject`'s secret for `upstream`; whether there was one.
    pub async fn vault_delete(&self, subject: &str, upstream: &str) -> Result<bool, VaultError> {
        let done = sqlx::query("DELETE FROM vault_secrets WHERE subject = $1 AND upstream = $2")
            .bind(subject)
            .bind(upstream)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// What `subject` keeps in the vault, by upstream (no secrets).
    pub async fn vault_list(&self, subject: &str) -> Result<Vec<VaultEntry>, VaultError> {
        let rows = sqlx::query(
            "SELECT subject, upstream, created_at, updated_at FROM vault_secrets
             WHERE subject = $1 ORDER BY upstream",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VaultEntry {
                    subject: crate::api_keys::decode_subject(r.try_get("subject")?)?,
                    upstream: r.try_get("upstream")?,
                    created_at: from_unix(r.try_get("created_at")?),
                    updated_at: from_unix(r.try_get("updated_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Refuses a master key that is not the one the stored secrets were sealed
    /// with, before anything is served: the error names both key ids and what
    /// to do. No row is changed.
    pub async fn check_master_key(&self, key: &MasterKey) -> Result<(), VaultError> {
        let row = sqlx::query(
            "SELECT key_id FROM vault_secrets WHERE key_id <> $1
             UNION ALL SELECT key_id FROM federated_tokens WHERE key_id <> $1
             LIMIT 1",
        )
        .bind(i64::from(key.id()))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            let sealed: i64 = row.try_get("key_id")?;
            return Err(VaultError::Seal {
                what: "the vault and federated tokens".into(),
                source: SealError::WrongKey {
                    sealed: u8::try_from(sealed).unwrap_or(0),
                    current: key.id(),
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
