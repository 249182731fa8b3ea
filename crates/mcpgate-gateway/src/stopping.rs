//! The end of the shutdown grace period: every request still waiting on its
//! upstream is answered "the gateway is shutting down" (a JSON-RPC error, as
//! JSON or as the last event of its SSE answer) before the children are
//! stopped, so that clients do not read "the upstream closed the connection".

use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::jsonrpc::{Message, code};

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

    /// The hard stop for one exchange, whose answer is an error response to
    /// `id` (the id the exchange's response carries).
    pub(crate) fn stop_for(&self, id: Option<Box<RawValue>>) -> Stop {
        Stop {
            rx: self.tx.subscribe(),
            id: Some(id),
        }
    }
}

/// One exchange's view of the hard stop (`Exchange::until`).
#[derive(Debug)]
pub(crate) struct Stop {
    rx: watch::Receiver<bool>,
    /// The response's id, until the error was given.
    id: Option<Option<Box<RawValue>>>,
}

impl Stop {
    /// Whether the hard stop's error was given (the last message was it).
    pub(crate) fn gave_error(&self) -> bool {
        self.id.is_none()
    }

    /// The next message of `rx` until the hard stop, then the error once,
    /// then `None`.
    pub(crate) async fn recv(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Message>,
    ) -> Option<Message> {
        self.id.as_ref()?;
        tokio::select! {
            biased;
            Ok(_) = self.rx.wait_for(|s| *s) => {
                let id = self.id.take().flatten();
                Some(Message::error(id, code::UPSTREAM_ERROR, SHUTTING_DOWN))
            }
            m = rx.recv() => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_pass_until_the_stop_then_the_error_ends_the_exchange() {
        let s = Stopping::default();
        let (up, mut ex) = mpsc::unbounded_channel();
        let mut guarded = s.stop_for(Some(crate::jsonrpc::num_id(7)));
        up.send(Message::notification("notifications/progress", None))
            .expect("send");
        let first = guarded.recv(&mut ex).await.expect("a message");
        assert_eq!(first.method.as_deref(), Some("notifications/progress"));
        s.trigger();
        up.send(Message::notification("notifications/progress", None))
            .expect("send");
        let last = guarded.recv(&mut ex).await.expect("the error");
        assert_eq!(last.id_key(), Some("7"));
        let err = last.error.expect("an error").get().to_owned();
        assert!(err.contains("shutting down"), "{err}");
        assert!(guarded.recv(&mut ex).await.is_none());
    }
}
