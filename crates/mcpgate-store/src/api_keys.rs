//! API keys: generated here, shown once, stored as a SHA-256 digest.

use mcpgate_types::{ScopeSet, Subject};
use std::fmt;
use std::time::SystemTime;

use crate::Row as SqliteRow;
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::error::{Kind, StoreError};
use crate::time::{from_unix, to_unix};
use crate::{Store, check_name};

/// What every mcpgate API key starts with, so leaked keys can be scanned for.
pub const KEY_PREFIX: &str = "mcpg_";

/// Random base62 characters after [`KEY_PREFIX`] (≈ 238 bits).
pub(crate) const KEY_RANDOM_CHARS: usize = 40;

/// Random characters kept in the listed prefix (the rest is never stored).
const SHOWN_CHARS: usize = 6;

/// The SHA-256 digest of an API key: what the store keeps and looks keys up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `key`.
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.to_hex())
    }
}

/// An API key as stored: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyRecord {
    /// Unique name given at creation.
    pub name: String,
    /// The key's first characters (`mcpg_` and a few more), to recognise it.
    pub prefix: String,
    /// The subject a request with this key acts as.
    pub subject: Subject,
    /// Granted scopes (`*` grants every scope).
    pub scopes: ScopeSet,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

impl ApiKeyRecord {
    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    fn from_row(row: &SqliteRow) -> Result<ApiKeyRecord, sqlx::Error> {
        Ok(ApiKeyRecord {
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            subject: decode_subject(row.try_get("subject")?)?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            created_at: from_unix(row.try_get("created_at")?),
            expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(from_unix),
            revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_unix),
        })
    }
}

/// A stored subject: written from a [`Subject`], so one that does not parse
/// back was edited outside mcpgate, and is a decode error, not a caller.
pub(crate) fn decode_subject(s: String) -> Result<Subject, sqlx::Error> {
    Subject::try_from(s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A stored scope list. Read leniently: rows the authorization server wrote
/// before scopes were parsed on the way in may hold a word that is not an RFC
/// 6749 scope-token, and such a word could never have matched a scope anyway.
pub(crate) fn split_scopes(s: &str) -> ScopeSet {
    ScopeSet::from_words_lossy([s])
}

/// A fresh key: the prefix and [`KEY_RANDOM_CHARS`] base62 characters from
/// aws-lc-rs's CSPRNG.
fn generate_key() -> String {
    let mut key = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    key.push_str(KEY_PREFIX);
    key.push_str(&crate::random::string_from(
        crate::random::ALPHANUMERIC,
        KEY_RANDOM_CHARS,
    ));
    key
}

/// Whether `key` has the shape of a key this store generates.
pub(crate) fn well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == KEY_RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

impl Store {
    /// Creates a key named `name` acting as `subject` with `scopes`, valid
    /// until `expires_at` (or forever), and returns it. This is the only time
    /// the key exists outside the caller's hands: only its digest is stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        subject: &Subject,
        scopes: &ScopeSet,
        expires_at: Option<SystemTime>,
    ) -> Result<String, StoreError> {
        check_name(Kind::ApiKey, name)?;
        check_subject_len(subject)?;
        let scopes = scopes.to_string();
        let key = generate_key();
        let prefix = &key[..KEY_PREFIX.len() + SHOWN_CHARS];
        sqlx::query(
            "INSERT INTO api_keys (name, prefix, digest, subject, scopes, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(name)
        .bind(prefix)
        .bind(KeyDigest::of(&key).to_hex())
        .bind(subject.as_str())
        .bind(scopes)
        .bind(to_unix(SystemTime::now()))
        .bind(expires_at.map(to_unix))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert(e, Kind::ApiKey, name))?;
        Ok(key)
    }

    /// Every key, revoked and expired ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, prefix, subject, scopes, created_at, expires_at, revoked_at
             FROM api_keys ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, ApiKeyRecord::from_row)
    }

    /// Revokes the key named `name`: it fails from the next verification on.
    /// Returns `false` when it was revoked already (the first time is kept).
    pub async fn revoke_api_key(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(to_unix(SystemTime::now()))
        .bind(name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let exists = sqlx::query("SELECT 1 FROM api_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            Ok(false)
        } else {
            Err(StoreError::NotFound {
                kind: Kind::ApiKey,
                name: name.to_owned(),
            })
        }
    }

    /// The key with this digest, revoked and expired ones included (the
    /// caller decides, and can say why it refuses).
    // Spelt-out SQL, shaped like other tables' (why: the crate docs).
    pub async fn find_api_key(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, prefix, subject, scopes, created_at, expires_at, revoked_at
             FROM api_keys WHERE digest = $1",
        )
        .bind(digest.to_hex())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(ApiKeyRecord::from_row).transpose()?)
    }
}

/// The store's own limit on top of what [`Subject`] already rules out.
fn check_subject_len(subject: &Subject) -> Result<(), StoreError> {
    if subject.as_str().len() > 256 {
        return Err(StoreError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
