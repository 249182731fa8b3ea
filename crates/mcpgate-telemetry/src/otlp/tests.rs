use std::collections::HashMap;

use super::*;

fn resolve(
    configured: Option<&str>,
    vars: &[(&str, &str)],
) -> Result<Option<ExportConfig>, TelemetryError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ExportConfig::resolve_with(configured, |k| vars.get(k).cloned())
}

fn endpoint(configured: Option<&str>, vars: &[(&str, &str)]) -> Option<String> {
    resolve(configured, vars)
        .ok()
        .flatten()
        .map(|c| c.endpoint.to_string())
}

#[test]
fn the_endpoint_comes_from_the_setting_then_the_signal_variable_then_the_base_variable() {
    assert_eq!(endpoint(None, &[]), None);
    assert_eq!(endpoint(Some("  "), &[]), None);
    let both = [
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
    ];
    assert_eq!(
        endpoint(Some("http://127.0.0.1:4318/"), &both).as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(
        endpoint(None, &both).as_deref(),
        Some("http://traces:4318/custom")
    );
    assert_eq!(
        endpoint(None, &both[1..]).as_deref(),
        Some("http://base:4318/v1/traces")
    );
}

#[test]
fn headers_and_timeout_come_from_the_environment() {
    let config = resolve(
        Some("http://127.0.0.1:4318"),
        &[
            ("OTEL_EXPORTER_OTLP_HEADERS", "ignored=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "authorization=Bearer%20abc , x-tenant=t1",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ],
    )
    .ok()
    .flatten()
    .expect("a configuration");
    assert_eq!(config.headers.len(), 2, "{:?}", config.headers);
    assert_eq!(config.headers["authorization"], "Bearer abc");
    assert_eq!(config.headers["x-tenant"], "t1");
    assert_eq!(config.timeout, Duration::from_millis(2500));
    let plain = resolve(Some("http://127.0.0.1:4318"), &[])
        .ok()
        .flatten()
        .expect("a configuration");
    assert!(plain.headers.is_empty());
    assert_eq!(plain.timeout, DEFAULT_TIMEOUT);
}

#[test]
fn what_cannot_be_honoured_is_an_error_that_names_it_without_the_secret() {
    for (configured, vars, says) in [
        (Some("not a url"), vec![], "not an http:// or https:// URL"),
        (
            Some("ftp://collector:4318"),
            vec![],
            "not an http:// or https:// URL",
        ),
        (
            Some("http://127.0.0.1:4318"),
            vec![("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
            "compression is not supported",
        ),
        (
            Some("http://127.0.0.1:4318"),
            vec![("OTEL_EXPORTER_OTLP_HEADERS", "authorization-secret-token")],
            "not a valid key=value header",
        ),
    ] {
        let err = resolve(configured, &vars).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains(says), "{configured:?} {vars:?}: {err}");
        assert!(!err.contains("secret-token"), "{err}");
    }
}
