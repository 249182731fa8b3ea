//! Noticing that a 2026-07-28 client closed its request stream. For such a
//! client that is the cancellation (it sends no `notifications/cancelled`
//! over HTTP), so the request must stop upstream too; for a session client a
//! disconnect is not a cancellation, and nothing here is used for one.

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;

/// Runs its closure when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// `r` with `f` run when its body is dropped: after the last byte went out,
/// or as soon as the server sees the client close the connection before that
/// (hyper drops a body whose peer hung up). The caller tells the two apart by
/// whether the request is still running.
pub(crate) fn on_body_drop(r: Response, f: impl FnOnce() + Send + 'static) -> Response {
    let (parts, body) = r.into_parts();
    let guard = OnDrop(Some(f));
    let stream = body.into_data_stream().map(move |chunk| {
        let _ = &guard;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
