//! The span exporter: OTLP/HTTP with protobuf bodies ([`proto`] writes them
//! from mcpgate's span records, without the SDK's records or the generic
//! conversion), posted with `opentelemetry-http`'s hyper client by the
//! export queue's task ([`crate::span_queue`]), over plain HTTP or HTTPS
//! (rustls, the web PKI roots, as the gateway's own upstream client).
//!
//! Configured as the OTLP exporter specification says: the endpoint from
//! `[telemetry] otlp_endpoint` (with `/v1/traces`), else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces`); headers from
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS`
//! (`key=value,…`, percent-encoded); the timeout in milliseconds from
//! `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
//! (10 s). Compression is not offered: asking for it is an error.

pub(crate) mod proto;

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient};

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

/// Posts export requests to the collector.
#[derive(Debug)]
pub(crate) struct OtlpExporter {
    config: ExportConfig,
    client: HyperClient<HttpsConnector<HttpConnector>>,
}

impl OtlpExporter {
    pub(crate) fn new(config: ExportConfig) -> OtlpExporter {
        OtlpExporter {
            client: HyperClient::new(connector(), config.timeout, None),
            config,
        }
    }

    /// Where the spans go, for log lines.
    pub(crate) fn endpoint(&self) -> &Uri {
        &self.config.endpoint
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

    /// Posts one `ExportTraceServiceRequest`; the error says why it did
    /// not arrive (never the configured headers, which may hold a
    /// credential).
    pub(crate) async fn post(&self, body: Bytes) -> Result<(), String> {
        let req = self
            .request(body)
            .map_err(|e| format!("the OTLP request could not be built: {e}"))?;
        match self.client.send_bytes(req).await {
            Ok(r) if r.status().is_success() => Ok(()),
            // A collector that refuses the batch (a wrong path, a missing
            // credential header) must show in the log, not pass.
            Ok(r) => Err(format!(
                "the collector at {} refused the spans with HTTP {}",
                self.config.endpoint,
                r.status()
            )),
            Err(e) => Err(format!(
                "posting the spans to {} failed: {e}",
                self.config.endpoint
            )),
        }
    }
}

#[cfg(test)]
mod tests;
