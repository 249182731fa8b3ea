//! Authorization requests waiting on the consent page: the page refers to
//! one by an opaque reference (kept here as its digest), and submitting the
//! form takes it out, so each is decided at most once.

use std::time::{Duration, SystemTime};

use sqlx::Row as _;

use crate::Store;
use crate::error::StoreError;
use crate::time::to_unix;

impl Store {
    /// Keeps `request` (form-encoded) for `subject` under `digest` for `ttl`.
    pub async fn put_pending_consent(
        &self,
        digest: &str,
        subject: &str,
        request: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        // Spelt-out SQL, shaped like other tables' (why: the crate docs).
        sqlx::query(
            "INSERT INTO oauth_pending_consents (digest, subject, request, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(subject)
        .bind(request)
        .bind(to_unix(now))
        .bind(to_unix(now + ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the request kept under `digest` for `subject`: the first caller
    /// gets it, later ones (and other users, and after expiry) get `None`.
    pub async fn take_pending_consent(
        &self,
        digest: &str,
        subject: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = to_unix(SystemTime::now());
        let row = sqlx::query(
            "SELECT request FROM oauth_pending_consents
             WHERE digest = $1 AND subject = $2 AND expires_at >= $3",
        )
        .bind(digest)
        .bind(subject)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // The delete decides between concurrent submissions: only one removes the row.
        let won =
            sqlx::query("DELETE FROM oauth_pending_consents WHERE digest = $1 AND subject = $2")
                .bind(digest)
                .bind(subject)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1;
        if !won {
            return Ok(None);
        }
        Ok(Some(row.try_get("request")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pending_consent_is_taken_once_and_only_by_its_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let ttl = Duration::from_secs(60);
        store
            .put_pending_consent("d1", "alice", "client_id=a", ttl)
            .await
            .expect("put");
        assert_eq!(
            store.take_pending_consent("d1", "bob").await.expect("take"),
            None
        );
        assert_eq!(
            store
                .take_pending_consent("d1", "alice")
                .await
                .expect("take"),
            Some("client_id=a".to_owned())
        );
        assert_eq!(
            store
                .take_pending_consent("d1", "alice")
                .await
                .expect("take"),
            None
        );
        store
            .put_pending_consent("d2", "alice", "x", Duration::ZERO)
            .await
            .expect("put");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            store
                .take_pending_consent("d2", "alice")
                .await
                .expect("take"),
            None
        );
        let purged = store.purge_expired(SystemTime::now()).await.expect("purge");
        assert_eq!(purged.rows, 1);
    }
}
