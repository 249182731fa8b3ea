//! The connection pool to other replicas' internal listeners (plain HTTP:
//! the internal network is the operator's to protect, docs/DEPLOYMENT.md).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, Error, ResponseFuture};
use hyper_util::rt::TokioExecutor;

/// A replica that does not accept within this is taken for gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Kept connections to the other replicas; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Forwarder {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(http),
        }
    }
}

impl Forwarder {
    /// Sends `req` on a kept or new connection.
    pub(crate) async fn request(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, Error> {
        let fut: ResponseFuture = self.client.request(req);
        fut.await
    }
}
