//! Remembered consent: per user and client, the scopes the user agreed to.

use mcpgate_types::ScopeSet;
use std::time::SystemTime;

use sqlx::Row as _;

use crate::Store;
use crate::api_keys::split_scopes;
use crate::error::StoreError;
use crate::time::to_unix;

impl Store {
    /// The scopes `subject` agreed to for `client_id` and asked to remember.
    pub async fn find_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let row =
            sqlx::query("SELECT scopes FROM oauth_consents WHERE subject = $1 AND client_id = $2")
                .bind(subject)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("scopes"))
            .transpose()?
            .map(|s| split_scopes(&s)))
    }

    /// Remembers that `subject` agreed to `scopes` for `client_id` (replacing what was remembered).
    pub async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scopes: &ScopeSet,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_consents (subject, client_id, scopes, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subject, client_id) DO UPDATE SET scopes = excluded.scopes, created_at = excluded.created_at",
        )
        .bind(subject)
        .bind(client_id)
        .bind(scopes.to_string())
        .bind(to_unix(SystemTime::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a remembered consent.
    pub async fn delete_consent(&self, subject: &str, client_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_consents WHERE subject = $1 AND client_id = $2")
            .bind(subject)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
