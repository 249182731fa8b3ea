//! Asking the client: elicitation (`confirm_action`) and sampling (`summarize`).
//!
//! Two protocol eras ask differently. Up to 2025-11-25 the server sends a
//! request to the client in the middle of the tool call and waits for the
//! answer. From 2026-07-28 servers may not send requests; instead the tool
//! returns an `InputRequiredResult` naming what it needs, and the client
//! retries the call with the answers attached (multi round-trip requests).
//! The demo speaks both, so the gateway can be tested against either.

// Sampling is deprecated by SEP-2577, but clients still use it and the gateway
// must relay it, so the demo keeps exercising it.
#![allow(deprecated)]

use rmcp::{
    RoleServer,
    model::{
        CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
        ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, InputRequest,
        InputRequests, InputRequiredResult, InputResponses, ProtocolVersion, SamplingMessage,
    },
    service::{ElicitationMode, RequestContext},
};
use serde::de::DeserializeOwned;

use crate::error::DemoError;

/// The key of our elicitation in `inputRequests` / `inputResponses`.
const CONFIRM_KEY: &str = "confirm";
/// The key of our sampling request in `inputRequests` / `inputResponses`.
const SUMMARY_KEY: &str = "summary";
/// Enough for a few sentences; the demo does not need long summaries.
const SUMMARY_MAX_TOKENS: u32 = 300;

/// Either the client's answer, or what to send back so it can give one.
#[derive(Debug)]
pub(crate) enum Asked<T> {
    /// The answer is here.
    Answered(T),
    /// 2026-07-28: return this to the client; it retries with the answer.
    NeedsInput(InputRequiredResult),
}

/// The user's reply to `confirm_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmation {
    /// The user submitted the form; `confirmed` is its `confirm` box.
    Accepted {
        /// Whether the box was ticked.
        confirmed: bool,
    },
    /// The user said no.
    Declined,
    /// The user dismissed the form without choosing.
    Cancelled,
}

impl Confirmation {
    fn from_result(result: &ElicitResult) -> Self {
        match result.action {
            ElicitationAction::Accept => Self::Accepted {
                confirmed: result
                    .content
                    .as_ref()
                    .and_then(|content| content.get("confirm"))
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            },
            ElicitationAction::Decline => Self::Declined,
            // Cancel, and any action a later protocol adds: not a yes.
            _ => Self::Cancelled,
        }
    }

    /// The wire name of what the user did: `accept`, `decline` or `cancel`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accept",
            Self::Declined => "decline",
            Self::Cancelled => "cancel",
        }
    }

    /// True only for an accepted form with `confirm` ticked.
    pub(crate) fn confirmed(self) -> bool {
        matches!(self, Self::Accepted { confirmed: true })
    }
}

/// True when the request was made under protocol 2026-07-28 or later.
fn uses_input_required(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28)
}

/// Asks the user, through an elicitation form with one boolean `confirm`,
/// whether to go ahead with `action`.
pub(crate) async fn confirm(
    context: &RequestContext<RoleServer>,
    responses: Option<&InputResponses>,
    action: &str,
) -> Result<Asked<Confirmation>, DemoError> {
    let supported = context
        .client_capabilities()
        .and_then(|caps| caps.elicitation)
        .is_some();
    let params = confirm_form(action)?;

    let result: ElicitResult = if uses_input_required(context) {
        match answer(responses, CONFIRM_KEY)? {
            Some(result) => result,
            None if supported => {
                let request = InputRequest::Elicitation(ElicitRequest::new(params));
                return Ok(Asked::NeedsInput(ask_for(CONFIRM_KEY, request)));
            }
            None => return Err(unsupported("elicitation", "confirm_action")),
        }
    } else {
        // The legacy capability may omit `form`; rmcp reads that as form support.
        if !context
            .peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form)
        {
            return Err(unsupported("elicitation", "confirm_action"));
        }
        unless_cancelled(
            context,
            context.peer.create_elicitation(params),
            "the client failed to answer the confirmation form",
            "the user",
        )
        .await?
    };

    Ok(Asked::Answered(Confirmation::from_result(&result)))
}

/// Waits for the client's answer to a request we sent it, unless the caller
/// cancels its own request first.
async fn unless_cancelled<T, E: std::fmt::Display>(
    context: &RequestContext<RoleServer>,
    asked: impl std::future::Future<Output = Result<T, E>>,
    failed: &str,
    waiting_for: &str,
) -> Result<T, DemoError> {
    tokio::select! {
        result = asked => result.map_err(|error| DemoError::Client(format!("{failed}: {error}"))),
        () = context.ct.cancelled() => Err(DemoError::Client(format!(
            "the request was cancelled while waiting for {waiting_for}"
        ))),
    }
}

/// Asks the client's model, through sampling, to summarize `text`.
pub(crate) async fn summarize(
    context: &RequestContext<RoleServer>,
    responses: Option<&InputResponses>,
    text: &str,
) -> Result<Asked<String>, DemoError> {
    let supported = context
        .client_capabilities()
        .and_then(|caps| caps.sampling)
        .is_some();
    let params = CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(format!(
            "Summarize the following text in one or two sentences:\n\n{text}"
        ))],
        SUMMARY_MAX_TOKENS,
    )
    .with_system_prompt("You write short, faithful summaries.");

    let result: CreateMessageResult = if uses_input_required(context) {
        match answer(responses, SUMMARY_KEY)? {
            Some(result) => result,
            None if supported => {
                let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
                return Ok(Asked::NeedsInput(ask_for(SUMMARY_KEY, request)));
            }
            None => return Err(unsupported("sampling", "summarize")),
        }
    } else {
        if !supported {
            return Err(unsupported("sampling", "summarize"));
        }
        unless_cancelled(
            context,
            context.peer.create_message(params),
            "the client failed to sample a summary",
            "the model",
        )
        .await?
    };

    let summary: Vec<&str> = result
        .message
        .content
        .iter()
        .filter_map(|block| block.as_text())
        .map(|text| text.text.as_str())
        .collect();
    if summary.is_empty() {
        return Err(DemoError::Client(
            "the client's model answered without any text".into(),
        ));
    }
    Ok(Asked::Answered(summary.join("\n")))
}

fn confirm_form(action: &str) -> Result<ElicitRequestParams, DemoError> {
    let schema = ElicitationSchema::builder()
        .required_bool_with("confirm", |field| {
            field
                .title("Confirm")
                .description("Tick to let the demo server go ahead")
        })
        .build()
        .map_err(|why| DemoError::Client(format!("cannot build the confirmation form: {why}")))?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: format!("The demo server wants to: {action}. Go ahead?"),
        requested_schema: schema,
    })
}

fn ask_for(key: &str, request: InputRequest) -> InputRequiredResult {
    let mut requests = InputRequests::new();
    requests.insert(key.to_owned(), request);
    InputRequiredResult::from_input_requests(requests)
}

/// The client's answer under `key`, if the retry carried one.
fn answer<T: DeserializeOwned>(
    responses: Option<&InputResponses>,
    key: &str,
) -> Result<Option<T>, DemoError> {
    let Some(value) = responses.and_then(|responses| responses.get(key)) else {
        return Ok(None);
    };
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|error| {
            DemoError::InvalidInput(format!(
                "inputResponses.{key} is not a valid answer to our request: {error}"
            ))
        })
}

fn unsupported(capability: &str, tool: &str) -> DemoError {
    DemoError::Client(format!(
        "your MCP client did not declare the {capability} capability, so {tool} cannot work; \
         use a client that supports {capability}"
    ))
}
