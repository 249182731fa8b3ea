//! Login throttling's counters: sign-in attempts per key (an account, a client
//! address) in a fixed window, shared by every process on the store.
//!
//! An attempt is reserved *before* its password is checked, for every key at
//! once in one transaction that locks their rows (`BEGIN IMMEDIATE` on
//! SQLite, `SELECT … FOR UPDATE` on PostgreSQL, keys in a fixed order so two
//! reservations never deadlock): however many requests arrive together, on
//! however many replicas, no more than `max` passwords per key and window are
//! ever evaluated. A failed attempt keeps its reservation (it is the failure
//! count); a successful one clears the account and gives its address
//! reservation back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row as _;

use crate::Store;
use crate::error::StoreError;

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Reserves one attempt against every one of `keys`: `Ok(None)` when
    /// reserved, `Ok(Some(wait))` when one of them has used up its `max`
    /// attempts in the current `window` (nothing is reserved then).
    pub async fn login_reserve(
        &self,
        keys: &[&str],
        max: u32,
        window: Duration,
        now: SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        let now = millis(now);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let mut keys: Vec<&str> = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let mut tx = self.begin_write().await?;
        // Windows long over count as empty: forget them.
        sqlx::query("DELETE FROM login_throttles WHERE window_start < $1")
            .bind(now.saturating_sub(window_ms))
            .execute(&mut *tx)
            .await?;
        let mut counts = Vec::with_capacity(keys.len());
        let select = format!(
            "SELECT attempts, window_start FROM login_throttles WHERE key = $1{}",
            self.for_update()
        );
        for k in &keys {
            sqlx::query(
                "INSERT INTO login_throttles (key, attempts, window_start) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(*k)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                .bind(*k)
                .fetch_one(&mut *tx)
                .await?;
            let attempts: i64 = row.try_get("attempts")?;
            let start: i64 = row.try_get("window_start")?;
            counts.push((attempts, start));
        }
        let wait = counts
            .iter()
            .filter(|(n, start)| *n >= i64::from(max) && now - start < window_ms)
            .map(|(_, start)| window_ms - (now - start))
            .max();
        if let Some(w) = wait {
            tx.rollback().await?;
            return Ok(Some(Duration::from_millis(u64::try_from(w).unwrap_or(0))));
        }
        for (k, (_, start)) in keys.iter().zip(&counts) {
            let q = if now - start >= window_ms {
                sqlx::query(
                    "UPDATE login_throttles SET attempts = 1, window_start = $2 WHERE key = $1",
                )
                .bind(*k)
                .bind(now)
            } else {
                sqlx::query("UPDATE login_throttles SET attempts = attempts + 1 WHERE key = $1")
                    .bind(*k)
            };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Gives one reserved attempt back to each of `keys` (an attempt that was
    /// not a guess: the password could not be checked).
    pub async fn login_release(&self, keys: &[&str]) -> Result<(), StoreError> {
        for k in keys {
            sqlx::query(
                "UPDATE login_throttles SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0",
            )
            .bind(*k)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// A successful sign-in: `account` is forgotten, the other keys get their
    /// reservation back (a shared address keeps its failures).
    pub async fn login_succeeded(&self, keys: &[&str], account: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttles WHERE key = $1")
            .bind(account)
            .execute(&self.pool)
            .await?;
        let others: Vec<&str> = keys.iter().copied().filter(|k| *k != account).collect();
        self.login_release(&others).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_store;

    const MIN: Duration = Duration::from_secs(60);

    async fn reserve(s: &Store, keys: &[&str], max: u32) -> bool {
        s.login_reserve(keys, max, MIN, SystemTime::now())
            .await
            .unwrap()
            .is_none()
    }

    #[tokio::test]
    async fn reserves_at_most_max_and_success_clears() {
        let (_db, s) = test_store().await;
        assert!(reserve(&s, &["user:a", "ip:1"], 2).await);
        assert!(reserve(&s, &["user:a", "ip:1"], 2).await);
        // Both in flight: a third is refused before any password is checked.
        assert!(!reserve(&s, &["user:a", "ip:2"], 2).await);
        assert!(!reserve(&s, &["user:b", "ip:1"], 2).await);
        assert!(reserve(&s, &["user:b", "ip:2"], 2).await);
        s.login_succeeded(&["user:a", "ip:1"], "user:a")
            .await
            .unwrap();
        // The account is cleared; the address got one reservation back.
        assert!(reserve(&s, &["user:a", "ip:1"], 2).await);
        assert!(!reserve(&s, &["user:c", "ip:1"], 2).await);
    }

    #[tokio::test]
    async fn the_wait_is_what_is_left_of_the_window_and_then_it_resets() {
        let (_db, s) = test_store().await;
        let t0 = SystemTime::now();
        assert!(
            s.login_reserve(&["user:a"], 1, MIN, t0)
                .await
                .unwrap()
                .is_none()
        );
        let wait = s
            .login_reserve(&["user:a"], 1, MIN, t0 + Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(wait, Some(Duration::from_secs(40)));
        let later = t0 + MIN + Duration::from_secs(1);
        assert!(
            s.login_reserve(&["user:a"], 1, MIN, later)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_released_attempt_is_not_counted() {
        let (_db, s) = test_store().await;
        assert!(reserve(&s, &["user:a"], 1).await);
        s.login_release(&["user:a"]).await.unwrap();
        assert!(reserve(&s, &["user:a"], 1).await);
        assert!(!reserve(&s, &["user:a"], 1).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_on_two_handles_never_exceed_max() {
        let (db, s) = test_store().await;
        // A second handle on the same database, as a second replica has.
        let other = Store::connect(db.url()).await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let s = if i % 2 == 0 { s.clone() } else { other.clone() };
                tokio::spawn(async move { reserve(&s, &["user:a", "ip:1"], 5).await })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 5);
    }
}
