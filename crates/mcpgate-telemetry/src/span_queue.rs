//! The batch of spans waiting for export, already encoded, and the task
//! that posts it.
//!
//! A request's spans are encoded when it ends, straight into the batch
//! being filled (one lock, one append: no span record, no channel send per
//! span); a full batch wakes the export task, which posts batches one at a
//! time, and everything queued once per schedule delay. The limits are the
//! batch span processor's, from the same variables: `OTEL_BSP_MAX_QUEUE_SIZE`
//! (spans queued at most; 16,384 here, the SDK's 2,048 dropped spans at ten
//! thousand requests a second), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512),
//! `OTEL_BSP_SCHEDULE_DELAY` (5,000 ms), `OTEL_BSP_EXPORT_TIMEOUT`
//! (30,000 ms) and `OTEL_BSP_MAX_CONCURRENT_EXPORTS` (batches posted at once,
//! 1). Spans beyond the queue are dropped and counted, and the log says so.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::otlp::OtlpExporter;
use crate::otlp::proto::Envelope;

/// The batch limits, from `OTEL_BSP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_queue: usize,
    pub(crate) max_batch: usize,
    pub(crate) delay: Duration,
    pub(crate) export_timeout: Duration,
    /// Batches being posted at once, at most.
    pub(crate) max_concurrent: usize,
}

impl Limits {
    pub(crate) fn from_env() -> Limits {
        Limits::with(|k| std::env::var(k).ok())
    }

    pub(crate) fn with(env: impl Fn(&str) -> Option<String>) -> Limits {
        let num = |k: &str| env(k).and_then(|v| v.trim().parse::<u64>().ok());
        let max_queue = num("OTEL_BSP_MAX_QUEUE_SIZE").map_or(16_384, |v| v as usize);
        let max_batch = num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").map_or(512, |v| v as usize);
        Limits {
            max_queue: max_queue.max(1),
            // No larger than the queue, as the specification says.
            max_batch: max_batch.clamp(1, max_queue.max(1)),
            delay: Duration::from_millis(num("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5_000)),
            export_timeout: Duration::from_millis(num("OTEL_BSP_EXPORT_TIMEOUT").unwrap_or(30_000)),
            max_concurrent: num("OTEL_BSP_MAX_CONCURRENT_EXPORTS")
                .map_or(1, |v| (v as usize).max(1)),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The batch being filled: encoded `ScopeSpans.spans` fields.
    filling: Vec<u8>,
    filling_spans: usize,
    /// Full batches waiting for the task.
    full: VecDeque<(Vec<u8>, usize)>,
    /// Spans in `filling` and `full`.
    queued: usize,
    dropped: u64,
    closed: bool,
}

impl State {
    /// A batch to fill: `head` bytes of room for the envelope (written
    /// there at export, [`Envelope::wrap`]), then the spans.
    fn empty_batch(head: usize, capacity: usize) -> Vec<u8> {
        let mut b = Vec::with_capacity(capacity.max(head));
        b.resize(head, 0);
        b
    }

    fn seal(&mut self, head: usize) {
        // Sized as the last one: a batch does not grow (and copy) while
        // it fills. It is posted without a copy, so it is not reused.
        let next = State::empty_batch(head, self.filling.capacity());
        let batch = std::mem::replace(&mut self.filling, next);
        self.full.push_back((batch, self.filling_spans));
        self.filling_spans = 0;
    }
}

/// The queue between the requests and the export task.
#[derive(Debug)]
pub(crate) struct SpanQueue {
    state: Mutex<State>,
    wake: Notify,
    limits: Limits,
    /// The room kept in front of every batch for the envelope.
    head: usize,
    /// Set on the first drop of a run, so that the log says it once.
    dropping: AtomicBool,
}

impl SpanQueue {
    /// A queue whose batches keep `head` bytes in front for the envelope.
    pub(crate) fn new(limits: Limits, head: usize) -> SpanQueue {
        SpanQueue {
            state: Mutex::new(State {
                filling: State::empty_batch(head, 0),
                ..State::default()
            }),
            wake: Notify::new(),
            limits,
            head,
            dropping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while appending leaves at worst a torn batch behind, which
        // the collector refuses; the queue itself stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `n` spans (one request's) for export, written by `write`
    /// straight into the batch being filled, or drops them all when the
    /// queue is full or closed.
    pub(crate) fn push(&self, n: usize, write: impl FnOnce(&mut Vec<u8>)) {
        if n == 0 {
            return;
        }
        let mut s = self.lock();
        if s.closed || s.queued + n > self.limits.max_queue {
            s.dropped += n as u64;
            drop(s);
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the span export queue is full ({} spans): spans are dropped until the \
                     collector catches up (raise OTEL_BSP_MAX_QUEUE_SIZE, or check the collector)",
                    self.limits.max_queue
                );
            }
            return;
        }
        if s.filling_spans > 0 && s.filling_spans + n > self.limits.max_batch {
            s.seal(self.head);
            self.wake.notify_one();
        }
        write(&mut s.filling);
        s.filling_spans += n;
        s.queued += n;
        if s.filling_spans >= self.limits.max_batch {
            s.seal(self.head);
            drop(s);
            self.wake.notify_one();
        }
    }

    /// The next batch to post: a full one, else (with `all`) the one being
    /// filled.
    fn take(&self, all: bool) -> Option<(Vec<u8>, usize)> {
        let mut s = self.lock();
        if s.full.is_empty() && all && s.filling_spans > 0 {
            s.seal(self.head);
        }
        let (batch, n) = s.full.pop_front()?;
        s.queued -= n;
        // Room again: the next run of drops is logged again.
        self.dropping.store(false, Ordering::Relaxed);
        Some((batch, n))
    }

    /// Stops taking spans; the task posts what is queued and ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Spans dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// Whether the last export went through, so that a collector that is down
/// is logged once when it goes and once when it comes back.
#[derive(Debug, Default)]
struct Health {
    failing: u64,
}

impl Health {
    fn record(&mut self, result: Result<(), String>, exporter: &OtlpExporter) {
        match result {
            Ok(()) if self.failing > 0 => {
                tracing::info!(
                    endpoint = %exporter.endpoint(),
                    "spans are exported again after {} failed export(s)",
                    self.failing
                );
                self.failing = 0;
            }
            Ok(()) => {}
            Err(e) => {
                if self.failing == 0 {
                    tracing::warn!(
                        "{e}; those spans are lost (this is logged once until an export succeeds)"
                    );
                } else {
                    tracing::debug!("{e}");
                }
                self.failing += 1;
            }
        }
    }
}

/// Posts one export request within the export timeout.
async fn post(
    exporter: Arc<OtlpExporter>,
    body: opentelemetry_http::Bytes,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, exporter.post(body)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the export to {} took longer than OTEL_BSP_EXPORT_TIMEOUT ({} ms)",
            exporter.endpoint(),
            timeout.as_millis()
        )),
    }
}

/// What the export task woke up for.
enum Wake {
    /// A batch is full (or the queue closed).
    Full,
    /// The schedule delay is over: everything queued goes.
    Due,
    /// A post ended.
    Posted(Result<Result<(), String>, tokio::task::JoinError>),
}

/// The result of a post task, a task that failed included.
fn outcome(joined: Result<Result<(), String>, tokio::task::JoinError>) -> Result<(), String> {
    joined.unwrap_or_else(|e| Err(format!("the span export task failed: {e}")))
}

/// The export task: posts full batches as they come and everything queued
/// once per schedule delay, at most `OTEL_BSP_MAX_CONCURRENT_EXPORTS` at
/// once; once the queue is closed, posts what is left, waits for the posts
/// and returns.
pub(crate) async fn run(queue: Arc<SpanQueue>, exporter: OtlpExporter, envelope: Envelope) {
    let exporter = Arc::new(exporter);
    let mut health = Health::default();
    let mut posting = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::now() + queue.limits.delay;
    loop {
        let wake = tokio::select! {
            () = queue.wake.notified() => Wake::Full,
            () = tokio::time::sleep_until(next) => Wake::Due,
            Some(done) = posting.join_next(), if !posting.is_empty() => Wake::Posted(done),
        };
        let due = match wake {
            Wake::Posted(done) => {
                health.record(outcome(done), &exporter);
                false
            }
            Wake::Due => {
                next = tokio::time::Instant::now() + queue.limits.delay;
                true
            }
            Wake::Full => false,
        };
        let closed = queue.closed();
        loop {
            // A batch stays queued (and counted) until a post can take it.
            if posting.len() >= queue.limits.max_concurrent {
                if let Some(done) = posting.join_next().await {
                    health.record(outcome(done), &exporter);
                }
                continue;
            }
            let Some((batch, _)) = queue.take(due || closed) else {
                break;
            };
            let body = envelope.wrap(batch, queue.head);
            posting.spawn(post(exporter.clone(), body, queue.limits.export_timeout));
        }
        if closed {
            while let Some(done) = posting.join_next().await {
                health.record(outcome(done), &exporter);
            }
            let dropped = queue.dropped();
            if dropped > 0 {
                tracing::warn!("{dropped} span(s) were dropped because the export queue was full");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests;
