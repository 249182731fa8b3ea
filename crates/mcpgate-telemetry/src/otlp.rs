//! The span exporter behind the SDK's batch processor: OTLP/HTTP with
//! protobuf bodies ([`proto`] writes them from the span records without the
//! generic conversion), posted with `opentelemetry-http`'s hyper client on
//! the Tokio runtime, over plain HTTP or HTTPS (rustls, the web PKI roots, as
//! the gateway's own upstream client).
//!
//! The processor is the SDK's thread-based one: ending a span is a send on a
//! bounded channel that wakes nobody until a batch is full, where the
//! runtime-based processor woke its task for every span. Its thread has no
//! Tokio reactor, so the post is spawned onto the runtime and awaited there.
//!
//! Configured as the OTLP exporter specification says: the endpoint from
//! `[telemetry] otlp_endpoint` (with `/v1/traces`), else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces`); headers from
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS`
//! (`key=value,…`, percent-encoded); the timeout in milliseconds from
//! `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
//! (10 s). Compression is not offered: asking for it is an error.

mod proto;

use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::TelemetryError;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how spans are sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExportConfig {
    pub(crate) endpoint: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl ExportConfig {
    /// The configuration from the setting (`configured`, a base URL) and the
    /// environment; `None` when neither names an endpoint.
    pub(crate) fn resolve(
        configured: Option<&str>,
    ) -> Result<Option<ExportConfig>, TelemetryError> {
        Self::resolve_with(configured, env)
    }

    fn resolve_with(
        configured: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ExportConfig>, TelemetryError> {
        let endpoint = match (
            configured.map(str::trim).filter(|e| !e.is_empty()),
            env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(base), _, _) => with_path(base),
            (None, Some(full), _) => full.trim().to_owned(),
            (None, None, Some(base)) => with_path(&base),
            (None, None, None) => return Ok(None),
        };
        let endpoint: Uri = endpoint
            .parse()
            .ok()
            .filter(|u: &Uri| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            })
            .ok_or_else(|| {
                TelemetryError::Otlp(format!(
                    "the endpoint {endpoint:?} is not an http:// or https:// URL"
                ))
            })?;
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ] {
            if let Some(c) = env(var).filter(|c| c.trim() != "none") {
                return Err(TelemetryError::Otlp(format!(
                    "{var}={c}: compression is not supported; unset it"
                )));
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(given) =
            env("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            for pair in given.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let header = pair.split_once('=').and_then(|(k, v)| {
                    let k = percent_encoding::percent_decode_str(k.trim())
                        .decode_utf8()
                        .ok()?;
                    let v = percent_encoding::percent_decode_str(v.trim())
                        .decode_utf8()
                        .ok()?;
                    Some((
                        HeaderName::from_bytes(k.as_bytes()).ok()?,
                        HeaderValue::from_str(&v).ok()?,
                    ))
                });
                // The pair itself may hold a credential: not repeated here.
                let (k, v) = header.ok_or_else(|| {
                    TelemetryError::Otlp(
                        "OTEL_EXPORTER_OTLP_(TRACES_)HEADERS holds an entry that is not a valid key=value header"
                            .to_owned(),
                    )
                })?;
                headers.insert(k, v);
            }
        }
        let timeout = env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|t| t.trim().parse().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(Some(ExportConfig {
            endpoint,
            headers,
            timeout,
        }))
    }
}

fn with_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim().trim_end_matches('/'))
}

/// HTTP and HTTPS, so a collector behind TLS (most hosted ones) is reachable.
fn connector() -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// The exporter the batch processor calls with each batch.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    config: ExportConfig,
    client: HyperClient<HttpsConnector<HttpConnector>>,
    runtime: tokio::runtime::Handle,
    encoder: Mutex<proto::Encoder>,
    body: Mutex<Vec<u8>>,
}

impl OtlpExporter {
    /// An exporter posting on `runtime`.
    pub(crate) fn new(config: ExportConfig, runtime: tokio::runtime::Handle) -> OtlpExporter {
        OtlpExporter {
            client: HyperClient::new(connector(), config.timeout, None),
            runtime,
            config,
            encoder: Mutex::new(proto::Encoder::default()),
            body: Mutex::new(Vec::new()),
        }
    }

    /// The request body for `batch`; the buffers are reused, the body is one
    /// copy of exactly its size.
    fn encode(&self, batch: &[SpanData]) -> Bytes {
        let mut encoder = self.encoder.lock().unwrap_or_else(|p| p.into_inner());
        let mut body = self.body.lock().unwrap_or_else(|p| p.into_inner());
        encoder.encode(batch, &mut body);
        Bytes::copy_from_slice(&body)
    }

    fn request(&self, body: Bytes) -> Result<http::Request<Bytes>, http::Error> {
        let mut req = http::Request::post(self.config.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)?;
        req.headers_mut().extend(
            self.config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(req)
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.encode(&batch);
        drop(batch);
        let req = self
            .request(body)
            .map_err(|e| OTelSdkError::InternalFailure(format!("OTLP request: {e}")))?;
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(req).await.map(|r| r.status()) });
        match sent.await {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            // A collector that refuses the batch (a wrong path, a missing
            // credential header) must show in the SDK's error log, not pass.
            Ok(Ok(status)) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export to {} was refused with HTTP {status}",
                self.config.endpoint
            ))),
            Ok(Err(e)) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export to {} failed: {e}",
                self.config.endpoint
            ))),
            Err(e) => Err(OTelSdkError::InternalFailure(format!(
                "OTLP export to {} did not finish: {e}",
                self.config.endpoint
            ))),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.encoder
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .set_resource(resource);
    }
}

#[cfg(test)]
mod tests;
