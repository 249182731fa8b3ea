//! A layer that runs a synchronous check on each request before the routes.
//!
//! axum's `from_fn` middleware clones the service under it and boxes a future
//! on every request, so that an async function can hold the rest of the
//! stack. The Origin check and the choice of upstream need no await: they
//! either answer at once or pass the request on, changed, to the service that
//! was polled ready (issue 17).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, MapOk, TryFutureExt};
use tower::{Layer, Service};

/// A check: `Ok` passes the request on, `Err` is the answer.
pub(crate) type CheckFn<T> = fn(&T, &mut Request) -> Result<(), Response>;

/// Runs `check` with `state` on each request.
pub(crate) struct PreCheck<T> {
    state: T,
    check: CheckFn<T>,
}

impl<T: Clone> Clone for PreCheck<T> {
    fn clone(&self) -> Self {
        PreCheck {
            state: self.state.clone(),
            check: self.check,
        }
    }
}

impl<T> PreCheck<T> {
    pub(crate) fn new(state: T, check: CheckFn<T>) -> Self {
        PreCheck { state, check }
    }
}

impl<T: Clone, S> Layer<S> for PreCheck<T> {
    type Service = Checked<T, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Checked {
            check: self.clone(),
            inner,
        }
    }
}

/// The service [`PreCheck`] makes.
pub(crate) struct Checked<T, S> {
    check: PreCheck<T>,
    inner: S,
}

impl<T: Clone, S: Clone> Clone for Checked<T, S> {
    fn clone(&self) -> Self {
        Checked {
            check: self.check.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S> Service<Request> for Checked<T, S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<Ready<Result<Response, Infallible>>, MapOk<S::Future, fn(S::Response) -> Response>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match (self.check.check)(&self.check.state, &mut req) {
            Ok(()) => Either::Right(
                self.inner
                    .call(req)
                    .map_ok(IntoResponse::into_response as fn(_) -> _),
            ),
            Err(answer) => Either::Left(ready(Ok(answer))),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    /// Refuses a request without `x-pass`, and marks the others.
    fn check(marker: &&'static str, req: &mut Request) -> Result<(), Response> {
        if !req.headers().contains_key("x-pass") {
            return Err(StatusCode::FORBIDDEN.into_response());
        }
        req.extensions_mut().insert(*marker);
        Ok(())
    }

    async fn routes(req: Request) -> Result<Response, Infallible> {
        let marked = req.extensions().get::<&'static str>().copied();
        Ok(marked.unwrap_or("unmarked").into_response())
    }

    #[tokio::test]
    async fn a_check_answers_or_passes_the_request_on_changed() {
        let service = PreCheck::new("marked", check).layer(tower::service_fn(routes));
        let refused = service
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let passed = service
            .oneshot(
                Request::builder()
                    .header("x-pass", "1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(passed.status(), StatusCode::OK);
        let body = axum::body::to_bytes(passed.into_body(), 64).await.unwrap();
        assert_eq!(&body[..], b"marked");
    }
}
