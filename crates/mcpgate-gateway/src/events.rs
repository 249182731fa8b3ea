//! Server-sent event logs: every SSE stream the gateway opens towards a client
//! writes into a bounded log first, so a client that drops the connection can
//! come back with `Last-Event-ID` and miss nothing that is still in the log.
//! Where the events came from an upstream that numbers its own (a Streamable
//! HTTP upstream's GET stream), the id also carries the upstream's position,
//! so a replica without the log can resume the upstream's stream instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::watch;

use crate::jsonrpc::Message;

/// One SSE stream's log. Event ids are `<stream>-<seq>-<tag>`, unique within a
/// session, and name the stream they belong to so a resumption replays the
/// right one. The tag is random per log: an id another replica (or an earlier
/// run) handed out never matches a log here, so it is never read as a
/// position in a log it did not come from. Once the log is bound to
/// [`UpstreamIds`] and the upstream has given a position, the id is
/// `<stream>-<seq>-<tag>.<sealed upstream position>` (see [`upstream_part`]).
#[derive(Debug)]
pub(crate) struct EventLog {
    stream_id: u64,
    tag: u32,
    capacity: usize,
    /// Seals the upstream's event ids into ours; unset, ids carry none.
    upstream_ids: std::sync::OnceLock<UpstreamIds>,
    /// The SSE `event:` name: `message` for legacy SSE clients, none otherwise.
    event_name: Option<&'static str>,
    inner: Mutex<Inner>,
    /// Bumped on every push and on close, to wake readers.
    changed: watch::Sender<u64>,
    /// Every pushed message, for listeners that want messages rather than frames
    /// (2026-07-28 `subscriptions/listen`).
    tap: Option<tokio::sync::broadcast::Sender<Message>>,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<(u64, Bytes)>,
    next_seq: u64,
    closed: bool,
    /// The highest seq handed to a reader that did not name a position.
    delivered: u64,
    /// The upstream's last event id, sealed, as our ids carry it.
    upstream: Option<String>,
}

/// Seals an upstream event id into the part of our event id that carries it
/// (bound to one session: see `front::adopt::carry_upstream_ids`).
pub(crate) struct UpstreamIds(pub(crate) Box<SealUpstreamId>);

/// `None` when it cannot be sealed: the event then carries no position.
pub(crate) type SealUpstreamId = dyn Fn(&str) -> Option<String> + Send + Sync;

impl std::fmt::Debug for UpstreamIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamIds")
    }
}

impl EventLog {
    pub(crate) fn new(
        stream_id: u64,
        capacity: usize,
        event_name: Option<&'static str>,
    ) -> Arc<Self> {
        Self::build(stream_id, capacity, event_name, None)
    }

    /// A log whose messages can also be listened to one by one.
    pub(crate) fn tapped(stream_id: u64, capacity: usize) -> Arc<Self> {
        let tap = tokio::sync::broadcast::channel(64).0;
        Self::build(stream_id, capacity, None, Some(tap))
    }

    fn build(
        stream_id: u64,
        capacity: usize,
        event_name: Option<&'static str>,
        tap: Option<tokio::sync::broadcast::Sender<Message>>,
    ) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        Arc::new(EventLog {
            stream_id,
            tag: u32::from_be_bytes(mcpgate_types::random::bytes()),
            capacity: capacity.max(1),
            upstream_ids: std::sync::OnceLock::new(),
            event_name,
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Default::default()
            }),
            changed,
            tap,
        })
    }

    /// Messages pushed from now on, if this log is tapped.
    pub(crate) fn listen(&self) -> Option<tokio::sync::broadcast::Receiver<Message>> {
        self.tap.as_ref().map(|t| t.subscribe())
    }

    /// How many listen to this log (see [`EventLog::listen`]).
    pub(crate) fn listeners(&self) -> usize {
        self.tap.as_ref().map_or(0, |t| t.receiver_count())
    }

    pub(crate) fn stream_id(&self) -> u64 {
        self.stream_id
    }

    /// Whether `id` (parsed from `Last-Event-ID`) was handed out by this log.
    pub(crate) fn issued(&self, id: &EventId) -> bool {
        id.stream == self.stream_id && id.tag == self.tag
    }

    /// From now on, ids carry the upstream's position, sealed by `ids`.
    pub(crate) fn carry_upstream_ids(&self, ids: UpstreamIds) {
        let _ = self.upstream_ids.set(ids);
    }

    /// The upstream's stream is at `id`: the next events' ids carry it.
    pub(crate) fn note_upstream_id(&self, id: &str) {
        let Some(ids) = self.upstream_ids.get() else {
            return;
        };
        // Sealed once here, not per reader: every frame of the log is formatted once.
        let sealed = (ids.0)(id);
        lock(&self.inner).upstream = sealed;
    }

    /// The seq of the last event pushed (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        lock(&self.inner).next_seq - 1
    }

    /// Appends a JSON-RPC message as one SSE event.
    pub(crate) fn push(&self, msg: &Message) {
        if let Some(tap) = &self.tap {
            let _ = tap.send(msg.clone());
        }
        self.push_data(self.event_name, &msg.to_bytes());
    }

    /// Appends an event with empty data: the 2025-11-25 priming event that hands
    /// the client an id to resume from before anything else is sent.
    pub(crate) fn push_priming(&self) {
        self.push_data(None, b"");
    }

    /// Appends a raw event (the legacy `endpoint` event).
    pub(crate) fn push_data(&self, event: Option<&str>, data: &[u8]) {
        let mut inner = lock(&self.inner);
        if inner.closed {
            return;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let id = match inner.upstream.as_deref() {
            Some(up) => format!("{}-{}-{:08x}.{up}", self.stream_id, seq, self.tag),
            None => format!("{}-{}-{:08x}", self.stream_id, seq, self.tag),
        };
        let frame = frame(&id, event, data);
        inner.events.push_back((seq, frame));
        while inner.events.len() > self.capacity {
            inner.events.pop_front();
        }
        drop(inner);
        self.changed.send_replace(seq);
    }

    /// Ends the stream: readers finish after the last event.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closed = true;
        drop(inner);
        self.changed.send_modify(|v| *v += 0);
    }

    /// A reader starting after `after` (a seq from `Last-Event-ID`), or after
    /// whatever an earlier position-less reader already took.
    pub(crate) fn reader(
        self: &Arc<Self>,
        after: Option<u64>,
    ) -> impl Stream<Item = Bytes> + Send + use<> {
        self.reader_from(after, after.is_none())
    }

    /// A reader starting as [`EventLog::reader`] does; with `track`, what it
    /// reads counts as delivered even though it named a position (a stream
    /// resumed from the upstream's position is the session's stream from then on).
    pub(crate) fn reader_from(
        self: &Arc<Self>,
        after: Option<u64>,
        track: bool,
    ) -> impl Stream<Item = Bytes> + Send + use<> {
        let start = match after {
            Some(seq) => seq + 1,
            None => lock(&self.inner).delivered + 1,
        };
        let log = Arc::clone(self);
        let rx = log.changed.subscribe();
        futures_util::stream::unfold(
            (log, rx, start, track),
            |(log, mut rx, next, track)| async move {
                loop {
                    rx.borrow_and_update();
                    {
                        let mut inner = lock(&log.inner);
                        if let Some((seq, frame)) =
                            inner.events.iter().find(|(s, _)| *s >= next).cloned()
                        {
                            if track && seq > inner.delivered {
                                inner.delivered = seq;
                            }
                            return Some((frame, (log.clone(), rx, seq + 1, track)));
                        }
                        if inner.closed {
                            return None;
                        }
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}

/// An event id as [`EventLog`] writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventId {
    pub(crate) stream: u64,
    pub(crate) seq: u64,
    tag: u32,
}

/// Parses an event id `<stream>-<seq>-<tag>` written by [`EventLog`] (an
/// upstream part after it is left to [`upstream_part`]).
pub(crate) fn parse_event_id(id: &str) -> Option<EventId> {
    let id = id.trim();
    let own = id.split_once('.').map_or(id, |(own, _)| own);
    let mut parts = own.splitn(3, '-');
    let stream = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let tag = u32::from_str_radix(parts.next()?, 16).ok()?;
    Some(EventId { stream, seq, tag })
}

/// The sealed upstream position an event id carries, if any: what follows
/// the first `.` (our part never contains one).
pub(crate) fn upstream_part(id: &str) -> Option<&str> {
    id.trim()
        .split_once('.')
        .map(|(_, up)| up)
        .filter(|up| !up.is_empty())
}

/// Formats one SSE frame; data containing newlines becomes several `data:` lines.
pub(crate) fn frame(id: &str, event: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if !id.is_empty() {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    let text = String::from_utf8_lossy(data);
    if text.is_empty() {
        out.put_slice(b"data: \n");
    }
    for line in text.split('\n') {
        if text.is_empty() {
            break;
        }
        out.put_slice(b"data: ");
        out.put_slice(line.trim_end_matches('\r').as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
