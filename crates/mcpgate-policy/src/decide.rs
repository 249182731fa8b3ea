//! One decision: the Cedar request of a call, the answer, and the names of
//! the policies that gave it.

use cedar_policy::{Authorizer, Context, Decision as CedarDecision, Effect, PolicyId, Request};
use serde_json::Value;

use crate::entities::{context, entities};
use crate::load::Rules;

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
    /// The upstream that serves it.
    pub upstream: &'a str,
    /// The arguments (`params.arguments`); `None` for a list's check.
    pub args: Option<&'a Value>,
}

/// What the rules say about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may go ahead.
    pub allowed: bool,
    /// The policies that decided: the permits that applied to an allowed
    /// call, the forbids that applied to a denied one (none: no policy permits).
    pub deciding: Vec<String>,
    /// Policies that could not be evaluated (a missing argument, a type
    /// mismatch), with Cedar's reason; they did not apply.
    pub errors: Vec<String>,
}

impl Decision {
    /// The policy a metric or a log line names: the first deciding one, or
    /// `none` when nothing permitted.
    pub fn label(&self) -> &str {
        self.deciding.first().map_or("none", String::as_str)
    }

    /// What the caller is told when denied.
    pub fn reason(&self) -> String {
        match self.deciding.as_slice() {
            [] => "no policy permits this call".to_owned(),
            [one] => format!("forbidden by policy {one}"),
            many => format!("forbidden by policies {}", many.join(", ")),
        }
    }
}

impl Rules {
    /// Decides `call`.
    pub fn decide(&self, call: &Call<'_>) -> Decision {
        let (decision, reasons, errors) = self.evaluate(call, context(call.args));
        Decision {
            allowed: decision == CedarDecision::Allow,
            deciding: reasons.iter().map(|id| self.name(id)).collect(),
            errors: errors.into_iter().map(|(_, why)| why).collect(),
        }
    }

    /// Whether a list shows `call`'s target (its `args` are ignored): the
    /// call is decided with no arguments; an allowed one is shown, a forbidden
    /// one hidden; one nothing permits is shown only when a permit could not
    /// be evaluated without arguments (its condition reads `context`), since
    /// some arguments may satisfy it.
    pub fn visible(&self, call: &Call<'_>) -> bool {
        let (decision, reasons, errors) = self.evaluate(call, Context::empty());
        if decision == CedarDecision::Allow {
            return true;
        }
        if !reasons.is_empty() {
            return false;
        }
        errors.iter().any(|(id, _)| {
            self.set
                .policy(id)
                .is_some_and(|p| p.effect() == Effect::Permit)
        })
    }

    fn evaluate(
        &self,
        call: &Call<'_>,
        context: Context,
    ) -> (CedarDecision, Vec<PolicyId>, Vec<(PolicyId, String)>) {
        let resource = self.types.target(call.op, call.name);
        let request = Request::new(
            self.types.user(call.caller.subject),
            self.types.action(call.op.method()),
            resource.clone(),
            context,
            None,
        );
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                // Without a schema a request is not checked; kept for safety.
                tracing::warn!("policy request refused by Cedar: {e}");
                return (CedarDecision::Deny, Vec::new(), Vec::new());
            }
        };
        let entities = entities(&self.types, call, &resource);
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let d = response.diagnostics();
        let reasons = d.reason().cloned().collect();
        let errors = d
            .errors()
            .map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                (e.policy_id().clone(), e.to_string())
            })
            .collect();
        (response.decision(), reasons, errors)
    }
}
