//! Whether a request's body was read to its end before the answer went out.
//!
//! An answer given before the body is read (a 401 from authentication, a 404,
//! a 405) makes hyper close the HTTP/1 connection after it, since the rest of
//! the body would be taken for the next request, but without saying so: a
//! client that reuses the connection before the close reaches it sends its next
//! request into a closed socket ("server disconnected without sending a
//! response"). Such answers get `connection: close`, so the client opens a new
//! connection instead.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use http::header::{CONNECTION, HeaderValue};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};

/// Watches one HTTP/1 request body; `None` for a request without one, and on
/// HTTP/2, whose streams end on their own.
#[derive(Debug, Clone)]
pub(crate) struct RequestEnd(Arc<AtomicBool>);

impl RequestEnd {
    /// The body to hand to the application, and its watcher when it needs one.
    pub(crate) fn watch(
        req: hyper::Request<Incoming>,
    ) -> (hyper::Request<Body>, Option<RequestEnd>) {
        if req.version() > http::Version::HTTP_11 || req.body().is_end_stream() {
            return (req.map(Body::new), None);
        }
        let end = RequestEnd(Arc::new(AtomicBool::new(false)));
        let watched = end.clone();
        (
            req.map(|inner| {
                Body::new(Watched {
                    inner,
                    end: watched,
                })
            }),
            Some(end),
        )
    }

    /// Adds `connection: close` to an answer that went out before the body was read.
    pub(crate) fn mark<B>(&self, resp: &mut http::Response<B>) {
        if !self.0.load(Ordering::Acquire) {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// A request body that records when it has been read to its end.
#[derive(Debug)]
struct Watched {
    inner: Incoming,
    end: RequestEnd,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() || self.inner.is_end_stream() {
            self.end.0.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
