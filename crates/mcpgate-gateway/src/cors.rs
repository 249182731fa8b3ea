//! CORS for the MCP routes, worked out only for requests a browser sent.
//!
//! tower-http's [`Cors`] computes its headers on every request, and axum
//! clones each route's whole service stack per request, so the layer's
//! configuration (origin list, header lists) was copied and dropped on every
//! `tools/call` (issue 17). A browser always sends `Origin` on a CORS
//! request; a request without one (every CLI and SDK client) gets only the
//! `Vary` that tower-http would have added, so a cache still keeps a
//! browser's answer apart from theirs.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderValue, Request, Response, header};
use futures_util::future::{Either, MapOk, TryFutureExt};
use tower::{Layer, Service};
use tower_http::cors::{Cors, CorsLayer};

/// What tower-http's [`CorsLayer`] puts in `Vary` by default: the
/// preflight's request headers. Ours never sets another list.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// Wraps a service in tower-http's [`Cors`] for requests with `Origin`.
#[derive(Clone)]
pub(crate) struct BrowserCors {
    cors: Arc<CorsLayer>,
}

impl BrowserCors {
    pub(crate) fn new(cors: CorsLayer) -> Self {
        Self {
            cors: Arc::new(cors),
        }
    }
}

impl<S> Layer<S> for BrowserCors {
    type Service = BrowserCorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserCorsService {
            cors: self.cors.clone(),
            inner,
        }
    }
}

/// The service [`BrowserCors`] makes: cloning it costs one reference count.
#[derive(Clone)]
pub(crate) struct BrowserCorsService<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

type AddVary<F, B> = MapOk<F, fn(Response<B>) -> Response<B>>;

fn add_vary<B>(mut response: Response<B>) -> Response<B> {
    // Appended, as tower-http does: the inner service may vary on more.
    response.headers_mut().append(header::VARY, VARY);
    response
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BrowserCorsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<AddVary<S::Future, ResBody>, tower_http::cors::ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !req.headers().contains_key(header::ORIGIN) {
            return Either::Left(self.inner.call(req).map_ok(add_vary as fn(_) -> _));
        }
        // The service polled ready is the one that must serve: it goes into
        // the CORS wrapper, a clone stays here for the next call.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        let mut cors: Cors<S> = self.cors.layer(ready);
        Either::Right(cors.call(req))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::http::Method;
    use tower::ServiceExt;
    use tower_http::cors::AllowOrigin;

    use super::*;

    type Answer = std::future::Ready<Result<Response<Body>, Infallible>>;

    /// The routes behind the layer: an answer that varies on `Accept`.
    fn inner(_req: Request<Body>) -> Answer {
        let mut r = Response::new(Body::empty());
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
        std::future::ready(Ok(r))
    }

    type Routes = tower::util::ServiceFn<fn(Request<Body>) -> Answer>;

    fn service() -> BrowserCorsService<Routes> {
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list([HeaderValue::from_static(
                "https://app.example",
            )]))
            .allow_methods([Method::POST])
            .expose_headers([header::HeaderName::from_static("mcp-session-id")]);
        BrowserCors::new(cors).layer(tower::service_fn(inner as fn(_) -> _))
    }

    fn post(origin: Option<&'static str>) -> Request<Body> {
        let mut b = Request::post("/mcp");
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::empty()).unwrap()
    }

    fn values(r: &Response<Body>, name: header::HeaderName) -> Vec<&str> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    /// The `Vary` a plain tower-http `Cors` adds, so the shortcut matches it.
    async fn tower_http_vary() -> String {
        let r = CorsLayer::new()
            .layer(tower::service_fn(|_req: Request<Body>| async {
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }))
            .oneshot(post(None))
            .await
            .unwrap();
        r.headers()[header::VARY].to_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn a_request_without_origin_gets_the_same_vary_and_nothing_else() {
        let r = service().oneshot(post(None)).await.unwrap();
        assert_eq!(
            values(&r, header::VARY),
            ["accept", tower_http_vary().await.as_str()]
        );
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_EXPOSE_HEADERS)
                .is_none()
        );
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_browser_request_gets_the_cors_headers() {
        let r = service()
            .oneshot(post(Some("https://app.example")))
            .await
            .unwrap();
        assert_eq!(
            values(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            ["https://app.example"]
        );
        assert_eq!(
            values(&r, header::ACCESS_CONTROL_EXPOSE_HEADERS),
            ["mcp-session-id"]
        );
        assert_eq!(
            values(&r, header::VARY),
            ["accept", tower_http_vary().await.as_str()]
        );
    }

    #[tokio::test]
    async fn a_preflight_is_answered_by_tower_http() {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .uri("/mcp")
            .header(header::ORIGIN, "https://app.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap();
        let r = service().oneshot(req).await.unwrap();
        assert_eq!(values(&r, header::ACCESS_CONTROL_ALLOW_METHODS), ["POST"]);
        // The inner service never ran: its own `Vary: accept` is absent.
        assert_eq!(values(&r, header::VARY), [tower_http_vary().await.as_str()]);
    }
}
