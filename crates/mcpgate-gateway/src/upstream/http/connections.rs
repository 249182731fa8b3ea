//! The kept connections to one HTTP upstream, one set per event loop.
//!
//! hyper-util's pooled client served us until the event loops (issue 17): it
//! keys its pool by scheme and authority under SipHash three times a request,
//! parks every returned connection behind a task of its own, and boxes its
//! futures. An upstream here has one origin and each loop its own pool, so
//! what is left is a stack of idle HTTP/1 senders and at most one HTTP/2
//! one. A sender goes back on the stack with its response body, read to its
//! end, or dropped and its rest read briefly on a task ([`DRAIN_WAIT`]). The
//! next request waits for it to be ready, which is at once when the
//! connection read the answer to its end; a connection left in the middle of
//! an answer is closed by hyper, and one still not ready after
//! [`KEPT_READY_WAIT`] is let go: either way the request takes the next one.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

use crate::event_loop::PerLoop;

/// An idle connection kept longer than this is closed rather than reused:
/// the upstream (or a middlebox) has likely forgotten it (hyper-util's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a request waits for a kept HTTP/1 connection that is still
/// finishing its previous answer before it takes another one.
const KEPT_READY_WAIT: Duration = Duration::from_millis(500);

/// Idle HTTP/1 connections kept per loop: what is returned beyond it is closed.
const MAX_IDLE: usize = 256;

type Error = Box<dyn std::error::Error + Send + Sync>;
type H1 = http1::SendRequest<Full<Bytes>>;
type H2 = http2::SendRequest<Full<Bytes>>;

/// One loop's connections.
#[derive(Default)]
struct Kept {
    /// Ready HTTP/1 senders, the most recently used last, with when each was returned.
    idle: Vec<(H1, Instant)>,
    /// The HTTP/2 connection, when the upstream negotiated it: one carries every request.
    h2: Option<H2>,
}

#[derive(Default)]
struct Slot(Mutex<Kept>);

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sender to try first: the HTTP/2 one, else the most recent idle HTTP/1 one.
    fn take(&self) -> Option<Sender> {
        let mut kept = self.lock();
        if let Some(h2) = kept.h2.as_ref() {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            kept.h2 = None;
        }
        while let Some((h1, since)) = kept.idle.pop() {
            if !h1.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(Sender::H1(h1));
            }
        }
        None
    }

    fn give_back(&self, h1: H1) {
        if h1.is_closed() {
            return;
        }
        let mut kept = self.lock();
        // The oldest is at the bottom, and a busy loop never reaches it by
        // popping: it is let go here once stale.
        if kept
            .idle
            .first()
            .is_some_and(|(_, since)| since.elapsed() >= IDLE_TIMEOUT)
        {
            kept.idle.remove(0);
        }
        if kept.idle.len() < MAX_IDLE {
            kept.idle.push((h1, Instant::now()));
        }
    }
}

enum Sender {
    H1(H1),
    H2(H2),
}

/// The connections to one upstream origin (`scheme://authority`).
pub(crate) struct Connections {
    connector: HttpsConnector<HttpConnector>,
    /// Where connections go: the upstream's URL with only its origin mattering.
    origin: Uri,
    /// The `Host` an HTTP/1 request carries: the authority, without a default port.
    host: Option<HeaderValue>,
    /// `origin`'s path and query, the target of most HTTP/1 requests, parsed once.
    path: Uri,
    loops: PerLoop<Arc<Slot>>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("origin", &self.origin)
            .field("loops", &self.loops)
            .finish()
    }
}

fn new_slot() -> Arc<Slot> {
    Arc::default()
}

impl Connections {
    /// Connections to `url`'s origin; every request sent must be for that
    /// origin. TLS trusts the built-in public roots, or `tls`'s when given
    /// (the upstream's `ca_file`).
    pub(crate) fn new(url: &Uri, tls: Option<rustls::ClientConfig>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match tls {
            Some(config) => builder.with_tls_config(config),
            None => builder.with_webpki_roots(),
        };
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Connections {
            connector,
            origin: url.clone(),
            host: host_header(url),
            path: path_of(url),
            loops: PerLoop::new(new_slot),
        }
    }

    /// Sends `req` (absolute-form, on this origin) on a kept connection of the
    /// calling loop, or a new one. A kept connection that turns out closed
    /// before the request went out is dropped and the request tried on the
    /// next; once a request is on the wire it is never sent twice.
    pub(crate) async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Body>, Error> {
        let slot = self.loops.get();
        let absolute = req.uri().clone();
        loop {
            let (sender, kept) = match slot.take() {
                Some(s) => (s, true),
                // Boxed: connecting (TCP, TLS, an HTTP/2 handshake) is a large
                // future, and every request's would be as large, copied on each move.
                None => (Box::pin(self.connect()).await?, false),
            };
            let sent = match sender {
                Sender::H2(mut h2) => {
                    *req.uri_mut() = absolute.clone();
                    if let Err(e) = h2.ready().await {
                        if kept {
                            continue;
                        }
                        return Err(e.into());
                    }
                    h2.try_send_request(req).await.map(|r| {
                        r.map(|inner| Body {
                            inner: Some(inner),
                            back: None,
                        })
                    })
                }
                Sender::H1(mut h1) => {
                    self.origin_form(&mut req, &absolute);
                    if let Err(e) = ready_h1(&mut h1, kept).await {
                        if kept {
                            continue;
                        }
                        return Err(e);
                    }
                    match h1.try_send_request(req).await {
                        Ok(r) => {
                            let back = Some((h1, slot.clone()));
                            return Ok(r.map(|inner| Body {
                                inner: Some(inner),
                                back,
                            }));
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match sent {
                Ok(r) => return Ok(r),
                Err(mut e) => match e.take_message() {
                    // Never written: a kept connection closed under it.
                    Some(back) if kept => req = back,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// Opens a connection on the calling loop; its task runs there too.
    async fn connect(&self) -> Result<Sender, Error> {
        let io = self.connector.clone().oneshot(self.origin.clone()).await?;
        if io.connected().is_negotiated_h2() {
            let (h2, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("an upstream HTTP/2 connection ended: {e}");
                }
            });
            self.loops.get().lock().h2 = Some(h2.clone());
            return Ok(Sender::H2(h2));
        }
        let (h1, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("an upstream HTTP/1 connection ended: {e}");
            }
        });
        Ok(Sender::H1(h1))
    }
}

/// Waits for an HTTP/1 sender to take a request. A kept one that is not ready
/// at once is still finishing the answer it carried (its last chunk in flight,
/// or a dropped answer being closed): it gets [`KEPT_READY_WAIT`], not the
/// request's whole timeout, and the request goes on another connection.
async fn ready_h1(h1: &mut H1, kept: bool) -> Result<(), Error> {
    if !kept || h1.is_ready() {
        return Ok(h1.ready().await?);
    }
    // Boxed: rare, and a timer would size every request's future.
    match Box::pin(tokio::time::timeout(KEPT_READY_WAIT, h1.ready())).await {
        Ok(r) => Ok(r?),
        Err(_) => Err("a kept upstream connection was not ready in time".into()),
    }
}

/// `Host` for `url`: its host, and its port unless the scheme's default.
fn host_header(url: &Uri) -> Option<HeaderValue> {
    let auth = url.authority()?;
    let default = match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let text = match auth.port_u16() {
        Some(p) if p != default => format!("{}:{p}", auth.host()),
        _ => auth.host().to_owned(),
    };
    HeaderValue::from_str(&text).ok()
}

/// `url`'s path and query as a URI of its own (origin-form).
fn path_of(url: &Uri) -> Uri {
    let path = url
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"))
}

impl Connections {
    /// HTTP/1 sends the path and query, and the authority as `Host`.
    fn origin_form(&self, req: &mut Request<Full<Bytes>>, absolute: &Uri) {
        *req.uri_mut() = if absolute.path_and_query() == self.path.path_and_query() {
            self.path.clone()
        } else {
            path_of(absolute)
        };
        if let Some(h) = &self.host
            && !req.headers().contains_key(HOST)
        {
            req.headers_mut().insert(HOST, h.clone());
        }
    }
}

/// An upstream response body. Read to its end or dropped, it returns its
/// HTTP/1 connection to the loop's kept ones.
pub(crate) struct Body {
    /// `None` only once dropped: its rest is being drained.
    inner: Option<Incoming>,
    back: Option<(H1, Arc<Slot>)>,
}

impl Body {
    fn finished(&mut self) {
        if let Some((h1, slot)) = self.back.take() {
            slot.give_back(h1);
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body is dropped before its end when its reader has what it wanted:
        // an SSE answer's response event came, and the stream's last chunk is
        // often still on its way. hyper would then close the connection (it
        // cannot send on one mid-answer), and a later request would pay for a
        // new one: about one 2026-07-28 call in 20 did. So the rest is read
        // for a moment on a task of this loop, and the connection kept if it
        // ends in time; a stream that goes on (a cancelled call's) is closed
        // after `DRAIN_WAIT`, which is when its upstream learns of the cancel.
        let Some(back) = self.back.take() else {
            return;
        };
        let Some(mut rest) = self.inner.take() else {
            return;
        };
        if http_body::Body::is_end_stream(&rest) {
            back.1.give_back(back.0);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if drained(&mut rest).await {
                back.1.give_back(back.0);
            }
        });
    }
}

/// How long a dropped body's rest is read before its connection is let go.
const DRAIN_WAIT: Duration = Duration::from_millis(20);
/// The most of a dropped body read to keep its connection.
const DRAIN_MAX: usize = 64 * 1024;

/// Reads `body` to its end within [`DRAIN_WAIT`] and [`DRAIN_MAX`] bytes;
/// whether it ended (its connection is then ready for the next request).
async fn drained(body: &mut Incoming) -> bool {
    use http_body_util::BodyExt as _;
    let mut read = 0usize;
    tokio::time::timeout(DRAIN_WAIT, async {
        loop {
            match body.frame().await {
                None => return true,
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    if read > DRAIN_MAX {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(&mut *inner).poll_frame(cx));
        let ended = inner.is_end_stream();
        match &frame {
            None => self.finished(),
            Some(Ok(_)) if ended => self.finished(),
            Some(Ok(_)) => {}
            // The connection is broken: it is let go, not kept.
            Some(Err(_)) => self.back = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose answer is still streaming is not taken: the wait
    /// for it ends after `KEPT_READY_WAIT` with an error, and a fresh
    /// connection's first wait succeeds.
    #[tokio::test]
    async fn a_kept_connection_still_answering_is_given_up_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // An answer that starts and never ends.
            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
            let _ = s.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut h1, conn) = http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        ready_h1(&mut h1, false)
            .await
            .expect("a new connection is ready");
        let req = Request::get("/")
            .header(HOST, "127.0.0.1")
            .body(Full::default())
            .unwrap();
        let answer = h1.send_request(req).await.unwrap();
        let started = Instant::now();
        let waited = ready_h1(&mut h1, true).await;
        assert!(waited.is_err(), "a connection mid-answer was taken");
        assert!(started.elapsed() >= KEPT_READY_WAIT);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(answer);
    }

    #[test]
    fn host_leaves_out_the_default_port() {
        let h = |u: &str| host_header(&u.parse().unwrap()).unwrap();
        assert_eq!(h("http://127.0.0.1:8080/mcp"), "127.0.0.1:8080");
        assert_eq!(h("http://example.com:80/mcp"), "example.com");
        assert_eq!(h("https://example.com:443/mcp"), "example.com");
        assert_eq!(h("https://example.com:80/mcp"), "example.com:80");
        assert_eq!(h("http://[::1]:9000/"), "[::1]:9000");
    }

    #[test]
    fn http1_sends_path_and_query_and_keeps_a_given_host() {
        let url: Uri = "http://127.0.0.1:9/mcp/x?session=1".parse().unwrap();
        let c = Connections::new(&"http://127.0.0.1:9/mcp/x".parse().unwrap(), None);
        let mut req = Request::post(url.clone()).body(Full::default()).unwrap();
        c.origin_form(&mut req, &url);
        assert_eq!(req.uri(), "/mcp/x?session=1");
        assert_eq!(req.headers()[HOST], "127.0.0.1:9");
        // The upstream's own URL: the path parsed once.
        let own: Uri = "http://127.0.0.1:9/mcp/x".parse().unwrap();
        let mut req = Request::post(own.clone())
            .header(HOST, "configured.example")
            .body(Full::default())
            .unwrap();
        c.origin_form(&mut req, &own);
        assert_eq!(req.uri(), "/mcp/x");
        assert_eq!(req.headers()[HOST], "configured.example");
        let root = Connections::new(&"http://127.0.0.1:9".parse().unwrap(), None);
        let mut req = Request::get("http://127.0.0.1:9")
            .body(Full::default())
            .unwrap();
        root.origin_form(&mut req, &"http://127.0.0.1:9".parse().unwrap());
        assert_eq!(req.uri(), "/");
    }

    /// An answer whose last chunk comes a moment after the part its reader
    /// wanted: the body is dropped early, its rest read on a task, and the
    /// connection kept. Without the drain hyper closes it and each request
    /// here would open a new one.
    #[tokio::test]
    async fn a_body_dropped_before_its_last_chunk_keeps_its_connection() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

        use http_body_util::BodyExt as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await
                        && n > 0
                    {
                        let head =
                            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
                        let _ = s.write_all(head.as_bytes()).await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let _ = s.write_all(b"0\r\n\r\n").await;
                    }
                });
            }
        });
        let url: Uri = format!("http://{addr}/").parse().unwrap();
        let c = Connections::new(&url, None);
        for _ in 0..3 {
            let req = Request::get(url.clone()).body(Full::default()).unwrap();
            let mut body = c.send(req).await.expect("an answer").into_body();
            let first = body.frame().await.expect("a frame").expect("data");
            assert_eq!(first.into_data().expect("data"), "hello");
            drop(body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(SeqCst), 1, "connections opened");
    }
}
