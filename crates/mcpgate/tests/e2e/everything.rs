//! The reference `@modelcontextprotocol/server-everything` (npm, pinned in
//! tests/node) through the gateway, as a stdio child and as a Streamable HTTP
//! server, driven by the rmcp client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::json;

use crate::harness::client::{MODEL_REPLY, TestClient, call, connect, text_of};
use crate::harness::{Gateway, Proc, config, toml_str};

/// Forces node servers onto 127.0.0.1 and prints the bound port on stdout.
const LOOPBACK_PRELOAD: &str = r#"
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  if (typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port))) {
    const cb = args.find((a) => typeof a === "function");
    this.once("listening", () => console.log(`e2e: listening on 127.0.0.1:${this.address().port}`));
    const opts = { port: Number(port), host: "127.0.0.1" };
    return cb ? listen.call(this, opts, cb) : listen.call(this, opts);
  }
  return listen.apply(this, args);
};
"#;

/// The installed server's entry point; a missing install fails the test with the fix.
pub(crate) fn entry() -> PathBuf {
    let modules = std::env::var_os("MCPGATE_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node/node_modules")
        });
    let entry = modules.join("@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.is_file(),
        "server-everything is not installed ({} is missing): run `npm ci` in tests/node \
         (scripts/test does it), or point MCPGATE_NODE_MODULES at a node_modules that has it",
        entry.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` is not runnable ({node:?}): install Node.js 20+ to run the server-everything tests"
    );
    entry.canonicalize().expect("canonical path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_stdio() {
    let entry = entry();
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\ncommand = [\"node\", {}, \"stdio\"]\n",
        toml_str(&entry.display().to_string())
    );
    let gw = Gateway::start(&config(&upstream)).await;
    exercise(&gw.mcp("everything")).await;
}

/// server-everything in Streamable HTTP mode (its sessions keep an in-memory
/// event store, so its streams are resumable): the process, its `/mcp` URL,
/// and the directory holding its log.
pub(crate) async fn start_streamable_http() -> (Proc, String, tempfile::TempDir) {
    let entry = entry();
    let dir = tempfile::tempdir().expect("tempdir");
    let preload = dir.path().join("loopback.cjs");
    std::fs::write(&preload, LOOPBACK_PRELOAD).expect("write the preload");
    let mut cmd = Command::new("node");
    cmd.arg("--require")
        .arg(&preload)
        .arg(&entry)
        .arg("streamableHttp")
        .env("PORT", "0");
    let (server, line) = Proc::spawn(
        "server-everything (streamableHttp)",
        cmd,
        &dir.path().join("everything.log"),
        "e2e: listening on ",
    )
    .await;
    let addr = line
        .split("listening on ")
        .nth(1)
        .expect("an address")
        .trim();
    (server, format!("http://{addr}/mcp"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_streamable_http() {
    let (_server, url, _dir) = start_streamable_http().await;
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&url)
    );
    let gw = Gateway::start(&config(&upstream)).await;
    exercise(&gw.mcp("everything")).await;
}

async fn exercise(url: &str) {
    let handler = TestClient::default();
    let (client, _) = connect(url, handler.clone()).await;

    // The sampling tool is registered once the server has seen `initialized`.
    let mut names = Vec::new();
    for _ in 0..40 {
        names = client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.iter().any(|n| n == "trigger-sampling-request") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for want in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        "trigger-sampling-request",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "no tool {want} in {names:?}"
        );
    }

    let prompts: Vec<String> = client
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    for want in ["simple-prompt", "args-prompt"] {
        assert!(
            prompts.iter().any(|p| p == want),
            "no prompt {want} in {prompts:?}"
        );
    }
    let simple = client
        .get_prompt(GetPromptRequestParams::new("simple-prompt"))
        .await
        .expect("prompts/get simple-prompt");
    let rendered = serde_json::to_string(&simple.messages).expect("serializes");
    assert!(
        rendered.contains("This is a simple prompt without arguments."),
        "{rendered}"
    );

    let resources = client.list_all_resources().await.expect("resources/list");
    let first = resources.first().expect("at least one resource");
    let read = client
        .read_resource(ReadResourceRequestParams::new(first.uri.clone()))
        .await
        .unwrap_or_else(|e| panic!("resources/read {}: {e}", first.uri));
    assert!(!read.contents.is_empty(), "{read:?}");
    let dynamic = "demo://resource/dynamic/text/7";
    let read = client
        .read_resource(ReadResourceRequestParams::new(dynamic))
        .await
        .expect("resources/read of a templated resource");
    let [ResourceContents::TextResourceContents { uri, text, .. }] = read.contents.as_slice()
    else {
        panic!("one text content expected: {read:?}");
    };
    assert_eq!(uri, dynamic);
    assert!(text.starts_with("Resource 7: "), "{text}");

    let echoed = call(&client, "echo", json!({ "message": "hello, everything ✓" })).await;
    assert_eq!(text_of(&echoed), "Echo: hello, everything ✓");
    for (a, b, sum) in [(2, 40, "42"), (-7, 3, "-4")] {
        let r = call(&client, "get-sum", json!({ "a": a, "b": b })).await;
        assert_eq!(text_of(&r), format!("The sum of {a} and {b} is {sum}."));
    }
    let r = call(&client, "get-sum", json!({ "a": 1.5, "b": 2.25 })).await;
    assert_eq!(text_of(&r), "The sum of 1.5 and 2.25 is 3.75.");

    // Sampling round trip: server → gateway → client's model → back.
    let r = call(
        &client,
        "trigger-sampling-request",
        json!({ "prompt": "Say hi to the gateway", "maxTokens": 20 }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert!(text_of(&r).contains(MODEL_REPLY), "{}", text_of(&r));
    let sampled = handler.sampled.lock().expect("lock").clone();
    assert_eq!(sampled.len(), 1, "{sampled:?}");
    assert!(sampled[0].contains("Say hi to the gateway"), "{sampled:?}");

    client.cancel().await.expect("the client closes");
}
