use axum::body::Body;
use axum::routing::{get, post};
use tower::ServiceExt;

use super::*;

async fn status_of(app: Router, req: http::Request<Body>) -> u16 {
    app.oneshot(req)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_mcp_method() {
    crate::metrics().record(true);
    let app = observe(Router::new().route(
        "/mcp/{name}",
        post(|| async {
            crate::note_mcp("metrics-test", Some("tools/list"), Some("1"), None, None);
            "ok"
        }),
    ));
    let req = http::Request::post("/mcp/metrics-test")
        .body(Body::empty())
        .unwrap_or_default();
    assert_eq!(status_of(app.clone(), req).await, 200);
    let req = http::Request::get("/nowhere")
        .body(Body::empty())
        .unwrap_or_default();
    assert_eq!(status_of(app, req).await, 404);
    let text = crate::metrics().encode();
    assert!(
        text.contains("mcpgate_http_requests_total{route=\"/mcp/{name}\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_http_requests_total{route=\"unmatched\",status=\"404\"}"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_mcp_requests_total{upstream=\"metrics-test\",method=\"tools/list\",outcome=\"ok\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_redirected_authorization_error_is_a_refusal() {
    crate::metrics().record(true);
    let app = observe(Router::new().route(
        "/authorize",
        get(|| async {
            (
                http::StatusCode::FOUND,
                [(http::header::LOCATION, "https://app.example/cb?error=invalid_scope&error_description=no+such+scope&state=x")],
            )
        }),
    ));
    let req = http::Request::get("/authorize?client_id=abc")
        .body(Body::empty())
        .unwrap_or_default();
    assert_eq!(status_of(app, req).await, 302);
    let text = crate::metrics().encode();
    assert!(
        text.contains(
            "mcpgate_oauth_failures_total{endpoint=\"/authorize\",error=\"invalid_scope\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn request_ids_differ() {
    assert_ne!(new_request_id().as_str(), new_request_id().as_str());
}

#[test]
fn request_ids_are_the_start_time_and_a_counter_in_hex() {
    for (v, width, want) in [
        (0_u64, 1, "0"),
        (0, 6, "000000"),
        (0xabc, 6, "000abc"),
        (0x6934_5f21, 1, "69345f21"),
        (u64::MAX, 6, "ffffffffffffffff"),
    ] {
        let mut out = Text::short();
        hex_into(&mut out, v, width);
        assert_eq!(out.as_str(), want);
        assert_eq!(out.as_str(), format!("{v:0width$x}"));
        let mut owned = Text::Owned(String::new());
        hex_into(&mut owned, v, width);
        assert_eq!(owned.as_str(), want);
    }
}

#[test]
fn client_addresses_are_written_as_display_does() {
    for ip in [
        "127.0.0.1",
        "0.0.0.0",
        "10.20.100.255",
        "192.168.9.99",
        "::1",
        "2001:db8::ff00:42:8329",
    ] {
        let ip: std::net::IpAddr = ip.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        assert_eq!(client_address(ip).as_str(), ip.to_string());
    }
}
