//! Signing keys of the authorization server, sealed under the master key.

use std::time::SystemTime;

use crate::Row as SqliteRow;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::Row as _;

use crate::Store;
use crate::error::StoreError;
use crate::time::{from_unix, to_unix};

/// A signing key as stored: the private key sealed, never in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningKeyRow {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm (`ES256`, `EdDSA`, `RS256`).
    pub alg: String,
    /// The sealed PKCS#8 private key.
    pub sealed: Vec<u8>,
    /// When it was generated.
    pub created_at: SystemTime,
    /// When a newer key took over signing.
    pub superseded_at: Option<SystemTime>,
    /// When it leaves the published key set.
    pub retire_at: Option<SystemTime>,
}

impl SigningKeyRow {
    /// A new active key.
    pub fn new(kid: String, alg: String, sealed: Vec<u8>) -> SigningKeyRow {
        SigningKeyRow {
            kid,
            alg,
            sealed,
            created_at: SystemTime::now(),
            superseded_at: None,
            retire_at: None,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<SigningKeyRow, sqlx::Error> {
        let sealed: String = row.try_get("sealed")?;
        Ok(SigningKeyRow {
            kid: row.try_get("kid")?,
            alg: row.try_get("alg")?,
            sealed: STANDARD
                .decode(sealed)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            created_at: from_unix(row.try_get("created_at")?),
            superseded_at: row
                .try_get::<Option<i64>, _>("superseded_at")?
                .map(from_unix),
            retire_at: row.try_get::<Option<i64>, _>("retire_at")?.map(from_unix),
        })
    }
}

impl Store {
    /// Adds `key` as the active signing key; every other unsuperseded key is
    /// superseded now and retires at `retire_others_at`.
    pub async fn add_signing_key(
        &self,
        key: &SigningKeyRow,
        retire_others_at: SystemTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE oauth_signing_keys SET superseded_at = $1, retire_at = $2 WHERE superseded_at IS NULL",
        )
        .bind(to_unix(SystemTime::now()))
        .bind(to_unix(retire_others_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO oauth_signing_keys (kid, alg, sealed, created_at, superseded_at, retire_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(STANDARD.encode(&key.sealed))
        .bind(to_unix(key.created_at))
        .bind(key.superseded_at.map(to_unix))
        .bind(key.retire_at.map(to_unix))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every stored signing key, newest first (the first unsuperseded one signs).
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, alg, sealed, created_at, superseded_at, retire_at
             FROM oauth_signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, SigningKeyRow::from_row)
    }
}
