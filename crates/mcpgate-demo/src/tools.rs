//! The demo's tools. Each one is thin: check the arguments, call the store or
//! the client, and shape a reply. The caller's [`Identity`] is resolved once
//! per call by the server (see `server.rs`) and handed in as an extension.

use std::time::Duration;

use rmcp::{
    RoleServer,
    handler::server::{
        tool::{Extension, InputResponses},
        wrapper::{Json, Parameters},
    },
    model::{CallToolResponse, CallToolResult, ContentBlock, ProgressNotificationParam},
    service::RequestContext,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    ask::{self, Asked, Confirmation},
    error::DemoError,
    identity::Identity,
    notes::{self, NoteContent, NoteTitle},
    progress::{self, Outcome},
    server::DemoServer,
    store::Note,
};

/// Arguments of `create_secure_note`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct CreateNoteArgs {
    /// 1 to 200 characters.
    title: String,
    /// Up to 64 KiB of text.
    content: String,
}

/// Arguments of `slow_count`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct SlowCountArgs {
    /// How many steps to count (at most 1000).
    steps: u32,
    /// Milliseconds to wait before each step (at most 10000).
    delay_ms: u32,
}

/// Arguments of `confirm_action`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct ConfirmArgs {
    /// What the user is asked to approve, in plain words.
    action: String,
}

/// Arguments of `summarize` and `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct TextArgs {
    /// The text.
    text: String,
}

/// Reply of `whoami`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct WhoamiReply {
    subject: String,
    /// `header`, `environment` or `anonymous`.
    source: &'static str,
    explanation: &'static str,
}

/// One note as tools show it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct NoteView {
    id: i64,
    /// Readable with `resources/read`.
    uri: String,
    title: String,
    content: String,
    /// Seconds since the Unix epoch.
    created_at: i64,
}

impl From<Note> for NoteView {
    fn from(note: Note) -> Self {
        Self {
            id: note.id,
            uri: notes::note_uri(note.id),
            title: note.title,
            content: note.content,
            created_at: note.created_at,
        }
    }
}

/// Reply of `list_secure_notes`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct NoteList {
    subject: String,
    notes: Vec<NoteView>,
}

/// Reply of `get_api_usage`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct UsageReply {
    subject: String,
    /// Calls of all tools, this one included.
    total_calls: i64,
    /// Calls by tool name.
    by_tool: std::collections::BTreeMap<String, i64>,
    /// The caller's standing against each mcpgate `[[rate_limit]]` rule
    /// that matched this call, as the gateway reported it in the request's
    /// `_meta` (`io.mcpgate/rateLimit`); absent when it reported none (no
    /// rule matched, or no mcpgate in front): then nothing is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limits: Option<Vec<RateLimitStanding>>,
}

/// One rate-limit rule's standing, as mcpgate reports it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct RateLimitStanding {
    /// The rule's name in the gateway's configuration.
    rule: String,
    /// Calls allowed per window.
    limit: u64,
    /// Calls left in the window after this one.
    remaining: u64,
    /// The window in seconds (86400 for a daily quota).
    window: u64,
    /// Whether it is a daily quota (kept in the gateway's store).
    quota: bool,
}

/// What the gateway told about the caller's rate limits, if anything.
fn reported_limits(meta: &rmcp::model::RequestMetaObject) -> Option<Vec<RateLimitStanding>> {
    let v = meta.get("io.mcpgate/rateLimit")?;
    serde_json::from_value(v.clone()).ok()
}

/// One credential in the `health_check` reply.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct CredentialStatus {
    /// The environment variable's name.
    name: String,
    /// `configured` or `missing`; never the value.
    status: &'static str,
}

/// Reply of `health_check`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct HealthReply {
    /// `ok` when every credential is configured, else `degraded`.
    status: &'static str,
    credentials: Vec<CredentialStatus>,
}

/// Reply of `slow_count`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(transform = standard_json_schema)]
pub(crate) struct CountReply {
    completed: u32,
    requested: u32,
    /// Whether `notifications/progress` were sent (the caller gave a progressToken).
    reported_progress: bool,
}

/// TypeScript clients (ajv) warn on schemars' `uint32`/`int64` formats,
/// which JSON Schema does not define: the demo's schemas carry no `format`.
fn standard_json_schema(schema: &mut schemars::Schema) {
    use schemars::transform::{RestrictFormats, Transform as _};
    let mut restrict = RestrictFormats::default();
    restrict.infer_from_meta_schema = false;
    restrict.transform(schema);
}

#[tool_router(vis = "pub(crate)")]
impl DemoServer {
    #[tool(
        description = "Tell who the server thinks you are, and how it decided.",
        annotations(read_only_hint = true)
    )]
    async fn whoami(&self, Extension(who): Extension<Identity>) -> Json<WhoamiReply> {
        Json(WhoamiReply {
            subject: who.subject.to_string(),
            source: who.source.label(),
            explanation: who.source.explain(),
        })
    }

    #[tool(description = "Save a private note that only you can list or read. \
                       The title must be 1-200 characters; the content at most 64 KiB.")]
    async fn create_secure_note(
        &self,
        Extension(who): Extension<Identity>,
        Parameters(args): Parameters<CreateNoteArgs>,
    ) -> Result<Json<NoteView>, String> {
        let title = NoteTitle::parse(&args.title).map_err(DemoError::into_tool_message)?;
        let content = NoteContent::parse(args.content).map_err(DemoError::into_tool_message)?;
        let note = self
            .store
            .insert_note(&who.subject, &title, &content)
            .await
            .map_err(|error| DemoError::from(error).into_tool_message())?;
        tracing::info!(subject = %who.subject, id = note.id, "note created");
        Ok(Json(note.into()))
    }

    #[tool(
        description = "List your own notes (never anyone else's).",
        annotations(read_only_hint = true)
    )]
    async fn list_secure_notes(
        &self,
        Extension(who): Extension<Identity>,
    ) -> Result<Json<NoteList>, String> {
        let notes = self
            .store
            .notes_of(&who.subject)
            .await
            .map_err(|error| DemoError::from(error).into_tool_message())?;
        Ok(Json(NoteList {
            subject: who.subject.to_string(),
            notes: notes.into_iter().map(NoteView::from).collect(),
        }))
    }

    #[tool(
        description = "How many times you have called each tool of this server (kept across restarts), and your remaining rate limits and quota as the mcpgate gateway in front reports them.",
        annotations(read_only_hint = true)
    )]
    async fn get_api_usage(
        &self,
        Extension(who): Extension<Identity>,
        meta: rmcp::model::RequestMetaObject,
    ) -> Result<Json<UsageReply>, String> {
        let usage = self
            .store
            .usage_of(&who.subject)
            .await
            .map_err(|error| DemoError::from(error).into_tool_message())?;
        Ok(Json(UsageReply {
            subject: who.subject.to_string(),
            total_calls: usage.iter().map(|entry| entry.calls).sum(),
            by_tool: usage
                .into_iter()
                .map(|entry| (entry.tool, entry.calls))
                .collect(),
            rate_limits: reported_limits(&meta),
        }))
    }

    #[tool(
        description = "Report which upstream credentials this server has configured, without revealing them.",
        annotations(read_only_hint = true)
    )]
    async fn health_check(&self) -> Json<HealthReply> {
        let credentials: Vec<CredentialStatus> = self
            .credential_names
            .iter()
            .map(|name| CredentialStatus {
                name: name.clone(),
                // Only presence is read; the value never leaves this expression.
                status: match std::env::var_os(name) {
                    Some(value) if !value.is_empty() => "configured",
                    _ => "missing",
                },
            })
            .collect();
        let all_configured = credentials.iter().all(|c| c.status == "configured");
        Json(HealthReply {
            status: if all_configured { "ok" } else { "degraded" },
            credentials,
        })
    }

    #[tool(
        description = "Count slowly, reporting progress when you pass a progressToken. \
                          Cancel the request to stop it early."
    )]
    async fn slow_count(
        &self,
        context: RequestContext<RoleServer>,
        Parameters(args): Parameters<SlowCountArgs>,
    ) -> Result<Json<CountReply>, String> {
        progress::check(args.steps, args.delay_ms).map_err(DemoError::into_tool_message)?;
        let token = context.meta.get_progress_token();
        let total = f64::from(args.steps);
        let outcome = progress::count(
            args.steps,
            Duration::from_millis(u64::from(args.delay_ms)),
            &context.ct,
            |step| {
                let peer = context.peer.clone();
                let token = token.clone();
                async move {
                    let Some(token) = token else { return };
                    let note = ProgressNotificationParam::new(token, f64::from(step))
                        .with_total(total)
                        .with_message(format!("counted {step} of {total}"));
                    // A lost notification must not stop the count: a closed
                    // stream is a disconnect, and a disconnect is not a cancel.
                    if let Err(error) = peer.notify_progress(note).await {
                        tracing::debug!(%error, "progress notification not delivered");
                    }
                }
            },
        )
        .await;
        match outcome {
            Outcome::Finished { steps } => Ok(Json(CountReply {
                completed: steps,
                requested: args.steps,
                reported_progress: token.is_some(),
            })),
            Outcome::Cancelled { completed } => {
                tracing::info!(completed, requested = args.steps, "slow_count cancelled");
                Err(format!(
                    "cancelled after {completed} of {} steps",
                    args.steps
                ))
            }
        }
    }

    #[tool(
        description = "Ask you, through an elicitation form, to confirm an action; \
                          reports whether you accepted, declined or cancelled."
    )]
    async fn confirm_action(
        &self,
        context: RequestContext<RoleServer>,
        InputResponses(responses): InputResponses,
        Parameters(args): Parameters<ConfirmArgs>,
    ) -> Result<CallToolResponse, String> {
        let action = args.action.trim();
        if action.is_empty() {
            return Err("action is empty: describe what should be confirmed".into());
        }
        let confirmation = match ask::confirm(&context, responses.as_ref(), action)
            .await
            .map_err(DemoError::into_tool_message)?
        {
            Asked::Answered(confirmation) => confirmation,
            Asked::NeedsInput(input) => return Ok(input.into()),
        };
        let outcome = match confirmation {
            Confirmation::Accepted { confirmed: true } => format!("confirmed: {action}"),
            Confirmation::Accepted { confirmed: false } => {
                format!("not confirmed (the confirm box was left unticked): {action}")
            }
            Confirmation::Declined => format!("declined: {action}"),
            Confirmation::Cancelled => format!("cancelled: {action}"),
        };
        Ok(CallToolResult::structured(serde_json::json!({
            "action": confirmation.label(),
            "confirmed": confirmation.confirmed(),
            "outcome": outcome,
        }))
        .into())
    }

    #[tool(description = "Summarize a text by asking your client's model (MCP sampling).")]
    async fn summarize(
        &self,
        context: RequestContext<RoleServer>,
        InputResponses(responses): InputResponses,
        Parameters(args): Parameters<TextArgs>,
    ) -> Result<CallToolResponse, String> {
        if args.text.trim().is_empty() {
            return Err("text is empty: give the text to summarize".into());
        }
        if args.text.len() > notes::MAX_CONTENT_BYTES {
            return Err(format!(
                "text is {} bytes; the limit is {} bytes (64 KiB)",
                args.text.len(),
                notes::MAX_CONTENT_BYTES
            ));
        }
        match ask::summarize(&context, responses.as_ref(), &args.text)
            .await
            .map_err(DemoError::into_tool_message)?
        {
            Asked::Answered(summary) => {
                Ok(CallToolResult::success(vec![ContentBlock::text(summary)]).into())
            }
            Asked::NeedsInput(input) => Ok(input.into()),
        }
    }

    #[tool(
        description = "Return the text unchanged. A trivial tool for checks and benchmarks.",
        annotations(read_only_hint = true)
    )]
    async fn echo(&self, Parameters(args): Parameters<TextArgs>) -> String {
        args.text
    }
}
