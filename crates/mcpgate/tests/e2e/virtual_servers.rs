//! An rmcp client through a virtual server (`[[virtual_server]]`) over the
//! demo (stdio), `server-everything` (stdio, with `tools.rename`) and the
//! demo over Streamable HTTP (`prefix = false`, `tools.allow`): one merged
//! tool list, calls routed with the prefix removed, and a member's
//! elicitation answered by the client.

use std::collections::BTreeSet;

use rmcp::model::CallToolRequestParams;
use serde_json::json;

use crate::harness::client::{TestClient, call, call_ok, connect, text_of};
use crate::harness::{DemoHttp, Gateway, config, demo_stdio_upstream, toml_str};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_through_a_virtual_server() {
    let data = tempfile::tempdir().expect("tempdir");
    let web = DemoHttp::start().await;
    let everything = crate::everything::entry();
    let upstreams = format!(
        "{}\n[[upstream]]\nname = \"everything\"\ncommand = [\"node\", {}, \"stdio\"]\ntools.rename = {{ echo = \"say\" }}\n\n\
         [[upstream]]\nname = \"web\"\nurl = {}\ntransport = \"streamable-http\"\nprefix = false\ntools.allow = [\"whoami\"]\n\n\
         [[virtual_server]]\nname = \"work\"\nupstreams = [\"demo\", \"everything\", \"web\"]\n",
        demo_stdio_upstream("demo", data.path(), ""),
        toml_str(&everything.display().to_string()),
        toml_str(&web.url),
    );
    let gw = Gateway::start(&config(&upstreams)).await;
    let handler = TestClient::default();
    let (client, _recording) = connect(&gw.mcp("work"), handler.clone()).await;

    let tools: BTreeSet<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for name in [
        "demo_whoami",
        "demo_confirm_action",
        "everything_say",
        "everything_get-sum",
        "whoami",
    ] {
        assert!(tools.contains(name), "{name} missing from {tools:?}");
    }
    for name in ["everything_echo", "web_whoami", "health_check", "echo"] {
        assert!(!tools.contains(name), "{name} listed: {tools:?}");
    }

    // Routed with the prefix removed (and the rename undone).
    let said = call(&client, "everything_say", json!({ "message": "hi" })).await;
    assert_eq!(text_of(&said), "Echo: hi");
    let sum = call(&client, "everything_get-sum", json!({ "a": 2, "b": 40 })).await;
    assert_eq!(text_of(&sum), "The sum of 2 and 40 is 42.");
    let me = call_ok(&client, "whoami", json!({})).await;
    assert!(me.get("subject").is_some(), "{me}");

    // A member's question reaches the client, and its answer the member.
    let confirmed = call_ok(
        &client,
        "demo_confirm_action",
        json!({ "action": "merge the lists" }),
    )
    .await;
    assert_eq!(
        confirmed,
        json!({ "action": "accept", "confirmed": true, "outcome": "confirmed: merge the lists" })
    );
    assert_eq!(
        handler.elicited.lock().expect("lock").as_slice(),
        ["The demo server wants to: merge the lists. Go ahead?"]
    );

    // A name no member shows does not exist.
    let refused = client
        .call_tool(CallToolRequestParams::new("everything_echo"))
        .await
        .expect_err("a hidden name is refused");
    assert!(
        refused
            .to_string()
            .contains("Unknown tool: everything_echo"),
        "{refused}"
    );
    client.cancel().await.expect("the session ends");
}
