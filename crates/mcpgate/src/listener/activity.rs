//! One connection's activity: requests in flight, and when it last went idle
//! or began sending a request head. The watchdog closes a socket that dawdles
//! over its headers or sits idle, and never one with a request in flight: an
//! SSE GET stream or a long `tools/call` counts as in flight until its answer
//! ends, however long it is silent.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The deadlines the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From accept (or the first byte of a later request) to a complete request head.
    pub(crate) header_read: Duration,
    /// With no request in flight, between the end of one answer and the next request.
    pub(crate) idle: Duration,
}

/// Why the watchdog gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No complete request head within `header_read_timeout`.
    Header,
    /// No request for `idle_timeout`.
    Idle,
}

/// "No time recorded" in the millisecond fields.
const NONE: u64 = u64::MAX;

/// Shared between the connection's IO, its service and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the last request in flight ended (0 at accept).
    idle_since: AtomicU64,
    /// Milliseconds after `epoch` when bytes of a new request head began to arrive.
    head_since: AtomicU64,
    /// Whether any request has been served: the first must start within `header_read`.
    served: AtomicBool,
    wake: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            served: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// A request has arrived; it counts as in flight until the guard drops
    /// (when its answer, streamed or not, has been sent or abandoned).
    ///
    /// The watchdog is not woken: a request in flight only removes the
    /// deadline, and the watchdog finds that out when its timer fires.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        self.head_since.store(NONE, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Bytes arrived: while idle, they start the next request's head.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0
            && self
                .head_since
                .compare_exchange(NONE, self.now_ms(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    /// The current deadline, if the connection has nothing in flight.
    fn deadline(&self, d: &Deadlines) -> Option<(Duration, Expiry)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::SeqCst);
        if head != NONE {
            return Some((Duration::from_millis(head) + d.header_read, Expiry::Header));
        }
        let idle = Duration::from_millis(self.idle_since.load(Ordering::SeqCst));
        if self.served.load(Ordering::SeqCst) {
            Some((idle + d.idle, Expiry::Idle))
        } else {
            // A socket that never sends a request is a half-open header.
            Some((idle + d.header_read, Expiry::Header))
        }
    }

    /// Resolves when the connection has overstayed a deadline.
    ///
    /// One timer, moved only when it fires or a request head begins (the one
    /// change that can bring the deadline forward): a keep-alive connection
    /// busy with requests costs no wake-up of its own per request.
    pub(crate) async fn expired(&self, d: Deadlines) -> Expiry {
        let epoch = tokio::time::Instant::from_std(self.epoch);
        let timer = tokio::time::sleep_until(epoch);
        tokio::pin!(timer);
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so no change is missed.
            notified.as_mut().enable();
            let now = self.epoch.elapsed();
            let at = match self.deadline(&d) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at,
                // Nothing expires while a request is in flight, nor sooner than
                // `idle` after it ends, so `idle` from now is never too late.
                None => now + d.idle,
            };
            if timer.deadline() != epoch + at {
                timer.as_mut().reset(epoch + at);
            }
            tokio::select! {
                () = timer.as_mut() => {}
                () = notified => {}
            }
        }
    }
}

/// One request in flight; dropping it may start the idle clock (a later
/// deadline than any the watchdog has armed, so it is not woken).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            a.idle_since.store(a.now_ms(), Ordering::SeqCst);
            a.head_since.store(NONE, Ordering::SeqCst);
        }
    }
}

/// A socket that reports reads to its [`Activity`], and closes lingering.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// `None` only once dropped.
    io: Option<TcpStream>,
    activity: Arc<Activity>,
}

/// How long a closed connection may keep sending what nobody reads.
const LINGER: Duration = Duration::from_secs(1);

impl Tracked {
    pub(crate) fn new(io: TcpStream, activity: Arc<Activity>) -> Self {
        Tracked {
            io: Some(io),
            activity,
        }
    }

    fn io(&mut self) -> io::Result<&mut TcpStream> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Tracked {
    /// A connection answered before its request body was read (413 by
    /// `Content-Length`) still has the body arriving: closing it then would
    /// reset the connection and destroy the answer before the client reads
    /// it. Such a socket is half-closed and drained for a moment instead.
    fn drop(&mut self) {
        let Some(mut tcp) = self.io.take() else {
            return;
        };
        let mut probe = [0u8; 1];
        if !matches!(tcp.try_read(&mut probe), Ok(n) if n > 0) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(LINGER, async {
                    tcp.shutdown().await?;
                    let mut sink = vec![0u8; 16 * 1024];
                    while tcp.read(&mut sink).await? > 0 {}
                    Ok::<_, io::Error>(())
                })
                .await;
            });
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(self.io()?).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines {
        header_read: Duration::from_millis(50),
        idle: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn a_silent_new_connection_expires_at_the_header_deadline() {
        let a = Activity::new();
        let t = Instant::now();
        assert_eq!(a.expired(D).await, Expiry::Header);
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_request_in_flight_never_expires_and_idle_follows_it() {
        let a = Activity::new();
        let guard = a.begin();
        let r = tokio::time::timeout(Duration::from_millis(400), a.expired(D)).await;
        assert!(r.is_err(), "expired with a request in flight");
        drop(guard);
        let t = Instant::now();
        assert_eq!(a.expired(D).await, Expiry::Idle);
        assert!(t.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_request_served_while_the_watchdog_sleeps_moves_it_to_the_idle_deadline() {
        let a = Activity::new();
        let watched = a.clone();
        let watchdog = tokio::spawn(async move { watched.expired(D).await });
        // The watchdog arms the header deadline of a new connection...
        tokio::task::yield_now().await;
        // ...and a request comes and goes without waking it.
        drop(a.begin());
        assert_eq!(watchdog.await.unwrap(), Expiry::Idle);
    }

    #[tokio::test]
    async fn bytes_while_idle_start_the_header_clock() {
        let a = Activity::new();
        drop(a.begin());
        a.on_read();
        let t = Instant::now();
        assert_eq!(a.expired(D).await, Expiry::Header);
        assert!(t.elapsed() < Duration::from_millis(150));
    }
}
