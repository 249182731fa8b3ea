//! The daily quotas of the gateway's `[[rate_limit]]` rules: one count per
//! key and UTC day, raised by one atomic upsert that stops at the limit, so
//! that of N concurrent calls on any number of replicas exactly the limit
//! are counted.

use sqlx::Row as _;

use crate::Store;
use crate::error::StoreError;

/// Raises the day's count unless it reached the limit (`$3`); no row comes
/// back when it had.
const TAKE: &str = "INSERT INTO rate_quotas (key, day, used) VALUES ($1, $2, 1)
     ON CONFLICT (key, day) DO UPDATE SET used = rate_quotas.used + 1
     WHERE rate_quotas.used < $3
     RETURNING used";

impl Store {
    /// Counts one call against `key` on `day` (days since the Unix epoch,
    /// UTC) if fewer than `limit` were counted: the count including this
    /// call, or `None` when the quota is used up.
    pub async fn quota_take(
        &self,
        key: &str,
        day: i64,
        limit: u64,
    ) -> Result<Option<u64>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = sqlx::query(TAKE)
            .bind(key)
            .bind(day)
            .bind(limit)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let used: i64 = row.try_get("used")?;
        // `limit` = 0 is refused by the configuration; a first row still
        // counts 1, so report it as over.
        if used > limit {
            return Ok(None);
        }
        Ok(Some(u64::try_from(used).unwrap_or(0)))
    }

    /// The count of `key` on `day` (0 when none was taken).
    pub async fn quota_used(&self, key: &str, day: i64) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT used FROM rate_quotas WHERE key = $1 AND day = $2")
            .bind(key)
            .bind(day)
            .fetch_optional(&self.pool)
            .await?;
        let used: i64 = match row {
            Some(r) => r.try_get("used")?,
            None => 0,
        };
        Ok(u64::try_from(used).unwrap_or(0))
    }

    /// Forgets the counts of days before `day`: rows removed.
    pub async fn quota_purge_before(&self, day: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM rate_quotas WHERE day < $1")
            .bind(day)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests;
