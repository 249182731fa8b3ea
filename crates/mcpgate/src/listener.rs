//! The HTTP listener: accepts connections up to `server.max_connections`,
//! answers the ones beyond it with a quick 503, closes sockets that dawdle
//! over their request head or sit idle, backs off when the process runs out
//! of file descriptors, and shuts down gracefully.

mod activity;
mod request_end;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use self::activity::{Activity, Deadlines, Expiry, Tracked};
use self::request_end::RequestEnd;
use crate::event_loops::EventLoops;
use crate::live::LiveApp;

/// Connection limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// `server.header_read_timeout`.
    pub(crate) header_read_timeout: Duration,
    /// `server.idle_timeout`.
    pub(crate) idle_timeout: Duration,
    /// `server.max_connections` (or the default derived from the fd limit).
    pub(crate) max_connections: usize,
}

/// Connections beyond the cap being answered 503 at once (each holds a
/// descriptor for a moment); the accept loop waits when all are busy.
const MAX_SHEDDING: usize = 64;
/// How long a shed connection may take to send its request head, then read
/// its 503 and close.
const SHED_LINGER: Duration = Duration::from_millis(500);
/// How long a shed connection's request head is waited for before the 503
/// goes out anyway (a socket that sends nothing still gets its answer).
const SHED_HEAD_WAIT: Duration = Duration::from_millis(200);
/// The most of a shed connection's request read before answering.
const SHED_HEAD_MAX: usize = 16 * 1024;
/// The pause after `accept` fails for lack of descriptors.
const FD_BACKOFF: Duration = Duration::from_millis(100);
/// Repeated warnings (sheds, timeouts, EMFILE) are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A running listener; stop it with [`Handle::stop`].
pub(crate) struct Handle {
    stop: watch::Sender<bool>,
    tracker: TaskTracker,
}

impl Handle {
    /// Stops accepting, and asks every connection to finish its requests in
    /// flight and close.
    pub(crate) fn stop(&self) {
        let _ = self.stop.send(true);
        self.tracker.close();
    }

    /// Resolves when every connection has closed (after [`Handle::stop`]).
    pub(crate) async fn drained(&self) {
        self.tracker.wait().await;
    }
}

/// Starts serving `app` (the router current at each request) on `listener`,
/// each connection on one of `loops`.
pub(crate) fn spawn(
    listener: TcpListener,
    app: LiveApp,
    limits: ConnLimits,
    loops: Arc<EventLoops>,
) -> Handle {
    let (stop, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    let server = Server {
        app,
        limits,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        shedding: Arc::new(Semaphore::new(MAX_SHEDDING)),
        builder: builder(),
        stop: stop_rx,
        tracker: tracker.clone(),
        warnings: Arc::new(Warnings::default()),
        loops,
    };
    tracker.spawn(server.accept_loop(listener));
    Handle { stop, tracker }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // The watchdog enforces the header deadline for HTTP/1 and HTTP/2 alike;
    // hyper's own would also cut idle keep-alive connections at that deadline.
    b.http1().header_read_timeout(None);
    b
}

struct Server {
    app: LiveApp,
    limits: ConnLimits,
    slots: Arc<Semaphore>,
    shedding: Arc<Semaphore>,
    builder: auto::Builder<TokioExecutor>,
    stop: watch::Receiver<bool>,
    tracker: TaskTracker,
    warnings: Arc<Warnings>,
    loops: Arc<EventLoops>,
}

impl Server {
    async fn accept_loop(self, listener: TcpListener) {
        let mut stop = self.stop.clone();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) if out_of_descriptors(&e) => {
                    // Spinning on EMFILE only fills the log; connections wait in
                    // the backlog until a descriptor frees up.
                    self.warnings.emfile(&e, self.limits.max_connections);
                    tokio::time::sleep(FD_BACKOFF).await;
                    continue;
                }
                Err(e) => {
                    // The peer gave up before accept (ECONNABORTED and friends).
                    tracing::debug!("accept: {e}");
                    continue;
                }
            };
            // Without TCP_NODELAY every SSE event waits ~40 ms on Nagle and delayed ACKs.
            let _ = tcp.set_nodelay(true);
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let conn = Conn {
                        app: self.app.clone(),
                        builder: self.builder.clone(),
                        deadlines: Deadlines {
                            header_read: self.limits.header_read_timeout,
                            idle: self.limits.idle_timeout,
                        },
                        stop: self.stop.clone(),
                        warnings: self.warnings.clone(),
                    };
                    let at = self.loops.place();
                    match at.handle().cloned() {
                        None => {
                            self.tracker.spawn(async move {
                                conn.serve(tcp, peer).await;
                                drop((slot, at));
                            });
                        }
                        Some(other) => {
                            // The socket moves to the other loop's reactor, so
                            // that its readiness wakes that loop alone.
                            let tcp = match tcp.into_std() {
                                Ok(t) => t,
                                Err(e) => {
                                    tracing::debug!(%peer, "cannot hand the connection to an event loop: {e}");
                                    continue;
                                }
                            };
                            other.spawn(self.tracker.track_future(async move {
                                match TcpStream::from_std(tcp) {
                                    Ok(tcp) => conn.serve(tcp, peer).await,
                                    Err(e) => {
                                        tracing::debug!(%peer, "cannot serve the connection on its event loop: {e}");
                                    }
                                }
                                drop((slot, at));
                            }));
                        }
                    }
                }
                Err(_) => {
                    self.warnings.shed(peer, self.limits.max_connections);
                    // Waiting for a shedding slot holds further sockets in the
                    // backlog, where they cost this process no descriptor.
                    let Ok(permit) = self.shedding.clone().acquire_owned().await else {
                        break;
                    };
                    let max = self.limits.max_connections;
                    self.tracker.spawn(async move {
                        shed(tcp, max).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

/// Answers 503 on a connection beyond the cap and closes it.
async fn shed(mut tcp: TcpStream, max: usize) {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": mcpgate_gateway::jsonrpc::code::UPSTREAM_ERROR,
            "message": format!("the gateway is at its connection limit (server.max_connections = {max}); retry shortly"),
        }
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(SHED_LINGER, async {
        // An HTTP/1 client that gets an answer before it has sent its request
        // takes it for a broken connection (hyper's "unexpected message")
        // instead of reading the 503, so the request head comes first.
        let _ = tokio::time::timeout(SHED_HEAD_WAIT, read_head(&mut tcp)).await;
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await?;
        // Reading what the client sent before closing keeps the kernel from
        // answering it with a reset that could destroy the 503 in flight.
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Reads until the end of a request head (an empty line), the peer's EOF or
/// [`SHED_HEAD_MAX`] bytes.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut seen = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    while seen.len() < SHED_HEAD_MAX {
        let n = tcp.read(&mut chunk).await?;
        let Some(read) = chunk.get(..n).filter(|r| !r.is_empty()) else {
            break;
        };
        seen.extend_from_slice(read);
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(())
}

/// One accepted connection.
struct Conn {
    app: LiveApp,
    builder: auto::Builder<TokioExecutor>,
    deadlines: Deadlines,
    stop: watch::Receiver<bool>,
    warnings: Arc<Warnings>,
}

impl Conn {
    async fn serve(mut self, tcp: TcpStream, peer: SocketAddr) {
        let activity = Activity::new();
        let io = TokioIo::new(Tracked::new(tcp, activity.clone()));
        let app = self.app;
        let seen = activity.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let in_flight = seen.begin();
                let (mut req, end) = RequestEnd::watch(req);
                // The login throttle of the authorization server keys on the peer address.
                req.extensions_mut().insert(ConnectInfo(peer));
                // A reload swaps the router; this request keeps the one it got.
                let app = app.load();
                async move {
                    let mut resp = app.oneshot(req).await?;
                    if let Some(end) = end {
                        end.mark(&mut resp);
                    }
                    // The request stays in flight until its body (an SSE stream,
                    // perhaps) has been sent or dropped.
                    Ok::<_, Infallible>(resp.map(|b| {
                        Body::new(b.map_frame(move |f| {
                            let _ = &in_flight;
                            f
                        }))
                    }))
                }
            });
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let expired = tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            why = activity.expired(self.deadlines) => Some(why),
            _ = self.stop.wait_for(|s| *s) => None,
        };
        match expired {
            Some(Expiry::Header) => {
                // Half a request head (or none): nothing to answer; dropping closes it.
                self.warnings
                    .header_timeout(peer, self.deadlines.header_read);
                return;
            }
            Some(Expiry::Idle) => {
                tracing::trace!(%peer, "closing an idle connection (server.idle_timeout)");
            }
            None => {}
        }
        // Idle: closes at once. Stopping: requests in flight finish first (the
        // shutdown grace bounds that).
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// Rate-limited warnings, so that a flood of bad sockets cannot flood the log.
#[derive(Debug, Default)]
struct Warnings {
    shed: Throttle,
    header: Throttle,
    emfile: Throttle,
}

impl Warnings {
    fn shed(&self, peer: SocketAddr, max: usize) {
        if let Some(n) = self.shed.tick() {
            tracing::warn!(
                count = n,
                last_peer = %peer,
                "answered 503 to connections beyond server.max_connections = {max}; raise it (and the open-file limit) if this is legitimate load"
            );
        }
    }

    fn header_timeout(&self, peer: SocketAddr, limit: Duration) {
        if let Some(n) = self.header.tick() {
            tracing::info!(
                count = n,
                last_peer = %peer,
                "closed connections that sent no complete request head within server.header_read_timeout = {limit:?}"
            );
        }
    }

    fn emfile(&self, e: &std::io::Error, max: usize) {
        if let Some(n) = self.emfile.tick() {
            tracing::warn!(
                count = n,
                "accept: {e}; waiting for descriptors to free up (server.max_connections = {max}; raise the open-file limit or lower the cap)"
            );
        }
    }
}

/// Counts events and lets one through every [`WARN_EVERY`].
#[derive(Debug)]
struct Throttle {
    start: Instant,
    /// Milliseconds after `start` of the last event let through (`u64::MAX`: none yet).
    last: AtomicU64,
    count: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            start: Instant::now(),
            last: AtomicU64::new(u64::MAX),
            count: AtomicU64::new(0),
        }
    }
}

impl Throttle {
    /// `Some(events since the last one let through)` when this one should be logged.
    fn tick(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != u64::MAX && now.saturating_sub(last) < every {
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}
