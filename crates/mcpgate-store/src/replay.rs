//! What may be used once, shared by every replica: DPoP proofs (RFC 9449
//! §11.1) and authorization grant assertions (RFC 7523, an ID-JAG). A key
//! is recorded until the thing it names would be refused as too old anyway;
//! the periodic purge (`purge_expired`) deletes rows past that.

use std::time::SystemTime;

use crate::Store;
use crate::error::StoreError;
use crate::time::to_unix;

/// One statement per table, so two replicas recording the same key at once
/// cannot both be first.
const DPOP: &str = "INSERT INTO dpop_jtis (key, expires_at) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
     WHERE dpop_jtis.expires_at < $3";
const ASSERTION: &str = "INSERT INTO assertion_jtis (key, expires_at) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
     WHERE assertion_jtis.expires_at < $3";

impl Store {
    /// Records the DPoP proof `key` until `until`: `true` the first time,
    /// `false` while an earlier record of it is live (a replay).
    ///
    /// On PostgreSQL the commit does not wait for the WAL to reach the disk
    /// (`synchronous_commit = off`, for this transaction only): the row is
    /// visible to every replica at once all the same, and what a database
    /// crash could lose is the last fraction of a second of records of
    /// proofs that expire within 70 seconds anyway. The flush would
    /// otherwise be most of the cost of every DPoP request at the gateway
    /// (docs/BENCHMARKS.md).
    pub async fn dpop_first_use(
        &self,
        key: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.first_use_in(DPOP, key, until, now, false).await
    }

    /// Records the assertion `key` until `until`: `true` the first time,
    /// `false` while an earlier record of it is live (a replay). Committed
    /// durably: an assertion lives for minutes, not seconds.
    pub async fn assertion_first_use(
        &self,
        key: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.first_use_in(ASSERTION, key, until, now, true).await
    }

    async fn first_use_in(
        &self,
        statement: &'static str,
        key: &str,
        until: SystemTime,
        now: SystemTime,
        durable: bool,
    ) -> Result<bool, StoreError> {
        let insert = sqlx::query(statement)
            .bind(key)
            .bind(to_unix(until))
            .bind(to_unix(now));
        let done = if !durable && self.url.is_postgres() {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
            let done = insert.execute(&mut *tx).await?;
            tx.commit().await?;
            done
        } else {
            insert.execute(&self.pool).await?
        };
        Ok(done.rows_affected() == 1)
    }
}

/// The gateway's DPoP replay check across replicas: the same table and
/// statement as the token endpoint's, one round trip per DPoP request.
impl mcpgate_guard::DpopReplay for Store {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> mcpgate_guard::BoxFuture<'a, Result<bool, mcpgate_guard::ReplayUnavailable>> {
        Box::pin(async move {
            self.dpop_first_use(key, until, now)
                .await
                .map_err(|e| mcpgate_guard::ReplayUnavailable(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::test_store;

    #[tokio::test]
    async fn a_proof_is_accepted_once_until_it_expires() {
        let (_db, store) = test_store().await;
        let now = SystemTime::now();
        let until = now + Duration::from_secs(70);
        assert!(store.dpop_first_use("k", until, now).await.unwrap());
        assert!(!store.dpop_first_use("k", until, now).await.unwrap());
        assert!(store.dpop_first_use("other", until, now).await.unwrap());
        let later = until + Duration::from_secs(2);
        assert!(store.dpop_first_use("k", later, later).await.unwrap());
    }

    #[tokio::test]
    async fn the_guard_sees_the_same_record_as_the_token_endpoint() {
        use mcpgate_guard::DpopReplay as _;
        let (_db, store) = test_store().await;
        let now = SystemTime::now();
        let until = now + Duration::from_secs(70);
        assert!(store.dpop_first_use("k", until, now).await.unwrap());
        assert!(!store.first_use("k", until, now).await.unwrap());
        assert!(store.first_use("j", until, now).await.unwrap());
        assert!(!store.dpop_first_use("j", until, now).await.unwrap());
    }

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
