//! End to end: real rmcp clients against `serve_http` on loopback.

// Sampling is deprecated by SEP-2577; the demo still serves it and these
// tests answer it.
#![allow(deprecated)]

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{HeaderName, HeaderValue};
use mcpgate_demo::{DemoOptions, serve_http};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt as _,
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientRequest,
        CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
        ElicitationAction, ErrorCode, GetPromptRequestParams, Implementation,
        ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams, Request,
        ResourceContents, SamplingMessage,
    },
    service::{
        ClientLifecycleMode, ClientServiceExt as _, NotificationContext, PeerRequestOptions,
        RequestContext, RunningService, ServiceError,
    },
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

type Client = RunningService<RoleClient, TestClient>;

/// What the test client's "model" answers to every sampling request.
const MODEL_REPLY: &str = "Foxes jump; dogs nap.";
const MISSING_CREDENTIAL: &str = "MCPGATE_DEMO_TEST_CREDENTIAL_THAT_IS_NEVER_SET";

// ---------------------------------------------------------------- server --

struct Server {
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), mcpgate_demo::DemoError>>,
}

async fn start(data_dir: &Path) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let opts = DemoOptions {
        data_dir: data_dir.to_path_buf(),
        credential_names: vec!["PATH".to_owned(), MISSING_CREDENTIAL.to_owned()],
    };
    let task = tokio::spawn(serve_http(listener, opts, async move {
        let _ = stopped.await;
    }));
    Server { url, stop, task }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .expect("server task did not panic")
            .expect("server ended without error");
    }
}

// ---------------------------------------------------------------- client --

/// What the test client's "user" answers to an elicitation.
#[derive(Clone, Copy)]
enum Answer {
    Accept { confirm: bool },
    Decline,
    Cancel,
}

#[derive(Clone)]
struct TestClient {
    answer: Answer,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    elicited: Arc<Mutex<Vec<String>>>,
    sampled: Arc<Mutex<Vec<String>>>,
}

impl TestClient {
    fn new(answer: Answer) -> Self {
        Self {
            answer,
            progress: Arc::default(),
            elicited: Arc::default(),
            sampled: Arc::default(),
        }
    }

    fn progress_count(&self) -> usize {
        self.progress.lock().expect("lock").len()
    }
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder()
                .enable_elicitation()
                .enable_sampling()
                .build(),
            Implementation::new("mcpgate-demo-tests", "0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, rmcp::ErrorData> {
        let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = request
        else {
            return Err(rmcp::ErrorData::invalid_params("expected a form", None));
        };
        let schema = serde_json::to_value(&requested_schema).expect("schema serializes");
        assert_eq!(schema["properties"]["confirm"]["type"], "boolean");
        self.elicited.lock().expect("lock").push(message);
        Ok(match self.answer {
            Answer::Accept { confirm } => ElicitResult::new(ElicitationAction::Accept)
                .with_content(json!({ "confirm": confirm })),
            Answer::Decline => ElicitResult::new(ElicitationAction::Decline),
            Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        })
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, rmcp::ErrorData> {
        let asked: String = params
            .messages
            .iter()
            .flat_map(|message| message.content.iter())
            .filter_map(|block| block.as_text())
            .map(|text| text.text.clone())
            .collect();
        self.sampled.lock().expect("lock").push(asked);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(MODEL_REPLY),
            "test-model".to_owned(),
        ))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().expect("lock").push(params);
    }
}

fn transport(url: &str, subject: Option<&str>) -> StreamableHttpClientTransport<reqwest::Client> {
    let mut headers = HashMap::new();
    if let Some(subject) = subject {
        headers.insert(
            HeaderName::from_static("x-mcpgate-subject"),
            HeaderValue::from_str(subject).expect("header value"),
        );
    }
    StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    )
}

async fn connect(url: &str, subject: Option<&str>, handler: TestClient) -> Client {
    handler
        .serve(transport(url, subject))
        .await
        .expect("client connects")
}

async fn connect_2026(url: &str, subject: &str, handler: TestClient) -> Client {
    handler
        .serve_with_lifecycle(
            transport(url, Some(subject)),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("2026-07-28 client connects")
}

// --------------------------------------------------------------- helpers --

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap_or_else(|error| panic!("{tool} failed at the protocol level: {error}"))
}

/// The structured reply of a successful call.
async fn call_ok(client: &Client, tool: &'static str, args: Value) -> Value {
    let result = call(client, tool, args).await;
    assert_eq!(result.is_error, Some(false), "{tool} failed: {result:?}");
    result
        .structured_content
        .unwrap_or_else(|| panic!("{tool} returned no structured content"))
}

/// The message of a call that failed as a tool error (`isError: true`).
async fn call_err(client: &Client, tool: &'static str, args: Value) -> String {
    let result = call(client, tool, args).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} should fail: {result:?}"
    );
    text_of(&result)
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|text| text.text.as_str())
        .collect()
}

async fn read_json(client: &Client, uri: &str) -> Result<Value, ServiceError> {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await?;
    let [
        ResourceContents::TextResourceContents {
            text, mime_type, ..
        },
    ] = result.contents.as_slice()
    else {
        panic!("expected one text content for {uri}: {result:?}");
    };
    assert_eq!(mime_type.as_deref(), Some("application/json"));
    Ok(serde_json::from_str(text).expect("resource is JSON"))
}

fn error_code(error: ServiceError) -> ErrorCode {
    match error {
        ServiceError::McpError(error) => error.code,
        other => panic!("expected an MCP error, got {other}"),
    }
}

// ----------------------------------------------------------------- tests --

#[tokio::test]
async fn every_tool_resource_and_prompt() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let handler = TestClient::new(Answer::Accept { confirm: true });
    let alice = connect(&server.url, Some("alice"), handler.clone()).await;

    let tools: BTreeSet<String> = alice
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    let expected: BTreeSet<String> = [
        "whoami",
        "create_secure_note",
        "list_secure_notes",
        "get_api_usage",
        "health_check",
        "slow_count",
        "confirm_action",
        "summarize",
        "echo",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(tools, expected);

    // whoami
    let me = call_ok(&alice, "whoami", json!({})).await;
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["source"], "header");

    // create_secure_note, with its validation
    let note = call_ok(
        &alice,
        "create_secure_note",
        json!({ "title": "  Groceries ", "content": "milk, eggs" }),
    )
    .await;
    assert_eq!(note["title"], "Groceries");
    assert_eq!(note["content"], "milk, eggs");
    let id = note["id"].as_i64().expect("numeric id");
    assert_eq!(note["uri"], format!("user://notes/{id}"));

    let empty = call_err(
        &alice,
        "create_secure_note",
        json!({ "title": " ", "content": "x" }),
    )
    .await;
    assert!(empty.contains("title is empty"), "{empty}");
    let long = call_err(
        &alice,
        "create_secure_note",
        json!({ "title": "t".repeat(201), "content": "x" }),
    )
    .await;
    assert!(long.contains("at most 200"), "{long}");
    let big = call_err(
        &alice,
        "create_secure_note",
        json!({ "title": "big", "content": "x".repeat(64 * 1024 + 1) }),
    )
    .await;
    assert!(big.contains("64 KiB"), "{big}");

    // list_secure_notes: the one valid note only
    let listed = call_ok(&alice, "list_secure_notes", json!({})).await;
    assert_eq!(listed["subject"], "alice");
    let notes = listed["notes"].as_array().expect("notes array");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["id"], id);
    assert_eq!(notes[0]["title"], "Groceries");

    // health_check: presence only, never values
    let health = call(&alice, "health_check", json!({})).await;
    let body = health.structured_content.clone().expect("structured");
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["credentials"],
        json!([
            { "name": "PATH", "status": "configured" },
            { "name": MISSING_CREDENTIAL, "status": "missing" },
        ])
    );
    let path_value = std::env::var("PATH").expect("PATH is set for tests");
    assert!(!text_of(&health).contains(&path_value));
    assert!(!body.to_string().contains(&path_value));

    // echo
    let echoed = call(&alice, "echo", json!({ "text": "héllo ✓" })).await;
    assert_eq!(echoed.is_error, Some(false));
    assert_eq!(text_of(&echoed), "héllo ✓");

    // summarize: the server asks the client's model
    let text = "The quick brown fox jumps over the lazy dog.";
    let summary = call(&alice, "summarize", json!({ "text": text })).await;
    assert_eq!(summary.is_error, Some(false), "{summary:?}");
    assert_eq!(text_of(&summary), MODEL_REPLY);
    let sampled = handler.sampled.lock().expect("lock").clone();
    assert_eq!(sampled.len(), 1);
    assert!(sampled[0].contains(text), "{sampled:?}");
    let blank = call_err(&alice, "summarize", json!({ "text": "  " })).await;
    assert!(blank.contains("text is empty"), "{blank}");

    // confirm_action: the server asks the user
    let confirmed = call_ok(
        &alice,
        "confirm_action",
        json!({ "action": "delete all notes" }),
    )
    .await;
    assert_eq!(confirmed["action"], "accept");
    assert_eq!(confirmed["confirmed"], true);
    assert_eq!(
        handler.elicited.lock().expect("lock").as_slice(),
        ["The demo server wants to: delete all notes. Go ahead?"]
    );

    // slow_count (progress is covered in its own test)
    let counted = call_ok(&alice, "slow_count", json!({ "steps": 2, "delay_ms": 1 })).await;
    assert_eq!(counted["completed"], 2);
    let too_many = call_err(
        &alice,
        "slow_count",
        json!({ "steps": 1001, "delay_ms": 1 }),
    )
    .await;
    assert!(too_many.contains("at most 1000"), "{too_many}");

    // get_api_usage: every call above except echo, this one included
    let usage = call_ok(&alice, "get_api_usage", json!({})).await;
    assert_eq!(usage["subject"], "alice");
    assert_eq!(
        usage["by_tool"],
        json!({
            "whoami": 1,
            "create_secure_note": 4,
            "list_secure_notes": 1,
            "health_check": 1,
            "summarize": 2,
            "confirm_action": 1,
            "slow_count": 2,
            "get_api_usage": 1,
        })
    );
    assert_eq!(usage["total_calls"], 13);

    // resources
    let listed: Vec<String> = alice
        .list_all_resources()
        .await
        .expect("resources/list")
        .into_iter()
        .map(|resource| resource.uri.clone())
        .collect();
    assert_eq!(listed, ["user://profile"]);
    let templates: Vec<String> = alice
        .list_all_resource_templates()
        .await
        .expect("resources/templates/list")
        .into_iter()
        .map(|template| template.uri_template.clone())
        .collect();
    assert_eq!(templates, ["user://notes/{id}"]);

    let profile = read_json(&alice, "user://profile").await.expect("profile");
    assert_eq!(
        profile,
        json!({ "subject": "alice", "source": "header", "note_count": 1 })
    );
    let read = read_json(&alice, &format!("user://notes/{id}"))
        .await
        .expect("note");
    assert_eq!(read["title"], "Groceries");
    assert_eq!(read["content"], "milk, eggs");
    let missing = read_json(&alice, "user://notes/999999")
        .await
        .expect_err("missing note");
    assert_eq!(error_code(missing), ErrorCode::RESOURCE_NOT_FOUND);
    let unknown = read_json(&alice, "user://elsewhere")
        .await
        .expect_err("unknown uri");
    assert_eq!(error_code(unknown), ErrorCode::RESOURCE_NOT_FOUND);

    // the prompt
    let prompts: Vec<String> = alice
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|prompt| prompt.name)
        .collect();
    assert_eq!(prompts, ["note_summary"]);
    let Value::Object(args) = json!({ "note_id": id.to_string() }) else {
        unreachable!()
    };
    let prompt = alice
        .get_prompt(GetPromptRequestParams::new("note_summary").with_arguments(args))
        .await
        .expect("prompts/get");
    let prompt_text = serde_json::to_string(&prompt.messages).expect("serializes");
    assert!(prompt_text.contains("Groceries"), "{prompt_text}");
    assert!(prompt_text.contains("milk, eggs"), "{prompt_text}");
    let no_arg = alice
        .get_prompt(GetPromptRequestParams::new("note_summary"))
        .await
        .expect_err("note_id is required");
    assert_eq!(error_code(no_arg), ErrorCode::INVALID_PARAMS);

    alice.cancel().await.expect("client closes");
    server.stop().await;
}

#[tokio::test]
async fn users_see_only_their_own_notes_and_usage() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let alice = connect(&server.url, Some("alice"), TestClient::new(Answer::Decline)).await;
    let bob = connect(
        &server.url,
        Some("bob@example.com"),
        TestClient::new(Answer::Decline),
    )
    .await;

    let note = call_ok(
        &alice,
        "create_secure_note",
        json!({ "title": "alice only", "content": "secret" }),
    )
    .await;
    let id = note["id"].as_i64().expect("id");
    call_ok(
        &bob,
        "create_secure_note",
        json!({ "title": "bob's", "content": "mine" }),
    )
    .await;

    assert_eq!(
        call_ok(&bob, "whoami", json!({})).await["subject"],
        "bob@example.com"
    );
    let bobs = call_ok(&bob, "list_secure_notes", json!({})).await;
    let titles: Vec<&str> = bobs["notes"]
        .as_array()
        .expect("array")
        .iter()
        .map(|note| note["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, ["bob's"]);

    // Bob cannot read Alice's note, and is told exactly what a missing note says.
    let denied = read_json(&bob, &format!("user://notes/{id}"))
        .await
        .expect_err("not bob's note");
    assert_eq!(error_code(denied), ErrorCode::RESOURCE_NOT_FOUND);
    let Value::Object(args) = json!({ "note_id": id.to_string() }) else {
        unreachable!()
    };
    let prompt = bob
        .get_prompt(GetPromptRequestParams::new("note_summary").with_arguments(args))
        .await
        .expect_err("not bob's note");
    assert_eq!(error_code(prompt), ErrorCode::INVALID_PARAMS);
    assert_eq!(
        read_json(&alice, &format!("user://notes/{id}"))
            .await
            .expect("own")["content"],
        "secret"
    );

    assert_eq!(
        read_json(&bob, "user://profile").await.expect("profile")["note_count"],
        1
    );
    let usage = call_ok(&bob, "get_api_usage", json!({})).await;
    assert_eq!(
        usage["by_tool"],
        json!({ "create_secure_note": 1, "whoami": 1, "list_secure_notes": 1, "get_api_usage": 1 })
    );
    let usage = call_ok(&alice, "get_api_usage", json!({})).await;
    assert_eq!(
        usage["by_tool"],
        json!({ "create_secure_note": 1, "get_api_usage": 1 })
    );

    alice.cancel().await.expect("close");
    bob.cancel().await.expect("close");
    server.stop().await;
}

#[tokio::test]
async fn without_a_header_the_caller_is_anonymous() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let nobody = connect(&server.url, None, TestClient::new(Answer::Decline)).await;
    let me = call_ok(&nobody, "whoami", json!({})).await;
    if std::env::var_os("MCPGATE_SUBJECT").is_none() {
        assert_eq!(me["subject"], "anonymous");
        assert_eq!(me["source"], "anonymous");
    } else {
        assert_eq!(me["source"], "environment");
    }

    // A header that cannot name anyone is refused, not read as anonymous.
    let blank = connect(&server.url, Some("  "), TestClient::new(Answer::Decline)).await;
    let refused = blank
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect_err("blank subject refused");
    assert_eq!(error_code(refused), ErrorCode::INVALID_PARAMS);

    // Shutting down while clients are still connected does not hang.
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop((nobody, blank));
}

#[tokio::test]
async fn elicitation_reports_decline_cancel_and_an_unticked_box() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    for (answer, action, confirmed) in [
        (Answer::Decline, "decline", false),
        (Answer::Cancel, "cancel", false),
        (Answer::Accept { confirm: false }, "accept", false),
        (Answer::Accept { confirm: true }, "accept", true),
    ] {
        let client = connect(&server.url, Some("carol"), TestClient::new(answer)).await;
        let reply = call_ok(&client, "confirm_action", json!({ "action": "ship it" })).await;
        assert_eq!(reply["action"], action);
        assert_eq!(reply["confirmed"], confirmed);
        client.cancel().await.expect("close");
    }
    server.stop().await;
}

#[tokio::test]
async fn progress_notifications_arrive_in_order() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let handler = TestClient::new(Answer::Decline);
    let client = connect(&server.url, Some("dave"), handler.clone()).await;

    let reply = call_ok(&client, "slow_count", json!({ "steps": 5, "delay_ms": 10 })).await;
    assert_eq!(reply["completed"], 5);
    assert_eq!(reply["reported_progress"], true);
    // Notifications are handled as they arrive; give the last one a moment.
    tokio::time::timeout(Duration::from_secs(2), async {
        while handler.progress_count() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("five progress notifications");
    let progress = handler.progress.lock().expect("lock").clone();
    let steps: Vec<f64> = progress.iter().map(|p| p.progress).collect();
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(progress.iter().all(|p| p.total == Some(5.0)));
    let token = &progress[0].progress_token;
    assert!(progress.iter().all(|p| &p.progress_token == token));

    client.cancel().await.expect("close");
    server.stop().await;
}

#[tokio::test]
async fn cancelling_stops_the_count() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let handler = TestClient::new(Answer::Decline);
    let client = connect(&server.url, Some("erin"), handler.clone()).await;

    let Value::Object(args) = json!({ "steps": 500, "delay_ms": 20 }) else {
        unreachable!()
    };
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("slow_count").with_arguments(args),
    ));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("request sent");
    tokio::time::timeout(Duration::from_secs(10), async {
        while handler.progress_count() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("first progress notifications arrive");
    handle
        .cancel(Some("test cancels".to_owned()))
        .await
        .expect("cancellation sent");

    // Counting must stop soon after the cancel; ignored, it would run ~10 s.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let before = handler.progress_count();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if handler.progress_count() == before {
                return before;
            }
        }
    })
    .await
    .expect("progress stops after the cancel");
    assert!(settled < 500, "{settled} steps: the count ran to the end");

    // The server is still fine.
    assert_eq!(
        call_ok(&client, "whoami", json!({})).await["subject"],
        "erin"
    );
    client.cancel().await.expect("close");
    server.stop().await;
}

#[tokio::test]
async fn notes_and_usage_survive_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("not-yet-created");

    let server = start(&data_dir).await;
    let client = connect(&server.url, Some("frank"), TestClient::new(Answer::Decline)).await;
    let note = call_ok(
        &client,
        "create_secure_note",
        json!({ "title": "keep me", "content": "across restarts" }),
    )
    .await;
    call_ok(&client, "whoami", json!({})).await;
    client.cancel().await.expect("close");
    server.stop().await;
    assert!(data_dir.join("demo.sqlite").exists());

    let server = start(&data_dir).await;
    let client = connect(&server.url, Some("frank"), TestClient::new(Answer::Decline)).await;
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"].as_array().expect("array").len(), 1);
    assert_eq!(listed["notes"][0]["id"], note["id"]);
    assert_eq!(listed["notes"][0]["content"], "across restarts");
    let usage = call_ok(&client, "get_api_usage", json!({})).await;
    assert_eq!(
        usage["by_tool"],
        json!({
            "create_secure_note": 1,
            "whoami": 1,
            "list_secure_notes": 1,
            "get_api_usage": 1,
        })
    );
    client.cancel().await.expect("close");
    server.stop().await;
}

/// 2026-07-28 forbids server-to-client requests: elicitation and sampling
/// become `input_required` results that the client answers by retrying.
#[tokio::test]
async fn a_2026_client_answers_through_input_required() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path()).await;
    let handler = TestClient::new(Answer::Accept { confirm: true });
    let client = connect_2026(&server.url, "grace", handler.clone()).await;

    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "grace");

    let confirmed = call_ok(
        &client,
        "confirm_action",
        json!({ "action": "rotate keys" }),
    )
    .await;
    assert_eq!(confirmed["action"], "accept");
    assert_eq!(confirmed["confirmed"], true);
    assert_eq!(handler.elicited.lock().expect("lock").len(), 1);

    let summary = call(&client, "summarize", json!({ "text": "one two three" })).await;
    assert_eq!(summary.is_error, Some(false), "{summary:?}");
    assert_eq!(text_of(&summary), MODEL_REPLY);
    assert!(handler.sampled.lock().expect("lock")[0].contains("one two three"));

    // The retry that carries the answer is not counted a second time.
    let usage = call_ok(&client, "get_api_usage", json!({})).await;
    assert_eq!(
        usage["by_tool"],
        json!({ "whoami": 1, "confirm_action": 1, "summarize": 1, "get_api_usage": 1 })
    );

    client.cancel().await.expect("close");
    server.stop().await;
}
