//! The `[policy]` rules (Cedar, `mcpgate-policy`) at the gateway's one
//! per-operation authorization point (`Guard::decide`, after the scopes):
//! the call's caller, name and arguments read from the message, the decision
//! logged, counted and, when denied, audited and answered as a JSON-RPC error.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mcpgate_guard::Principal;
use mcpgate_policy::{Call, Caller, Hints, Operation, Rules};
use serde_json::Value;

use crate::error::GatewayError;
use crate::jsonrpc::{Kind, Message};

/// The built-in authorization server's dynamically registered clients get
/// ids with this prefix (pre-registered ones are named in the configuration,
/// metadata-document ones are https URLs).
const DYNAMIC_CLIENT_PREFIX: &str = "mcpg-";

/// Where a call goes, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The endpoint the client called: an upstream or a virtual server (the
    /// key of the annotations learnt from its lists).
    pub(crate) endpoint: &'a str,
    /// The upstream that serves the call (a virtual server's member).
    pub(crate) upstream: &'a str,
    /// The virtual server, when the endpoint is one.
    pub(crate) virtual_server: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// A plain upstream's endpoint.
    pub(crate) fn upstream(name: &'a str) -> Self {
        Target {
            endpoint: name,
            upstream: name,
            virtual_server: None,
        }
    }
}

/// Tools listed per endpoint before the learnt annotations stop growing: an
/// upstream listing without end must not grow the gateway without end.
const MAX_HINTS_PER_ENDPOINT: usize = 4096;

/// The tools' annotations (`readOnlyHint`, `destructiveHint`) learnt from
/// the `tools/list` answers relayed, per endpoint and shown name, so a call
/// can be decided on them: a call carries no annotations. Kept across
/// reloads; a tool not listed since the start is decided without them.
#[derive(Debug, Default)]
pub(crate) struct ToolHints {
    by_endpoint: RwLock<HashMap<String, HashMap<String, Hints>>>,
}

impl ToolHints {
    fn get(&self, endpoint: &str, tool: &str) -> Hints {
        let map = self
            .by_endpoint
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(endpoint)
            .and_then(|tools| tools.get(tool))
            .copied()
            .unwrap_or_default()
    }

    fn note(&self, endpoint: &str, tool: &str, hints: Hints) {
        if self.get(endpoint, tool) == hints {
            return;
        }
        let mut map = self
            .by_endpoint
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tools = map.entry(endpoint.to_owned()).or_default();
        if tools.len() < MAX_HINTS_PER_ENDPOINT || tools.contains_key(tool) {
            tools.insert(tool.to_owned(), hints);
        }
    }
}

/// The annotations of one listed tool.
fn hints_of(item: &Value) -> Hints {
    let a = item.get("annotations");
    let flag = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_bool);
    Hints {
        read_only: flag("readOnlyHint"),
        destructive: flag("destructiveHint"),
    }
}

/// The caller as the rules see it.
fn caller<'a>(p: &'a Principal, groups_claim: &str) -> Caller<'a> {
    let client_id = p.client_id().map(|c| c.as_str());
    Caller {
        subject: p.subject().as_str(),
        groups: p.groups(groups_claim),
        scopes: p.scopes().iter().map(|s| s.to_string()).collect(),
        client_id,
        client_dynamic: client_id.is_some_and(|c| c.starts_with(DYNAMIC_CLIENT_PREFIX)),
        // Client ID Metadata Documents: the id is the document's URL.
        client_metadata_document: client_id.is_some_and(|c| c.starts_with("https://")),
    }
}

/// What the rules read of a call's params. The arguments are kept raw: they
/// are read only when some rule reads `context`.
#[derive(serde::Deserialize)]
struct Params<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default, borrow)]
    arguments: Option<&'a serde_json::value::RawValue>,
}

/// Whether the rules let `msg` through. Only requests of `tools/call`,
/// `prompts/get` and `resources/read` are decided; everything else passes.
/// A call without the name its method needs is decided with an empty name
/// (and so denied unless a rule permits every name).
pub(crate) fn check(
    rules: &Rules,
    hints: &ToolHints,
    target: Target<'_>,
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
            let args = arguments
                .filter(|_| rules.reads_context())
                .and_then(|a| serde_json::from_str::<Value>(a.get()).ok());
            (name.unwrap_or_default(), args)
        }
        None => (String::new(), None),
    };
    let call = Call {
        caller: caller(p, groups_claim),
        op,
        name: &name,
        upstream: target.upstream,
        virtual_server: target.virtual_server,
        hints: if op == Operation::ToolsCall {
            hints.get(target.endpoint, &name)
        } else {
            Hints::default()
        },
        args: args.as_ref(),
    };
    let decision = rules.decide(&call);
    mcpgate_telemetry::metrics().policy_decision(decision.allowed, decision.label());
    for e in &decision.errors {
        tracing::debug!(subject = call.caller.subject, target = %name, "policy not applicable: {e}");
    }
    if decision.allowed {
        mcpgate_telemetry::note_policy_allowed(decision.label(), op.method(), &name);
        return Ok(());
    }
    let reason = decision.reason();
    tracing::info!(
        subject = call.caller.subject,
        upstream = target.upstream,
        virtual_server = target.virtual_server,
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

/// The member of a virtual server that shows a listed name (kind, name).
pub(crate) type MemberOf = Arc<dyn Fn(&str, &str) -> Option<Arc<str>> + Send + Sync>;

/// Decides what one caller's list shows (`Rules::visible`), and notes the
/// tools' annotations for the calls that follow.
pub(crate) struct Lister {
    rules: Arc<Rules>,
    hints: Arc<ToolHints>,
    endpoint: String,
    /// Through a virtual server: which member shows a name.
    member_of: Option<MemberOf>,
    principal: Principal,
    groups_claim: String,
}

impl Lister {
    pub(crate) fn new(
        rules: &Arc<Rules>,
        hints: &Arc<ToolHints>,
        endpoint: &str,
        member_of: Option<MemberOf>,
        p: &Principal,
        groups_claim: &str,
    ) -> Self {
        Lister {
            rules: rules.clone(),
            hints: hints.clone(),
            endpoint: endpoint.to_owned(),
            member_of,
            principal: p.clone(),
            groups_claim: groups_claim.to_owned(),
        }
    }

    /// Whether `item`, of kind `tool`, `prompt` or `resource` and named
    /// `name`, is listed.
    pub(crate) fn shows(&self, kind: &str, name: &str, item: &Value) -> bool {
        let (op, hints) = match kind {
            "tool" => {
                let hints = hints_of(item);
                self.hints.note(&self.endpoint, name, hints);
                (Operation::ToolsCall, hints)
            }
            "prompt" => (Operation::PromptsGet, Hints::default()),
            _ => (Operation::ResourcesRead, Hints::default()),
        };
        let member = self.member_of.as_ref().and_then(|m| m(kind, name));
        let (upstream, virtual_server) = match &member {
            Some(m) => (&**m, Some(self.endpoint.as_str())),
            None if self.member_of.is_some() => ("", Some(self.endpoint.as_str())),
            None => (self.endpoint.as_str(), None),
        };
        self.rules.visible(&Call {
            caller: caller(&self.principal, &self.groups_claim),
            op,
            name,
            upstream,
            virtual_server,
            hints,
            args: None,
        })
    }
}
