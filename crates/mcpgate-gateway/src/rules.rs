//! The `[policy]` rules (Cedar, `mcpgate-policy`) at the gateway's one
//! per-operation authorization point (`Guard::decide`, after the scopes):
//! the call's caller, name and arguments read from the message, the decision
//! logged, counted and, when denied, audited and answered as a JSON-RPC error.

use std::sync::Arc;

use mcpgate_guard::Principal;
use mcpgate_policy::{Call, Caller, Operation, Rules};
use serde_json::Value;

use crate::error::GatewayError;
use crate::jsonrpc::{Kind, Message};

/// The built-in authorization server's dynamically registered clients get
/// ids with this prefix (pre-registered ones are named in the configuration,
/// metadata-document ones are https URLs).
const DYNAMIC_CLIENT_PREFIX: &str = "mcpg-";

/// The caller as the rules see it.
fn caller<'a>(p: &'a Principal, groups_claim: &str) -> Caller<'a> {
    let client_id = p.client_id().map(|c| c.as_str());
    Caller {
        subject: p.subject().as_str(),
        groups: p.groups(groups_claim),
        scopes: p.scopes().iter().map(|s| s.to_string()).collect(),
        client_id,
        client_dynamic: client_id.is_some_and(|c| c.starts_with(DYNAMIC_CLIENT_PREFIX)),
    }
}

/// What the rules read of a call's params.
#[derive(serde::Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Whether the rules let `msg` through. Only requests of `tools/call`,
/// `prompts/get` and `resources/read` are decided; everything else passes.
/// A call without the name its method needs is decided with an empty name
/// (and so denied unless a rule permits every name).
pub(crate) fn check(
    rules: &Rules,
    upstream: &str,
    p: &Principal,
    groups_claim: &str,
    msg: &Message,
) -> Result<(), GatewayError> {
    if msg.kind() != Some(Kind::Request) {
        return Ok(());
    }
    let Some(op) = msg.method.as_deref().and_then(Operation::of_method) else {
        return Ok(());
    };
    let params: Option<Params> = msg.params_as();
    let (name, args) = match params {
        Some(Params {
            name,
            uri,
            arguments,
            ..
        }) => {
            let name = if op == Operation::ResourcesRead {
                uri
            } else {
                name
            };
            (name.unwrap_or_default(), arguments)
        }
        None => (String::new(), None),
    };
    let call = Call {
        caller: caller(p, groups_claim),
        op,
        name: &name,
        upstream,
        args: args.as_ref(),
    };
    let decision = rules.decide(&call);
    mcpgate_telemetry::metrics().policy_decision(decision.allowed, decision.label());
    for e in &decision.errors {
        tracing::debug!(subject = call.caller.subject, target = %name, "policy not applicable: {e}");
    }
    if decision.allowed {
        return Ok(());
    }
    let reason = decision.reason();
    tracing::info!(
        subject = call.caller.subject,
        upstream,
        method = op.method(),
        target = %name,
        policy = decision.label(),
        "call refused by policy: {reason}"
    );
    mcpgate_telemetry::note_denied(&format!("policy {}: {reason}", decision.label()));
    Err(GatewayError::PolicyDenied(format!(
        "{} of {name:?} refused: {reason}",
        op.method()
    )))
}

/// Decides what one caller's list shows (`Rules::visible`).
pub(crate) struct Lister {
    rules: Arc<Rules>,
    upstream: String,
    principal: Principal,
    groups_claim: String,
}

impl Lister {
    pub(crate) fn new(
        rules: &Arc<Rules>,
        upstream: &str,
        p: &Principal,
        groups_claim: &str,
    ) -> Self {
        Lister {
            rules: rules.clone(),
            upstream: upstream.to_owned(),
            principal: p.clone(),
            groups_claim: groups_claim.to_owned(),
        }
    }

    /// Whether an item of kind `tool`, `prompt` or `resource` named `name` is listed.
    pub(crate) fn shows(&self, kind: &str, name: &str) -> bool {
        let op = match kind {
            "tool" => Operation::ToolsCall,
            "prompt" => Operation::PromptsGet,
            _ => Operation::ResourcesRead,
        };
        self.rules.visible(&Call {
            caller: caller(&self.principal, &self.groups_claim),
            op,
            name,
            upstream: &self.upstream,
            args: None,
        })
    }
}
