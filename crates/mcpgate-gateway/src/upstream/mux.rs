//! Routing over one message-oriented upstream connection (a stdio child, or a
//! legacy SSE connection) that one or many client sessions share.
//!
//! Client request ids are always replaced by the mux's own numbers, so clients
//! sharing a child can never collide and answers go only to the session that
//! asked. Messages from the upstream are routed by id, by progress token, or —
//! for messages that name no request — to the session whose request is in flight.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use crate::events::EventLog;
use crate::jsonrpc::{self, Kind, Message, code};
use crate::stopping::Stop;

/// Identifies a client session attached to a mux.
pub(crate) type SessionKey = u64;

/// Messages belonging to one client request: related requests and
/// notifications first, the response last.
#[derive(Debug)]
pub(crate) struct Exchange {
    rx: mpsc::UnboundedReceiver<Message>,
    /// Once the front guards it: the hard stop, which ends it with an error.
    stop: Option<Stop>,
    /// An HTTP upstream's SSE answer: each message's event id, sent just
    /// before the message, so the two channels stay in step.
    ids: Option<mpsc::UnboundedReceiver<Option<Arc<str>>>>,
    /// The event id of the message `recv` returned last.
    upstream_id: Option<Arc<str>>,
    /// What reads the upstream's answer into `rx`, polled by `recv` itself
    /// (an HTTP upstream's SSE answer); `None` when a task feeds `rx`, or
    /// once it is done.
    driver: Option<Driver>,
}

/// The reading of an upstream answer, run by the exchange that receives it.
/// In a `Mutex` only to be `Sync` (fronts hold exchanges across awaits in
/// futures that must be): it is polled through `&mut`, never locked.
pub(crate) struct Driver(Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Driver {
    pub(crate) fn new(f: impl Future<Output = ()> + Send + 'static) -> Driver {
        Driver(Mutex::new(Box::pin(f)))
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driver")
    }
}

impl Exchange {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Message>) -> Exchange {
        Exchange {
            rx,
            stop: None,
            ids: None,
            upstream_id: None,
            driver: None,
        }
    }

    /// The same exchange, its messages produced by `driver`, which runs
    /// while `recv` waits (and stops when the exchange is dropped).
    pub(crate) fn driven_by(self, driver: Driver) -> Exchange {
        Exchange {
            driver: Some(driver),
            ..self
        }
    }

    /// An exchange whose messages come with the upstream's SSE event ids.
    pub(crate) fn with_ids(
        rx: mpsc::UnboundedReceiver<Message>,
        ids: mpsc::UnboundedReceiver<Option<Arc<str>>>,
    ) -> Exchange {
        Exchange {
            ids: Some(ids),
            ..Exchange::new(rx)
        }
    }

    /// The upstream's SSE event id of the message [`Exchange::recv`]
    /// returned last, if it had one.
    pub(crate) fn upstream_id(&self) -> Option<&str> {
        self.upstream_id.as_deref()
    }

    /// The same exchange, answered by `stop`'s error if the hard stop comes
    /// first. Checked where the front waits, rather than by a task forwarding
    /// every message: a task and a channel per request cost more than the
    /// rest of the gateway's own work on one.
    pub(crate) fn until(self, stop: Stop) -> Exchange {
        Exchange {
            stop: Some(stop),
            ..self
        }
    }

    /// The next message; `None` once the upstream side is done.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        let m = loop {
            let Exchange {
                rx, stop, driver, ..
            } = &mut *self;
            let queued = async {
                match stop {
                    Some(stop) => stop.recv(rx).await,
                    None => rx.recv().await,
                }
            };
            let Some(d) = driver else {
                break queued.await;
            };
            // The driver first: what it reads this time is queued before
            // the channel is looked at. Done, it has dropped its sender, and
            // the channel then ends after what is left in it.
            let d = d.0.get_mut().unwrap_or_else(PoisonError::into_inner);
            tokio::select! {
                biased;
                () = d.as_mut() => *driver = None,
                m = queued => break m,
            }
        };
        if let Some(ids) = &mut self.ids {
            // The hard stop's error came from no upstream event: taking an id
            // for it would take the next message's.
            let from_upstream = m.is_some() && !self.stop.as_ref().is_some_and(Stop::gave_error);
            self.upstream_id = if from_upstream {
                ids.try_recv().ok().flatten()
            } else {
                None
            };
        }
        m
    }

    /// The response, skipping what comes before it; `None` when the upstream
    /// side ends first or `limit` passes. For the gateway's own requests
    /// (discovery, tool listings), whose notifications nobody reads.
    pub(crate) async fn response_within(&mut self, limit: std::time::Duration) -> Option<Message> {
        tokio::time::timeout(limit, async {
            while let Some(m) = self.recv().await {
                if m.kind() == Some(Kind::Response) {
                    return Some(m);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    #[cfg(test)]
    pub(crate) fn try_recv(&mut self) -> Result<Message, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }
}

/// Why a mux cannot take a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MuxClosed(pub(crate) String);

/// One upstream connection and its routing tables.
#[derive(Debug)]
pub(crate) struct Mux {
    upstream: Arc<str>,
    /// Rewrite progress tokens too: only needed when sessions share the upstream.
    shared: bool,
    out: mpsc::UnboundedSender<Bytes>,
    next_id: AtomicU64,
    next_session: AtomicU64,
    state: Mutex<State>,
    /// `Some(reason)` once the upstream is gone.
    dead: watch::Sender<Option<String>>,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// (session, client id text) → mux id, for `notifications/cancelled`.
    by_client: HashMap<(SessionKey, String), u64>,
    /// Upstream-side progress token text → mux id of the request that set it.
    progress: HashMap<String, u64>,
    /// Server→client request id text → the session it was handed to.
    server_requests: HashMap<String, SessionKey>,
    sessions: HashMap<SessionKey, Attached>,
}

#[derive(Debug)]
struct Pending {
    session: SessionKey,
    client_id: Box<RawValue>,
    tx: mpsc::UnboundedSender<Message>,
    /// (upstream-side token text, the client's own token).
    progress: Option<(String, Box<RawValue>)>,
}

#[derive(Debug)]
struct Attached {
    server_stream: Arc<EventLog>,
    /// Top-level keys of the capabilities the client declared (sampling, elicitation, roots…).
    capabilities: Option<HashSet<String>>,
}

impl Mux {
    /// A mux writing serialized messages (without trailing newline) to `out`.
    pub(crate) fn new(
        upstream: Arc<str>,
        shared: bool,
        out: mpsc::UnboundedSender<Bytes>,
    ) -> Arc<Self> {
        let (dead, _) = watch::channel(None);
        Arc::new(Mux {
            upstream,
            shared,
            out,
            next_id: AtomicU64::new(1),
            next_session: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            dead,
        })
    }

    /// Attaches a client session whose unsolicited messages go to `server_stream`.
    pub(crate) fn attach(&self, server_stream: Arc<EventLog>) -> SessionKey {
        let key = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.lock().sessions.insert(
            key,
            Attached {
                server_stream,
                capabilities: None,
            },
        );
        key
    }

    /// Records which client capabilities a session declared in its `initialize`.
    pub(crate) fn set_capabilities(&self, key: SessionKey, params: Option<&RawValue>) {
        #[derive(serde::Deserialize)]
        struct P {
            capabilities: Option<HashMap<String, serde::de::IgnoredAny>>,
        }
        let caps = params
            .and_then(|p| serde_json::from_str::<P>(p.get()).ok())
            .and_then(|p| p.capabilities)
            .map(|c| c.into_keys().collect());
        if let Some(a) = self.lock().sessions.get_mut(&key) {
            a.capabilities = caps;
        }
    }

    /// Detaches a session; its in-flight requests are answered with an error.
    pub(crate) fn detach(&self, key: SessionKey) {
        let mut st = self.lock();
        st.sessions.remove(&key);
        st.pending.retain(|_, p| p.session != key);
        st.by_client.retain(|(s, _), _| *s != key);
        st.server_requests.retain(|_, s| *s != key);
    }

    /// Why the upstream is gone, if it is.
    pub(crate) fn dead_reason(&self) -> Option<String> {
        self.dead.borrow().clone()
    }

    /// Sends a client request; what the upstream says about it arrives on the returned exchange.
    pub(super) fn request(&self, key: SessionKey, mut msg: Message) -> Result<Exchange, MuxClosed> {
        if let Some(reason) = self.dead_reason() {
            return Err(MuxClosed(reason));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = msg.id.take().unwrap_or_else(jsonrpc::null_id);
        msg.id = Some(jsonrpc::num_id(id));
        let mut progress = None;
        if let Some(token) = jsonrpc::progress_token(msg.params.as_deref()) {
            if self.shared {
                let ours = format!("\"mcpgate-{id}\"");
                let ours_raw =
                    RawValue::from_string(ours.clone()).map_err(|e| MuxClosed(e.to_string()))?;
                if let Some(p) = msg
                    .params
                    .as_deref()
                    .and_then(|p| jsonrpc::replace_progress_token(p, &ours_raw))
                {
                    msg.params = Some(p);
                }
                progress = Some((ours, token));
            } else {
                progress = Some((token.get().to_owned(), token));
            }
        }
        {
            let mut st = self.lock();
            st.by_client.insert((key, client_id.get().to_owned()), id);
            if let Some((ours, _)) = &progress {
                st.progress.insert(ours.clone(), id);
            }
            st.pending.insert(
                id,
                Pending {
                    session: key,
                    client_id,
                    tx,
                    progress,
                },
            );
        }
        self.write(&msg)?;
        Ok(Exchange::new(rx))
    }

    /// Sends a client notification or a client's response to a server request.
    pub(super) fn send(&self, key: SessionKey, mut msg: Message) -> Result<(), MuxClosed> {
        if let Some(reason) = self.dead_reason() {
            return Err(MuxClosed(reason));
        }
        match msg.kind() {
            Some(Kind::Response) => {
                let id = msg.id_key().unwrap_or_default().to_owned();
                let mut st = self.lock();
                if st.server_requests.get(&id) != Some(&key) {
                    // Not a request this session was given: dropping it keeps one
                    // client from answering (or spoofing answers to) another's.
                    tracing::debug!(upstream = %self.upstream, "dropping a response to an unknown server request");
                    return Ok(());
                }
                st.server_requests.remove(&id);
            }
            Some(Kind::Notification)
                if msg.method.as_deref() == Some("notifications/cancelled") =>
            {
                let Some(client_req) = jsonrpc::cancelled_request_id(msg.params.as_deref()) else {
                    return Ok(());
                };
                // The upstream should not answer a cancelled request, so forget it now.
                let Some(ours) = self.forget(key, client_req.get()) else {
                    return Ok(());
                };
                if let Some(p) = msg
                    .params
                    .as_deref()
                    .and_then(|p| jsonrpc::replace_member(p, "requestId", &jsonrpc::num_id(ours)))
                {
                    msg.params = Some(p);
                }
            }
            Some(Kind::Notification)
                if self.shared && msg.method.as_deref() == Some("notifications/initialized") =>
            {
                // The gateway already initialized the shared child once.
                return Ok(());
            }
            _ => {}
        }
        self.write(&msg)
    }

    /// Gives up on a request (the client timed out): forgets it and tells the upstream.
    pub(crate) fn cancel(&self, key: SessionKey, client_id: &RawValue, reason: &str) {
        if let Some(ours) = self.forget(key, client_id.get()) {
            let params = jsonrpc::raw(&serde_json::json!({ "requestId": ours, "reason": reason }));
            let _ = self.write(&Message::notification(
                "notifications/cancelled",
                Some(params),
            ));
        }
    }

    fn forget(&self, key: SessionKey, client_id: &str) -> Option<u64> {
        let mut st = self.lock();
        let ours = st.by_client.remove(&(key, client_id.to_owned()))?;
        if let Some(p) = st.pending.remove(&ours)
            && let Some((token, _)) = p.progress
        {
            st.progress.remove(&token);
        }
        Some(ours)
    }

    /// Sends a message of the gateway's own (its `initialize` of a shared child).
    pub(super) fn request_internal(
        &self,
        method: &str,
        params: Box<RawValue>,
    ) -> Result<Exchange, MuxClosed> {
        let msg = Message::request(jsonrpc::num_id(0), method, Some(params));
        self.request(0, msg)
    }

    /// Sends a notification of the gateway's own.
    pub(super) fn notify_internal(&self, method: &str) -> Result<(), MuxClosed> {
        self.write(&Message::notification(method, None))
    }

    fn write(&self, msg: &Message) -> Result<(), MuxClosed> {
        self.out
            .send(msg.to_bytes())
            .map_err(|_| MuxClosed(format!("upstream {} is not running", self.upstream)))
    }

    /// Routes one message that arrived from the upstream.
    pub(crate) fn dispatch(&self, mut msg: Message) {
        match msg.kind() {
            Some(Kind::Response) => {
                let Some(id) = msg.id_key().and_then(|k| k.parse::<u64>().ok()) else {
                    tracing::debug!(upstream = %self.upstream, "response with an id the gateway never sent");
                    return;
                };
                let mut st = self.lock();
                let Some(p) = st.pending.remove(&id) else {
                    return;
                };
                st.by_client
                    .remove(&(p.session, p.client_id.get().to_owned()));
                if let Some((ours, _)) = &p.progress {
                    st.progress.remove(ours);
                }
                drop(st);
                msg.id = Some(p.client_id);
                let _ = p.tx.send(msg);
            }
            Some(Kind::Notification) => self.dispatch_notification(msg),
            Some(Kind::Request) => self.dispatch_server_request(msg),
            None => {
                tracing::warn!(upstream = %self.upstream, "ignoring a message that is not JSON-RPC")
            }
        }
    }

    fn dispatch_notification(&self, mut msg: Message) {
        let st = self.lock();
        match msg.method.as_deref() {
            Some("notifications/progress") => {
                let Some(token) = jsonrpc::notification_progress_token(msg.params.as_deref())
                else {
                    return;
                };
                let Some(p) = st
                    .progress
                    .get(token.get())
                    .and_then(|id| st.pending.get(id))
                else {
                    return;
                };
                if let Some((_, client_token)) = &p.progress
                    && self.shared
                    && let Some(params) = msg
                        .params
                        .as_deref()
                        .and_then(|ps| jsonrpc::replace_member(ps, "progressToken", client_token))
                {
                    msg.params = Some(params);
                }
                let _ = p.tx.send(msg);
            }
            Some("notifications/cancelled") => {
                // The server withdrew one of its own requests: tell the session that has it.
                let target = jsonrpc::cancelled_request_id(msg.params.as_deref())
                    .and_then(|id| st.server_requests.get(id.get()).copied());
                if let Some(key) = target {
                    self.deliver(&st, key, msg);
                }
            }
            _ if self.shared => {
                // list_changed, resources/updated, logging: server-wide facts, so
                // every attached client hears them.
                for a in st.sessions.values() {
                    a.server_stream.push(&msg);
                }
            }
            _ => {
                if let Some(key) = st.sessions.keys().next().copied() {
                    self.deliver(&st, key, msg);
                }
            }
        }
    }

    fn dispatch_server_request(&self, msg: Message) {
        let mut st = self.lock();
        let mut in_flight = st
            .pending
            .values()
            .filter(|p| p.session != 0)
            .map(|p| p.session);
        let only_session = || {
            (st.sessions.len() == 1)
                .then(|| st.sessions.keys().next().copied())
                .flatten()
        };
        // stdio gives no hint of which client request caused a server request.
        // A child of its own belongs to one session anyway. A shared child's
        // request goes out only when exactly one request is in flight: a guess
        // could hand one user's sampling prompt or elicitation to another user.
        let target = if self.shared {
            match (in_flight.next(), in_flight.next()) {
                (Some(s), None) => Some(s),
                (None, _) => only_session(),
                (Some(_), Some(_)) => None,
            }
        } else {
            in_flight.next().or_else(only_session)
        };
        let method = msg.method.clone().unwrap_or_default();
        let capability = match method.as_str() {
            "sampling/createMessage" => Some("sampling"),
            "elicitation/create" => Some("elicitation"),
            "roots/list" => Some("roots"),
            _ => None,
        };
        let refusal = match target {
            None => Some(
                "no single client can be told apart to answer it (several requests are in flight on this shared upstream)"
                    .to_owned(),
            ),
            Some(key) => match (
                capability,
                st.sessions.get(&key).and_then(|a| a.capabilities.as_ref()),
            ) {
                (Some(cap), Some(caps)) if !caps.contains(cap) => {
                    Some(format!("the client did not declare the {cap} capability"))
                }
                _ => None,
            },
        };
        if let Some(reason) = refusal {
            let err = Message::error(
                msg.id.clone(),
                code::METHOD_NOT_FOUND,
                &format!("{method}: {reason}"),
            );
            drop(st);
            let _ = self.write(&err);
            return;
        }
        let Some(key) = target else { return };
        if let Some(id) = msg.id_key() {
            st.server_requests.insert(id.to_owned(), key);
        }
        self.deliver(&st, key, msg);
    }

    /// Hands a message to a session: on the stream of its newest request in flight,
    /// else on its server stream.
    fn deliver(&self, st: &State, key: SessionKey, msg: Message) {
        let newest = st
            .pending
            .iter()
            .filter(|(_, p)| p.session == key)
            .max_by_key(|(id, _)| **id)
            .map(|(_, p)| &p.tx);
        match newest {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => {
                if let Some(a) = st.sessions.get(&key) {
                    a.server_stream.push(&msg);
                }
            }
        }
    }

    /// Marks the upstream gone: every request in flight gets a JSON-RPC error.
    pub(crate) fn fail(&self, reason: &str) {
        let pending: Vec<Pending> = {
            let mut st = self.lock();
            st.by_client.clear();
            st.progress.clear();
            st.server_requests.clear();
            st.pending.drain().map(|(_, p)| p).collect()
        };
        for p in pending {
            let _ = p.tx.send(Message::error(
                Some(p.client_id),
                code::UPSTREAM_ERROR,
                reason,
            ));
        }
        self.dead.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(reason.to_owned());
                true
            } else {
                false
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;
