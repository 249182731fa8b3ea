//! The rmcp client used by the tests: it declares sampling and elicitation,
//! answers them with fixed replies, records progress, and records the session
//! ids its HTTP transport was given and deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientJsonRpcMessage,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    ElicitationAction, Implementation, ProgressNotificationParam, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse,
};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use sse_stream::Sse;

/// What the test client's "model" answers to every sampling request.
pub(crate) const MODEL_REPLY: &str = "Foxes jump; dogs nap.";

pub(crate) type Client = RunningService<RoleClient, TestClient>;

/// A client that says yes to every elicitation and answers sampling with [`MODEL_REPLY`].
#[derive(Clone, Default)]
pub(crate) struct TestClient {
    pub(crate) progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub(crate) elicited: Arc<Mutex<Vec<String>>>,
    pub(crate) sampled: Arc<Mutex<Vec<String>>>,
}

impl TestClient {
    pub(crate) fn progress(&self) -> Vec<ProgressNotificationParam> {
        self.progress.lock().expect("lock").clone()
    }

    pub(crate) fn progress_count(&self) -> usize {
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
            Implementation::new("mcpgate-e2e", "0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, rmcp::ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = request else {
            return Err(rmcp::ErrorData::invalid_params("expected a form", None));
        };
        self.elicited.lock().expect("lock").push(message);
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({ "confirm": true })))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, rmcp::ErrorData> {
        let asked: String = params
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|block| block.as_text())
            .map(|t| t.text.clone())
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

/// reqwest, plus a record of the session ids the server issued and the client deleted.
#[derive(Clone, Default)]
pub(crate) struct Recording {
    http: reqwest::Client,
    /// Session ids from responses (the first is the one `initialize` created).
    pub(crate) issued: Arc<Mutex<Vec<String>>>,
    /// (session id, whether the DELETE succeeded).
    pub(crate) deleted: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Recording {
    fn note_issued(&self, resp: &StreamableHttpPostResponse) {
        let id = match resp {
            StreamableHttpPostResponse::Json(_, Some(id))
            | StreamableHttpPostResponse::Sse(_, Some(id)) => id,
            _ => return,
        };
        let mut issued = self.issued.lock().expect("lock");
        if !issued.contains(id) {
            issued.push(id.clone());
        }
    }
}

type HttpResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for Recording {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let r = self
            .http
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await?;
        self.note_issued(&r);
        Ok(r)
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        let r = self
            .http
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await?;
        self.note_issued(&r);
        Ok(r)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        let r = self
            .http
            .delete_session(uri, session_id.clone(), auth_header, custom_headers)
            .await;
        self.deleted
            .lock()
            .expect("lock")
            .push((session_id.to_string(), r.is_ok()));
        r
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.http
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.http
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

/// Connects an rmcp client to `url` (initialize + initialized).
pub(crate) async fn connect(url: &str, handler: TestClient) -> (Client, Recording) {
    let recording = Recording::default();
    let transport = StreamableHttpClientTransport::with_client(
        recording.clone(),
        // A gone session must show as an error here, not be papered over by a re-initialize.
        StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false),
    );
    let client = handler
        .serve(transport)
        .await
        .unwrap_or_else(|e| panic!("the rmcp client could not initialize through {url}: {e}"));
    (client, recording)
}

/// Calls a tool; a protocol-level error fails the test.
pub(crate) async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool} failed at the protocol level: {e}"))
}

/// The structured reply of a successful call.
pub(crate) async fn call_ok(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args).await;
    assert_ne!(result.is_error, Some(true), "{tool} failed: {result:?}");
    result
        .structured_content
        .unwrap_or_else(|| panic!("{tool} returned no structured content"))
}

/// The text blocks of a result, joined.
pub(crate) fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|t| t.text.as_str())
        .collect()
}
