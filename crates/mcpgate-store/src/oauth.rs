//! The authorization server's tables: clients, registered resource servers,
//! grants with their codes and refresh tokens, consents (remembered and
//! pending), sealed signing keys, device codes and browser sessions. Codes, tokens and secrets arrive here as digests only
//! ([`digest_hex`]); the authserver decides what is valid, this module keeps
//! the rows and makes the single-use steps (code redemption, refresh
//! rotation) atomic.

mod clients;
mod consents;
mod devices;
mod grants;
mod keys;
mod pending;
mod resources;
mod sessions;

use std::time::SystemTime;

use crate::Row as SqliteRow;
use sha2::{Digest as _, Sha256};

pub use clients::{ClientKind, ClientRow};
pub use devices::{DeviceRow, DeviceStatus};
pub use grants::{CodeOutcome, CodeRow, GrantRow, RefreshRow, Rotation};
pub use keys::SigningKeyRow;
pub use resources::ResourceServerRow;
pub use sessions::SessionRow;

use crate::Store;
use crate::error::StoreError;
use crate::time::to_unix;

/// Lowercase hex SHA-256 of a token, code or secret: the form the store keeps.
pub fn digest_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// The row that `sql` (a `SELECT` of one row type's columns with one
    /// parameter, `$1`) finds for `key`, read by `from_row`: every lookup by
    /// id, digest or code of this module.
    async fn fetch_row<T>(
        &self,
        sql: &'static str,
        key: &str,
        from_row: fn(&SqliteRow) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, StoreError> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }
}

/// How long revoked grants are kept (for the account page and for rejecting
/// their access tokens) before they are purged; a missing grant is refused too.
const KEEP_REVOKED_SECS: i64 = 24 * 3600;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purged {
    /// Expired dynamic clients and stale client metadata documents.
    pub clients: u64,
    /// Expired or long-revoked grants.
    pub grants: u64,
    /// Codes, refresh tokens, device codes and sessions past their expiry.
    pub rows: u64,
}

impl Store {
    /// Deletes every row past its expiry, and what belonged to deleted grants and clients.
    pub async fn purge_expired(&self, now: SystemTime) -> Result<Purged, StoreError> {
        let now = to_unix(now);
        let mut out = Purged::default();
        let mut tx = self.pool.begin().await?;
        let expired_clients = sqlx::query(
            "DELETE FROM oauth_clients WHERE expires_at IS NOT NULL AND expires_at < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        out.clients = expired_clients.rows_affected();
        let grants = sqlx::query(
            "DELETE FROM oauth_grants WHERE expires_at < $1
               OR (revoked_at IS NOT NULL AND revoked_at < $2)
               OR client_id NOT IN (SELECT client_id FROM oauth_clients)",
        )
        .bind(now)
        .bind(now - KEEP_REVOKED_SECS)
        .execute(&mut *tx)
        .await?;
        out.grants = grants.rows_affected();
        for q in [
            "DELETE FROM oauth_codes WHERE expires_at < $1 OR grant_id NOT IN (SELECT id FROM oauth_grants)",
            "DELETE FROM oauth_refresh_tokens WHERE expires_at < $1 OR grant_id NOT IN (SELECT id FROM oauth_grants)",
            "DELETE FROM oauth_device_codes WHERE expires_at < $1",
            "DELETE FROM oauth_sessions WHERE expires_at < $1",
            "DELETE FROM oauth_pending_consents WHERE expires_at < $1",
            "DELETE FROM oauth_signing_keys WHERE retire_at IS NOT NULL AND retire_at < $1",
            "DELETE FROM dpop_jtis WHERE expires_at < $1",
            "DELETE FROM assertion_jtis WHERE expires_at < $1",
        ] {
            out.rows += sqlx::query(q)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
