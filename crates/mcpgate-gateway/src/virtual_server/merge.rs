//! `tools/list`, `prompts/list`, `resources/list` and
//! `resources/templates/list` of a virtual server: every member's list,
//! all pages, merged into one page under the names the client sees. A
//! member that fails is left out (and logged) rather than failing the list.

use std::collections::HashMap;
use std::sync::Arc;

use mcpgate_guard::Authorized;
use serde_json::Value;
use serde_json::value::RawValue;

use super::session::{Named, Opened, VirtualSession};
use crate::auth::Admitted;
use crate::error::GatewayError;
use crate::jsonrpc::{self, Kind, Message};
use crate::state::Gateway;

/// Pages read from one member before the rest is given up (and logged).
const MAX_PAGES: usize = 100;

/// One of the lists a virtual server merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl List {
    pub(super) fn of(method: &str) -> Option<List> {
        Some(match method {
            "tools/list" => List::Tools,
            "prompts/list" => List::Prompts,
            "resources/list" => List::Resources,
            "resources/templates/list" => List::Templates,
            _ => return None,
        })
    }

    fn method(self) -> &'static str {
        match self {
            List::Tools => "tools/list",
            List::Prompts => "prompts/list",
            List::Resources => "resources/list",
            List::Templates => "resources/templates/list",
        }
    }

    /// The result's array and the key each item is named by.
    fn field(self) -> (&'static str, &'static str) {
        match self {
            List::Tools => ("tools", "name"),
            List::Prompts => ("prompts", "name"),
            List::Resources => ("resources", "uri"),
            List::Templates => ("resourceTemplates", "uriTemplate"),
        }
    }

    /// The server capability a member declares when it has this list.
    fn capability(self) -> &'static str {
        match self {
            List::Tools => "tools",
            List::Prompts => "prompts",
            List::Resources | List::Templates => "resources",
        }
    }
}

/// The merged list, as a result, remembering which member each name came from.
pub(super) async fn merged(
    gw: &Gateway,
    s: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    list: List,
) -> Result<Box<RawValue>, GatewayError> {
    let fetches = (0..s.server.members.len()).map(|i| member_items(gw, s, caller, proof, i, list));
    let results = futures_util::future::join_all(fetches).await;
    let (field, key) = list.field();
    let mut items = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    for (i, got) in results.into_iter().enumerate() {
        let member = &s.server.members[i];
        let got = match got {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(virtual_server = %s.server.name, member = %member.name, list = list.method(), error = %e, "a member's list is left out of the virtual server's");
                failures.push(format!("{}: {e}", member.name));
                continue;
            }
        };
        for mut item in got {
            let Some(obj) = item.as_object_mut() else {
                continue;
            };
            let Some(original) = obj.get(key).and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let shown = match list {
                List::Tools => match member.rules.tool_shown(&original) {
                    Some(n) => n,
                    None => continue,
                },
                List::Prompts => member.rules.prefixed(&original),
                List::Resources | List::Templates => original.clone(),
            };
            if let Some(&first) = seen.get(&shown) {
                if first != i {
                    tracing::warn!(virtual_server = %s.server.name, name = %shown, kept = %s.server.members[first].name, hidden = %member.name, list = list.method(), "two members of a virtual server offer the same name: the first member's is kept; rename one (tools.rename) or set prefix = true");
                }
                continue;
            }
            seen.insert(shown.clone(), i);
            if list == List::Tools
                && let Some(d) = member.rules.description(&original)
            {
                obj.insert("description".into(), d.into());
            }
            obj.insert(key.into(), shown.into());
            items.push(item);
        }
    }
    if !failures.is_empty() && failures.len() == s.server.members.len() {
        return Err(GatewayError::UpstreamUnavailable(format!(
            "no member of virtual server {} answered {}: {}",
            s.server.name,
            list.method(),
            failures.join("; ")
        )));
    }
    match list {
        List::Templates => s.remember_templates(
            seen.into_iter()
                .map(|(t, i)| (t.split('{').next().unwrap_or_default().to_owned(), i))
                .collect(),
        ),
        List::Tools => s.remember(
            |n| matches!(n, Named::Tool(_)),
            seen.into_iter().map(|(n, i)| (Named::Tool(n), i)).collect(),
        ),
        List::Prompts => s.remember(
            |n| matches!(n, Named::Prompt(_)),
            seen.into_iter()
                .map(|(n, i)| (Named::Prompt(n), i))
                .collect(),
        ),
        List::Resources => s.remember(
            |n| matches!(n, Named::Resource(_)),
            seen.into_iter()
                .map(|(n, i)| (Named::Resource(n), i))
                .collect(),
        ),
    }
    let mut result = serde_json::Map::new();
    result.insert(field.into(), Value::Array(items));
    Ok(jsonrpc::raw(&result))
}

/// Every page of one member's list (none when it declares no such capability).
async fn member_items(
    gw: &Gateway,
    s: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    idx: usize,
    list: List,
) -> Result<Vec<Value>, GatewayError> {
    let opened = super::open::member(gw, s, idx, caller, proof).await?;
    if opened.capabilities.get(list.capability()).is_none() {
        return Ok(Vec::new());
    }
    let (field, _) = list.field();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor
            .as_ref()
            .map(|c| jsonrpc::raw(&serde_json::json!({ "cursor": c })));
        let result = ask(s, idx, &opened, proof, list.method(), params).await?;
        let mut page: serde_json::Map<String, Value> =
            serde_json::from_str(result.get()).unwrap_or_default();
        if let Some(Value::Array(a)) = page.remove(field) {
            out.extend(a);
        }
        cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            return Ok(out);
        }
    }
    tracing::warn!(virtual_server = %s.server.name, member = %s.server.members[idx].name, pages = MAX_PAGES, list = list.method(), "a member's list has more pages than a virtual server reads; the rest is left out");
    Ok(out)
}

/// A request of the gateway's own to a member, on the client's behalf: its result.
/// Whatever the member says before answering goes to the client's GET stream.
pub(super) async fn ask(
    s: &VirtualSession,
    idx: usize,
    opened: &Opened,
    proof: &Authorized,
    method: &str,
    params: Option<Box<RawValue>>,
) -> Result<Box<RawValue>, GatewayError> {
    let member = &s.server.members[idx];
    let msg = Message::request(s.own_id(), method, params);
    let deadline = tokio::time::Instant::now() + member.timeout;
    let mut ex = opened
        .link
        .request(proof, msg)
        .await
        .map_err(|e| GatewayError::from(&e))?;
    loop {
        match tokio::time::timeout_at(deadline, ex.recv()).await {
            Ok(Some(m)) if m.kind() == Some(Kind::Response) => {
                return match (m.result, m.error) {
                    (Some(r), _) => Ok(r),
                    (None, e) => Err(GatewayError::UpstreamUnavailable(format!(
                        "member {} answered {method} with an error: {}",
                        member.name,
                        e.as_deref().map_or("(none)", RawValue::get)
                    ))),
                };
            }
            Ok(Some(m)) => s.server_stream.push(&s.relayed_from(idx, m)),
            Ok(None) => {
                return Err(GatewayError::UpstreamUnavailable(format!(
                    "member {} closed without answering {method}",
                    member.name
                )));
            }
            Err(_) => {
                return Err(GatewayError::UpstreamTimedOut(format!(
                    "member {} did not answer {method} within {:?}",
                    member.name, member.timeout
                )));
            }
        }
    }
}
