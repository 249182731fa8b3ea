//! The connection pool to other replicas' internal listeners (plain HTTP:
//! the internal network is the operator's to protect, docs/DEPLOYMENT.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error, ResponseFuture};
use hyper_util::rt::TokioExecutor;

use crate::event_loop::PerLoop;

/// A replica that does not accept within this is taken for gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Kept connections to the other replicas, one pool per event loop (see
/// `event_loop.rs`); cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    clients: Arc<PerLoop<Client<HttpConnector, Full<Bytes>>>>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Forwarder {
            clients: Arc::new(PerLoop::new(client)),
        }
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

impl Forwarder {
    /// Sends `req` on a kept or new connection.
    pub(crate) async fn request(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, Error> {
        let fut: ResponseFuture = self.clients.get().request(req);
        fut.await
    }
}
