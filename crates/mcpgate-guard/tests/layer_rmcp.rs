//! End to end: the `rmcp_guarded` example's server on loopback, and a real
//! rmcp client with and without its token.

use std::net::SocketAddr;

use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ClientInitializeError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::Value;

#[path = "../examples/rmcp_guarded.rs"]
#[allow(dead_code)] // its `main` is not used here
mod example;

const TOKEN: &str = "e2e-token-0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://idp.example.com";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

/// Starts the example's server on 127.0.0.1:0 with `TOKEN` for alice and a
/// JWT issuer (never contacted: no JWT is sent); returns its address.
async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let env = |name: &str| match name {
        "WHOAMI_TOKENS" => Some(format!("{TOKEN}:alice:notes:read notes:write")),
        "WHOAMI_JWT_ISSUER" => Some(ISSUER.to_owned()),
        "WHOAMI_JWT_JWKS_URI" => Some("http://127.0.0.1:9/jwks".to_owned()),
        _ => None,
    };
    let (chain, settings) = example::guard_from_env(env, addr).expect("guard settings");
    let app = example::app(chain, settings);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn transport(
    addr: SocketAddr,
    token: Option<&str>,
) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    StreamableHttpClientTransport::from_config(config)
}

#[tokio::test]
async fn rmcp_client_with_the_token_is_told_who_it_is() {
    let addr = start().await;
    let client = ().serve(transport(addr, Some(TOKEN))).await.expect("connects");
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect("whoami");
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let caller = result.structured_content.expect("structured reply");
    assert_eq!(caller["subject"], "alice");
    assert_eq!(
        caller["scopes"],
        serde_json::json!(["notes:read", "notes:write"])
    );
    assert_eq!(caller["method"], "static_token");
    client.cancel().await.expect("closes");
}

/// The `WWW-Authenticate` challenge an rmcp client was refused with.
fn challenge_of(err: &ClientInitializeError) -> Option<String> {
    let ClientInitializeError::TransportError { error, .. } = err else {
        return None;
    };
    let http = error
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()?;
    match http {
        StreamableHttpError::AuthRequired(e) => Some(e.www_authenticate_header.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn rmcp_client_without_the_token_gets_the_challenge() {
    let addr = start().await;
    let err = ().serve(transport(addr, None)).await.expect_err("refused without a token");
    let challenge = challenge_of(&err).unwrap_or_else(|| panic!("no challenge in {err}"));
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
        )
    );
    let wrong = ()
        .serve(transport(
            addr,
            Some("wrong-token-0123456789abcdef0123456789"),
        ))
        .await
        .expect_err("refused with a wrong token");
    let challenge = challenge_of(&wrong).unwrap_or_else(|| panic!("no challenge in {wrong}"));
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn raw_http_sees_401_400_and_the_metadata() {
    let addr = start().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    let r = http
        .post(format!("{base}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().expect("ascii");
    assert_eq!(
        www,
        format!(
            "Bearer resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
        )
    );

    let r = http
        .post(format!("{base}/mcp?access_token={TOKEN}"))
        .header("content-type", "application/json")
        .body(INITIALIZE)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");

    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.expect("get");
        assert_eq!(r.status(), 200, "{path}");
        let doc: Value = r.json().await.expect("json");
        assert_eq!(doc["resource"], format!("http://{addr}/mcp"));
        assert_eq!(doc["authorization_servers"], serde_json::json!([ISSUER]));
    }
}

#[tokio::test]
async fn the_layer_wraps_rmcp_service_directly_without_axum() {
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full};
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    use tower::{Layer, ServiceExt};

    let env = |name: &str| (name == "WHOAMI_TOKENS").then(|| format!("{TOKEN}:carol"));
    let (chain, settings) =
        example::guard_from_env(env, ([127, 0, 0, 1], 8000).into()).expect("guard settings");
    let mcp = StreamableHttpService::new(
        || Ok(example::Whoami::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let service = mcpgate_guard::require_auth(chain, settings).layer(mcp);
    let request = |token: Option<&str>| {
        let mut b = http::Request::post("http://127.0.0.1:8000/mcp")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Full::new(bytes::Bytes::from_static(INITIALIZE.as_bytes())))
            .expect("request")
    };

    let refused = service
        .clone()
        .oneshot(request(None))
        .await
        .expect("infallible");
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Bearer ")
    );
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Authorization required"));

    let accepted = service
        .oneshot(request(Some(TOKEN)))
        .await
        .expect("infallible");
    assert_eq!(accepted.status(), 200);
    assert!(accepted.headers().contains_key("mcp-session-id"));
}
