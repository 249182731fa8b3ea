//! Every MCP route is behind the guard's layer: built router, one request each.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mcpgate_guard::{Chain, StaticTokens, StaticTokensConfig};
use tower::ServiceExt;

use super::*;
use crate::auth::AccessMode;

const PUBLIC: &str = "https://gw.example";
const TOKEN: &str = "route-test-token-0123456789abcdef0123";

fn upstreams(names: &[&str]) -> Vec<UpstreamConfig> {
    #[derive(serde::Deserialize)]
    struct F {
        upstream: Vec<UpstreamConfig>,
    }
    // Nothing listens there: a request that reaches an upstream fails, which
    // a refusal by the guard never does.
    let text: String = names
        .iter()
        .map(|n| format!("[[upstream]]\nname = \"{n}\"\nurl = \"http://127.0.0.1:9/mcp\"\n\n"))
        .collect();
    toml::from_str::<F>(&text).expect("toml").upstream
}

fn gateway(names: &[&str], mode: AccessMode) -> Gateway {
    let tokens: StaticTokensConfig = toml::from_str(&format!(
        "[[tokens]]\ntoken = \"{TOKEN}\"\nsubject = \"alice\"\nscopes = \"notes:read\"\n"
    ))
    .expect("tokens");
    let chain = Chain::new(vec![Arc::new(
        StaticTokens::with_env(&tokens, |_| None).expect("static tokens"),
    )]);
    let public_url: url::Url = PUBLIC.parse().expect("url");
    let auth = AuthSettings {
        mode,
        chain,
        authorization_servers: vec![format!("{PUBLIC}/").parse().expect("issuer")],
        ..AuthSettings::disabled()
    };
    Gateway::new(GatewayConfig {
        upstreams: upstreams(names),
        limits: Limits::default(),
        origins: OriginPolicy::new(&public_url, "127.0.0.1:8080".parse().expect("addr"), &[]),
        auth,
        public_url,
        user_sources: Default::default(),
        readiness_checks: Vec::new(),
        session_keys: std::sync::Arc::new(crate::SessionKeys::random()),
        internal_advertise: None,
        virtual_servers: Vec::new(),
        rules: None,
        rate_limits: Vec::new(),
        quotas: None,
    })
    .expect("gateway")
}

/// A method, a path and the headers of one request.
type Route = (Method, String, Vec<(&'static str, &'static str)>);

/// Each MCP route with a request its handler would serve: streamable POST,
/// GET and DELETE, stateless (2026-07-28) POST, legacy SSE GET and message
/// POST; and a stateless GET, which the era answers 405, but only after the
/// guard (a refusal must not tell an unauthenticated caller what it would get).
fn every_route(single: bool) -> Vec<Route> {
    let json = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let mut stateless = json.clone();
    stateless.push(("mcp-protocol-version", "2026-07-28"));
    let session = vec![("mcp-session-id", "some-session")];
    let stateless_get = vec![("mcp-protocol-version", "2026-07-28")];
    let mut prefixes = vec!["/mcp/demo".to_owned()];
    if single {
        prefixes.push("/mcp".to_owned());
    }
    let mut routes = Vec::new();
    for p in &prefixes {
        routes.push((Method::POST, p.clone(), json.clone()));
        routes.push((Method::POST, p.clone(), stateless.clone()));
        routes.push((Method::GET, p.clone(), session.clone()));
        routes.push((Method::DELETE, p.clone(), session.clone()));
        routes.push((Method::GET, p.clone(), stateless_get.clone()));
    }
    routes.push((Method::GET, "/mcp/demo/sse".to_owned(), Vec::new()));
    routes.push((
        Method::POST,
        "/mcp/demo/messages?session_id=x".to_owned(),
        json.clone(),
    ));
    if single {
        routes.push((Method::GET, "/sse".to_owned(), Vec::new()));
        routes.push((Method::POST, "/messages?session_id=x".to_owned(), json));
    }
    routes
}

fn request(
    method: &Method,
    uri: &str,
    headers: &[(&str, &str)],
    token: Option<&str>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header(header::HOST, "gw.example");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = if *method == Method::POST {
        Body::from(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
    } else {
        Body::empty()
    };
    b.body(body).expect("request")
}

#[tokio::test]
async fn every_mcp_route_refuses_an_unauthenticated_request_with_the_challenge() {
    for (names, single) in [(&["demo"][..], true), (&["demo", "echo"][..], false)] {
        let router = gateway(names, AccessMode::Required).router();
        let routes = every_route(single);
        assert_eq!(routes.len(), if single { 14 } else { 7 });
        for (method, uri, headers) in routes {
            let resp = router
                .clone()
                .oneshot(request(&method, &uri, &headers, None))
                .await
                .expect("infallible");
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
            let www = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let endpoint = if uri.starts_with("/mcp/demo") || !single {
                "/mcp/demo"
            } else if uri.starts_with("/mcp") {
                "/mcp"
            } else {
                "/mcp/demo"
            };
            assert_eq!(
                www,
                format!(
                    "Bearer resource_metadata=\"{PUBLIC}/.well-known/oauth-protected-resource{endpoint}\""
                ),
                "{method} {uri}"
            );
        }
    }
}

#[tokio::test]
async fn a_bad_token_is_refused_on_every_route_and_a_good_one_reaches_the_handler() {
    let router = gateway(&["demo"], AccessMode::Required).router();
    for (method, uri, headers) in every_route(true) {
        let resp = router
            .clone()
            .oneshot(request(
                &method,
                &uri,
                &headers,
                Some("not-a-known-token-at-all-0123456789"),
            ))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    // With the token, the handler answers: here, that the session does not exist.
    let resp = router
        .oneshot(request(
            &Method::DELETE,
            "/mcp/demo",
            &[("mcp-session-id", "no-such-session")],
            Some(TOKEN),
        ))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_upstreams_and_open_routes_stay_as_they_were() {
    let router = gateway(&["demo", "echo"], AccessMode::Required).router();
    let resp = router
        .clone()
        .oneshot(request(&Method::POST, "/mcp/nope", &[], None))
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    for open in ["/healthz", "/.well-known/oauth-protected-resource/mcp/demo"] {
        let resp = router
            .clone()
            .oneshot(request(&Method::GET, open, &[], None))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "{open}");
    }
    // A CORS preflight carries no credential and is answered before the guard.
    let resp = router
        .oneshot(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/mcp/demo")
                .header(header::HOST, "gw.example")
                .header(header::ORIGIN, PUBLIC)
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[tokio::test]
async fn a_session_id_that_is_no_session_id_is_404_like_an_unknown_one() {
    let router = gateway(&["demo"], AccessMode::Required).router();
    for (method, uri, headers) in [
        (
            Method::DELETE,
            "/mcp/demo",
            vec![("mcp-session-id", "two words")],
        ),
        (
            Method::GET,
            "/mcp/demo",
            vec![
                ("mcp-session-id", "two words"),
                ("accept", "text/event-stream"),
            ],
        ),
        (
            Method::POST,
            "/mcp/demo/messages?session_id=two%20words",
            vec![("content-type", "application/json")],
        ),
    ] {
        let resp = router
            .clone()
            .oneshot(request(&method, uri, &headers, Some(TOKEN)))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {uri}");
    }
}
