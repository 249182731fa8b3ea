//! `[[rate_limit]]` as an rmcp client meets it (issue 18): of concurrent
//! calls of a tool limited to N per window exactly N pass and the others are
//! answered with JSON-RPC -32029 naming the rule and the retry time; a
//! request-level rule refuses the HTTP request with 429 and `Retry-After`,
//! which rmcp hands the caller as a transport error carrying both.

use rmcp::ServiceError;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpError;
use serde_json::{Value, json};

use crate::harness::client::{TestClient, call_ok, connect};
use crate::harness::{Gateway, config, demo_stdio_upstream};

const RATE_LIMITED: i32 = -32029;

/// `echo` of `demo` 3 times a minute (a per-tool rule); every request to
/// `busy` 4 times a minute (a request-level rule).
fn limited_gateway_config(data: &std::path::Path) -> String {
    let upstreams = format!(
        "{}{}\
         [[rate_limit]]\nname = \"echo-burst\"\nupstream = \"demo\"\ntool = \"echo\"\nlimit = 3\nper = \"1m\"\n\n\
         [[rate_limit]]\nname = \"busy-requests\"\nupstream = \"busy\"\nlimit = 4\nper = \"1m\"\n",
        demo_stdio_upstream("demo", &data.join("demo"), ""),
        demo_stdio_upstream("busy", &data.join("busy"), ""),
    );
    config(&upstreams)
}

fn echo(text: &str) -> CallToolRequestParams {
    let Value::Object(args) = json!({ "text": text }) else {
        unreachable!("an object literal")
    };
    CallToolRequestParams::new("echo").with_arguments(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_of_concurrent_rmcp_calls_pass_the_rest_get_32029() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&limited_gateway_config(data.path())).await;
    let (client, _recording) = connect(&gw.mcp("demo"), TestClient::default()).await;

    let calls = (0..8).map(|i| client.call_tool(echo(&format!("call {i}"))));
    let outcomes = futures_util::future::join_all(calls).await;
    let mut passed = 0;
    let mut refused = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(result) => {
                assert_ne!(result.is_error, Some(true), "{result:?}");
                passed += 1;
            }
            Err(ServiceError::McpError(e)) => refused.push(e),
            Err(other) => panic!("a call failed otherwise than by the limit: {other:?}"),
        }
    }
    assert_eq!((passed, refused.len()), (3, 5), "{refused:?}");
    for e in &refused {
        assert_eq!(e.code.0, RATE_LIMITED, "{e:?}");
        assert!(
            e.message
                .starts_with("Rate limit echo-burst: tools/call of \"echo\" refused"),
            "{}",
            e.message
        );
        let data = e.data.as_ref().expect("the refusal carries data");
        assert_eq!(data["rule"], "echo-burst", "{data}");
        assert_eq!(data["limit"], 3, "{data}");
        assert_eq!(data["windowSeconds"], 60, "{data}");
        // A bucket of 3 a minute refills one call every 20 s.
        let retry = data["retryAfterSeconds"]
            .as_u64()
            .expect("retryAfterSeconds");
        assert!((1..=20).contains(&retry), "{data}");
    }
    // The session goes on, and a tool the rule does not name is not limited.
    let me = call_ok(&client, "whoami", json!({})).await;
    assert!(me.get("subject").is_some(), "{me}");
    client.cancel().await.expect("the session ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_level_limit_reaches_an_rmcp_client_as_http_429_with_retry_after() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&limited_gateway_config(data.path())).await;
    // `initialize` and `notifications/initialized` are requests to the
    // endpoint too: 2 of the 4 are used by connecting (the GET stream is not
    // an MCP request).
    let (client, _recording) = connect(&gw.mcp("busy"), TestClient::default()).await;
    for i in 0..2 {
        let said = client.call_tool(echo(&format!("call {i}"))).await;
        assert!(said.is_ok(), "call {i} within the limit: {said:?}");
    }
    let refused = client
        .call_tool(echo("one too many"))
        .await
        .expect_err("the fifth request of the minute is refused");
    // rmcp does not read a 429's body: the caller gets the status and the
    // Retry-After value, as a transport error.
    let ServiceError::TransportSend(sent) = &refused else {
        panic!("expected a transport error, got {refused:?}");
    };
    let Some(StreamableHttpError::HttpStatus(status)) = sent
        .error
        .downcast_ref::<StreamableHttpError<reqwest::Error>>()
    else {
        panic!("expected an HTTP status error, got {refused:?}");
    };
    assert_eq!(status.status, 429, "{refused:?}");
    // 4 a minute: the next request is allowed within 15 s.
    let retry: u64 = status
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {status:?}"));
    assert!((1..=15).contains(&retry), "{status:?}");
    // What the caller prints: "Transport send error: Transport [<rmcp's type>] error: HTTP 429".
    let shown = refused.to_string();
    assert!(
        shown.starts_with("Transport send error: ") && shown.ends_with("error: HTTP 429"),
        "{shown}"
    );
    // Another upstream is under no request-level rule.
    let (other, _) = connect(&gw.mcp("demo"), TestClient::default()).await;
    let me = call_ok(&other, "whoami", json!({})).await;
    assert!(me.get("subject").is_some(), "{me}");
    other.cancel().await.expect("the session ends");
    let _ = client.cancel().await;
}
