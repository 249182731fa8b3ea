//! A call as the rules see it: who, which method, which target, which
//! arguments. A leaf: the request is built from it (`entities.rs`) and
//! decided (`decide.rs`).

use serde_json::Value;

/// The MCP method of a call, Cedar's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `tools/call`: resource `Tool::"<name>"`.
    ToolsCall,
    /// `prompts/get`: resource `Prompt::"<name>"`.
    PromptsGet,
    /// `resources/read`: resource `Resource::"<uri>"`.
    ResourcesRead,
}

impl Operation {
    /// The MCP method, which is also the action's id.
    pub fn method(self) -> &'static str {
        match self {
            Operation::ToolsCall => "tools/call",
            Operation::PromptsGet => "prompts/get",
            Operation::ResourcesRead => "resources/read",
        }
    }

    /// The operation of an MCP method, if it is one policy decides.
    pub fn of_method(method: &str) -> Option<Operation> {
        match method {
            "tools/call" => Some(Operation::ToolsCall),
            "prompts/get" => Some(Operation::PromptsGet),
            "resources/read" => Some(Operation::ResourcesRead),
            _ => None,
        }
    }

    /// The operation whose targets a list method lists.
    pub fn of_list(method: &str) -> Option<Operation> {
        match method {
            "tools/list" => Some(Operation::ToolsCall),
            "prompts/list" => Some(Operation::PromptsGet),
            "resources/list" => Some(Operation::ResourcesRead),
            _ => None,
        }
    }
}

/// Who is calling, as the guard authenticated them.
#[derive(Debug, Clone, Default)]
pub struct Caller<'a> {
    /// The subject (`User::"<subject>"`).
    pub subject: &'a str,
    /// Its groups (from the configured groups claim).
    pub groups: Vec<String>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The OAuth client the token was issued to, if it names one.
    pub client_id: Option<&'a str>,
    /// Whether that client registered itself (RFC 7591).
    pub client_dynamic: bool,
    /// Whether that client is known by its metadata document (its id is the
    /// document's https URL): nobody vetted it either.
    pub client_metadata_document: bool,
}

/// What the upstream's `tools/list` said of a tool (MCP annotations); `None`
/// where it said nothing or the listing was not seen. Hints from the
/// upstream, not guarantees: a rule trusts the upstream as far as its author does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// `readOnlyHint`.
    pub read_only: Option<bool>,
    /// `destructiveHint`.
    pub destructive: Option<bool>,
}

/// One call to decide.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// Who.
    pub caller: Caller<'a>,
    /// Which method.
    pub op: Operation,
    /// The tool or prompt name, or the resource URI, as the client sees it.
    pub name: &'a str,
    /// The upstream that serves it: through a virtual server, the member
    /// the call is routed to.
    pub upstream: &'a str,
    /// The virtual server the client called through, if any.
    pub virtual_server: Option<&'a str>,
    /// The tool's annotations, as far as they are known.
    pub hints: Hints,
    /// The arguments (`params.arguments`); `None` for a list's check.
    pub args: Option<&'a Value>,
}
