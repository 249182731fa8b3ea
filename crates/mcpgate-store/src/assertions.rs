//! Authorization grant assertions (RFC 7523) already redeemed, shared by
//! every replica: an ID-JAG is accepted once, until it expires; the periodic
//! purge (`purge_expired`) deletes rows past that.

use std::time::SystemTime;

use crate::Store;
use crate::error::StoreError;
use crate::time::to_unix;

impl Store {
    /// Records the assertion `key` until `until`: `true` the first time,
    /// `false` while an earlier record of it is live (a replay). One
    /// statement, so two replicas redeeming the same assertion at once
    /// cannot both get `true`.
    pub async fn assertion_first_use(
        &self,
        key: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO assertion_jtis (key, expires_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
             WHERE assertion_jtis.expires_at < $3",
        )
        .bind(key)
        .bind(to_unix(until))
        .bind(to_unix(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::test_store;

    #[tokio::test]
    async fn an_assertion_is_accepted_once_until_it_expires() {
        let (_db, store) = test_store().await;
        let now = SystemTime::now();
        let until = now + Duration::from_secs(300);
        assert!(store.assertion_first_use("a", until, now).await.unwrap());
        assert!(!store.assertion_first_use("a", until, now).await.unwrap());
        assert!(store.assertion_first_use("b", until, now).await.unwrap());
        // The DPoP table is another namespace.
        assert!(store.dpop_first_use("a", until, now).await.unwrap());
        let later = until + Duration::from_secs(2);
        assert!(store.assertion_first_use("a", later, later).await.unwrap());
    }
}
