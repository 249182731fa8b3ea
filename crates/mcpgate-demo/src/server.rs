//! The MCP server object: one per session (HTTP) or per process (stdio).
//!
//! It resolves the caller for every request, counts tool calls, and routes
//! to the tools (`tools.rs`), resources (`resources.rs`) and the prompt
//! (`prompts.rs`).

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext},
    model::{
        CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
        Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
        ServerCapabilities, ServerConfig,
    },
    service::RequestContext,
    tool_handler,
};

use crate::{
    identity::{self, Identity, Subject},
    prompts, resources,
    store::Store,
};

/// The benchmarks' probe. It is not counted in `get_api_usage`, so that it
/// measures the transport and the gateway rather than SQLite writes.
const UNCOUNTED_TOOL: &str = "echo";

const INSTRUCTIONS: &str = "mcpgate demo server. Every tool acts for the calling user: \
    notes and usage are private to you. Try whoami, create_secure_note, list_secure_notes, \
    get_api_usage, health_check, slow_count (progress), confirm_action (elicitation) and \
    summarize (sampling).";

/// The demo MCP server.
#[derive(Clone)]
pub(crate) struct DemoServer {
    pub(crate) store: Store,
    /// Names of the environment variables `health_check` reports on.
    pub(crate) credential_names: Arc<[String]>,
    /// `MCPGATE_SUBJECT`, read once at start-up.
    process_subject: Option<Subject>,
    tool_router: ToolRouter<Self>,
}

impl DemoServer {
    /// A server over `store`. Build it once and clone it per session: the
    /// tool router is built here, not per request.
    pub(crate) fn new(
        store: Store,
        credential_names: Vec<String>,
        process_subject: Option<Subject>,
    ) -> Self {
        Self {
            store,
            credential_names: credential_names.into(),
            process_subject,
            tool_router: Self::tool_router(),
        }
    }

    /// Who `context`'s request acts for. Over HTTP rmcp puts the request's
    /// `http::request::Parts` in the context's extensions; over stdio there
    /// are none.
    pub(crate) fn identify(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Identity, ErrorData> {
        let headers = context
            .extensions
            .get::<http::request::Parts>()
            .map(|parts| &parts.headers);
        identity::resolve(headers, self.process_subject.as_ref()).map_err(ErrorData::from)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcpgate-demo",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let who = self.identify(&context)?;
        // A 2026-07-28 retry that carries answers continues a call already
        // counted; counting it again would double elicitation and sampling.
        let is_retry = request.input_responses.is_some() || request.request_state.is_some();
        if !is_retry && request.name != UNCOUNTED_TOOL && self.tool_router.has_route(&request.name)
        {
            self.store
                .record_call(&who.subject, &request.name)
                .await
                .map_err(|error| ErrorData::from(crate::error::DemoError::from(error)))?;
        }
        tracing::debug!(tool = %request.name, subject = %who.subject, "tool call");
        context.extensions.insert(who);
        let call = ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let who = self.identify(&context)?;
        Ok(resources::list(&who))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let who = self.identify(&context)?;
        Ok(resources::read(&self.store, &who, &request.uri)
            .await?
            .into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(prompts::list())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let who = self.identify(&context)?;
        let result =
            prompts::get(&self.store, &who, &request.name, request.arguments.as_ref()).await?;
        Ok(result.into())
    }
}
