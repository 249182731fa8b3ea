//! Login throttling: sign-in attempts counted per account and per client IP
//! in a fixed window. The counters live in the store (`login_throttles`), so
//! every replica on one database counts the same attempts, and a restart
//! forgets nothing.
//!
//! An attempt is reserved *before* its password is checked, for every key at
//! once in one transaction: however many requests arrive together, on however
//! many replicas, no more than `max` passwords per key and window are ever
//! evaluated. A failed attempt keeps its reservation (it is the failure
//! count); a successful one clears the account and gives its address
//! reservation back.

use std::time::{Duration, SystemTime};

use mcpgate_store::{Store, StoreError};

/// Counts attempts per key, in the store.
#[derive(Debug)]
pub(crate) struct Throttle {
    store: Store,
    max: u32,
    window: Duration,
}

/// Attempts reserved for one sign-in; the keys it counted against.
#[derive(Debug)]
#[must_use = "a reservation is released on success or kept as a failure"]
pub(crate) struct Reservation {
    keys: Vec<String>,
}

impl Reservation {
    fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(String::as_str).collect()
    }
}

impl Throttle {
    pub(crate) fn new(store: Store, max: u32, window: Duration) -> Throttle {
        Throttle { store, max, window }
    }

    /// Reserves one attempt against every one of `keys`: `Ok(Err(wait))` when
    /// any of them has used up its window (nothing is reserved then).
    pub(crate) async fn reserve(
        &self,
        keys: &[&str],
    ) -> Result<Result<Reservation, Duration>, StoreError> {
        let wait = self
            .store
            .login_reserve(keys, self.max, self.window, SystemTime::now())
            .await?;
        Ok(match wait {
            Some(w) => Err(w),
            None => Ok(Reservation {
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            }),
        })
    }

    /// A reserved attempt that was not a guess (the store could not answer):
    /// its reservations are given back.
    pub(crate) async fn release(&self, r: Reservation) {
        if let Err(e) = self.store.login_release(&r.keys()).await {
            tracing::warn!("cannot give a sign-in attempt back to the throttle: {e}");
        }
    }

    /// A successful sign-in: `account` is forgotten, the other keys get
    /// their reservation back (a shared address keeps its failures).
    pub(crate) async fn succeeded(&self, r: Reservation, account: &str) {
        if let Err(e) = self.store.login_succeeded(&r.keys(), account).await {
            tracing::warn!("cannot clear the sign-in throttle of {account}: {e}");
        }
    }
}
