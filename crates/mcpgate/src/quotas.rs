//! The store as the gateway's counter of `[[rate_limit]]` daily quotas:
//! opened only when a rule is a quota, shared by every replica on the same
//! store, with the counts of past days purged once a day per process.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use mcpgate_gateway::{QuotaCounter, QuotaError};
use mcpgate_store::Store;

use crate::config::Config;

/// The store, counting quotas.
#[derive(Debug)]
struct StoreQuotas {
    store: Store,
    /// The last day whose older counts were purged.
    purged: AtomicI64,
}

impl QuotaCounter for StoreQuotas {
    fn take<'a>(
        &'a self,
        key: &'a str,
        day: i64,
        limit: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Option<u64>, QuotaError>> + Send + 'a>> {
        Box::pin(async move {
            if self.purged.swap(day, Ordering::Relaxed) != day
                && let Err(e) = self.store.quota_purge_before(day).await
            {
                // Old rows only take room; the count of today is still right.
                tracing::warn!("could not purge past days' rate-limit quotas: {e}");
            }
            Ok(self.store.quota_take(key, day, limit).await?)
        })
    }
}

/// The counter the gateway needs when some `[[rate_limit]]` is a daily
/// quota; `None` when none is.
pub(crate) async fn counter(cfg: &Config) -> Result<Option<Arc<dyn QuotaCounter>>, String> {
    if !cfg.rate_limits.iter().any(|r| r.is_quota()) {
        return Ok(None);
    }
    let store = Store::connect(&cfg.store_url())
        .await
        .map_err(|e| format!("rate_limit: cannot open the store that counts daily quotas: {e}"))?;
    Ok(Some(Arc::new(StoreQuotas {
        store,
        purged: AtomicI64::new(i64::MIN),
    })))
}
