//! The app's requests in flight, stoppable by the app's
//! `notifications/cancelled`. Over stdio an app cancels with that
//! notification; toward a 2026-07-28 server the bridge cancels by dropping
//! the request's HTTP exchange (closing its stream), which is how that
//! revision says "cancelled", and toward a server of the handshake eras it
//! also passes the notification on.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures_util::future::{AbortHandle, Abortable};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Requests in flight, by the app's id (its JSON text).
#[derive(Default)]
pub(crate) struct Inflight {
    running: Mutex<HashMap<String, AbortHandle>>,
}

impl Inflight {
    /// Runs `work` for the app's request `id`; `None` when the app cancelled it.
    pub(crate) async fn run<F: Future>(&self, id: Option<&RawValue>, work: F) -> Option<F::Output> {
        let Some(id) = id else {
            return Some(work.await);
        };
        let (handle, registration) = AbortHandle::new_pair();
        self.lock().insert(id.get().to_owned(), handle);
        let outcome = Abortable::new(work, registration).await;
        if outcome.is_ok() {
            // A cancelled one was forgotten by `cancel`.
            self.lock().remove(id.get());
        }
        outcome.ok()
    }

    /// Stops the request a `notifications/cancelled` message names; its id
    /// when one was running.
    pub(crate) fn cancel(&self, notification: &[u8]) -> Option<String> {
        let id = cancelled_id(notification)?;
        self.cancel_id(&id).then_some(id)
    }

    /// Stops the request `id` (JSON text); `true` when it was running.
    pub(crate) fn cancel_id(&self, id: &str) -> bool {
        let Some(handle) = self.lock().remove(id) else {
            return false;
        };
        handle.abort();
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `requestId` (JSON text) of a `notifications/cancelled` message.
pub(crate) fn cancelled_id(notification: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Msg<'a> {
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "requestId")]
        request_id: Option<&'a RawValue>,
    }
    let m: Msg<'_> = serde_json::from_slice(notification).ok()?;
    Some(m.params?.request_id?.get().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_request_stops_and_others_run_on() {
        let inflight = std::sync::Arc::new(Inflight::default());
        let id = serde_json::value::to_raw_value(&7).unwrap();
        let other = serde_json::value::to_raw_value(&"x").unwrap();
        let running = {
            let (inflight, id) = (inflight.clone(), id.clone());
            tokio::spawn(async move { inflight.run(Some(&id), std::future::pending::<()>()).await })
        };
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if !inflight.lock().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#;
        assert_eq!(inflight.cancel(cancel).as_deref(), Some("7"));
        assert_eq!(running.await.unwrap(), None);
        assert_eq!(inflight.run(Some(&other), async { 3 }).await, Some(3));
        assert_eq!(inflight.cancel(cancel), None, "nothing left to cancel");
        assert_eq!(cancelled_id(br#"{"method":"x"}"#), None);
    }
}
