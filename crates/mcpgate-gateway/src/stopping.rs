//! The end of the shutdown grace period: every request still waiting on its
//! upstream is answered "the gateway is shutting down" (a JSON-RPC error, as
//! JSON or as the last event of its SSE answer) before the children are
//! stopped, so that clients do not read "the upstream closed the connection".

use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::jsonrpc::{Message, code};
use crate::upstream::Exchange;

/// What a request still waiting at the hard stop is answered.
pub(crate) const SHUTTING_DOWN: &str = "the gateway is shutting down: the request was still waiting for its upstream when the shutdown grace period (server.shutdown_grace) ended; retry it once the gateway is back";

/// The hard-stop signal shared by every front.
#[derive(Debug)]
pub(crate) struct Stopping {
    tx: watch::Sender<bool>,
}

impl Default for Stopping {
    fn default() -> Self {
        Stopping {
            tx: watch::channel(false).0,
        }
    }
}

impl Stopping {
    /// Answers every guarded exchange with [`SHUTTING_DOWN`].
    pub(crate) fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Passes an exchange's messages through until the hard stop, which ends
    /// it with an error response to `id` (the id the exchange's response carries).
    pub(crate) fn guard(&self, mut ex: Exchange, id: Option<Box<RawValue>>) -> Exchange {
        let mut stop = self.tx.subscribe();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => {
                        let _ = tx.send(Message::error(id, code::UPSTREAM_ERROR, SHUTTING_DOWN));
                        return;
                    }
                    m = ex.recv() => match m {
                        Some(m) => {
                            if tx.send(m).is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    // The client went away: drop the upstream side at once, as before.
                    () = tx.closed() => return,
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_pass_until_the_stop_then_the_error_ends_the_exchange() {
        let s = Stopping::default();
        let (up, ex) = mpsc::unbounded_channel();
        let mut guarded = s.guard(ex, Some(crate::jsonrpc::num_id(7)));
        up.send(Message::notification("notifications/progress", None))
            .expect("send");
        let first = guarded.recv().await.expect("a message");
        assert_eq!(first.method.as_deref(), Some("notifications/progress"));
        s.trigger();
        let last = guarded.recv().await.expect("the error");
        assert_eq!(last.id_key(), Some("7"));
        let err = last.error.expect("an error").get().to_owned();
        assert!(err.contains("shutting down"), "{err}");
        assert!(guarded.recv().await.is_none());
    }
}
