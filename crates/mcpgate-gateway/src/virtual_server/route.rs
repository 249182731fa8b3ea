//! A client's request in a virtual session: lists merged (`merge.rs`), a
//! call, a prompt, a resource or a completion routed to the member that
//! shows the name (prefix removed, rename undone), `ping` and
//! `logging/setLevel` answered here. A name no member shows — unknown, or
//! hidden by `tools.allow` / `tools.deny` — is refused as if it did not exist.

use std::sync::Arc;

use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::answer::Reply;
use super::merge::{self, List};
use super::session::{Named, VirtualSession};
use crate::auth::Admitted;
use crate::jsonrpc::{self, Message, Sole, code};
use crate::state::Gateway;

/// MCP's code for a resource no server has (-32002 in the spec's examples).
const RESOURCE_NOT_FOUND: i64 = -32002;

/// Answers one client request of a virtual session.
pub(super) async fn request(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    msg: Message,
) -> Reply {
    let id = msg.id.clone().unwrap_or_else(jsonrpc::null_id);
    let method = msg.method.clone().unwrap_or_default();
    if let Some(list) = List::of(&method) {
        return match merge::merged(gw, session, caller, proof, list).await {
            Ok(result) => {
                let mut m = Message::response(id, result);
                // The virtual server's own tool_scopes, on the names the client
                // sees; the `[policy]` rules with each item's member.
                if let Some(filter) = gw.shared.guard.list_filter_with(
                    &session.server.name,
                    caller.principal(),
                    &method,
                    Some(member_of(session)),
                ) {
                    filter(&mut m);
                }
                Reply::ok(m)
            }
            Err(e) => Reply::Failed(e, Some(id)),
        };
    }
    match method.as_str() {
        "ping" => Reply::ok(Message::response(id, jsonrpc::raw(&serde_json::json!({})))),
        "logging/setLevel" => {
            for (i, opened) in session.opened() {
                if let Err(e) =
                    merge::ask(session, i, &opened, proof, &method, msg.params.clone()).await
                {
                    tracing::info!(virtual_server = %session.server.name, member = %session.server.members[i].name, error = %e, "a member did not take logging/setLevel");
                }
            }
            Reply::ok(Message::response(id, jsonrpc::raw(&serde_json::json!({}))))
        }
        "tools/call"
        | "prompts/get"
        | "resources/read"
        | "resources/subscribe"
        | "resources/unsubscribe"
        | "completion/complete" => routed(gw, session, caller, proof, msg, &method).await,
        _ => Reply::ok(Message::error(
            Some(id),
            code::METHOD_NOT_FOUND,
            &format!(
                "Method not found: {method} (a virtual server serves tools, prompts, resources, completions, ping and logging/setLevel)"
            ),
        )),
    }
}

/// A member given once.
fn sole<'a>(object: &'a RawValue, key: &str) -> Result<&'a RawValue, Missing> {
    match jsonrpc::sole_member(object, key) {
        Sole::Once(v) => Ok(v),
        Sole::Repeated => Err(Missing::Repeated),
        Sole::Missing => Err(Missing::Name),
    }
}

/// A string member given once: its text, escapes decoded, and its value.
fn sole_string<'a>(object: &'a RawValue, key: &str) -> Result<(String, &'a RawValue), Missing> {
    let v = sole(object, key)?;
    let text = serde_json::from_str(v.get()).map_err(|_| Missing::Name)?;
    Ok((text, v))
}

/// Why a request names no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// No name (or uri), or not a string.
    Name,
    /// A member on the way to it given twice: which one an upstream reads
    /// depends on its JSON parser, so the gateway does not guess.
    Repeated,
}

/// The name a request targets and where it is in the params: the value
/// (`name`, `uri`, or `ref.name` / `ref.uri` of a completion) to replace
/// with the member's own name, so the rest, arguments included, goes to the
/// member as the client wrote it.
fn target_of<'a>(method: &str, params: &'a RawValue) -> Result<(Named, &'a RawValue), Missing> {
    let (named, (text, at)): (fn(String) -> Named, _) = match method {
        "tools/call" => (Named::Tool, sole_string(params, "name")?),
        "prompts/get" => (Named::Prompt, sole_string(params, "name")?),
        "completion/complete" => {
            let r = sole(params, "ref")?;
            match sole_string(r, "type")?.0.as_str() {
                "ref/prompt" => (Named::Prompt, sole_string(r, "name")?),
                _ => (Named::Resource, sole_string(r, "uri")?),
            }
        }
        _ => (Named::Resource, sole_string(params, "uri")?),
    };
    Ok((named(text), at))
}

async fn routed(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    msg: Message,
    method: &str,
) -> Reply {
    let id = msg.id.clone();
    let (idx, msg) = match locate(gw, session, caller, proof, msg, method).await {
        Ok(v) => v,
        Err(refusal) => return Reply::ok(refusal),
    };
    let opened = match super::open::member(gw, session, idx, caller, proof).await {
        Ok(o) => o,
        Err(e) => return Reply::Failed(e, id),
    };
    super::answer::respond(gw, session, idx, opened, proof, msg).await
}

/// The member that shows the name `msg` targets, and `msg` in the member's
/// own names; or the error answering a name no member shows.
pub(super) async fn locate(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    mut msg: Message,
    method: &str,
) -> Result<(usize, Message), Message> {
    let id = msg.id.clone();
    let params = msg
        .params
        .take()
        .unwrap_or_else(|| jsonrpc::raw(&serde_json::Map::new()));
    let (target, at) = match target_of(method, &params) {
        Ok(t) => t,
        Err(why) => {
            let message = match why {
                Missing::Name => format!("Invalid params: {method} needs a name (or uri)"),
                Missing::Repeated => {
                    format!("Invalid params: {method} gives its name (or uri) more than once")
                }
            };
            tracing::info!(virtual_server = %session.server.name, method, "refused: {message}");
            return Err(Message::error(id, code::INVALID_PARAMS, &message));
        }
    };
    // `target` is the name as the client sees it (prefixed, renamed): the
    // virtual server's policy was asked about this name (`authorize_post`).
    let Some((idx, original)) = resolve(gw, session, caller, proof, &target).await else {
        let (code, what, name) = match &target {
            Named::Tool(n) => (code::INVALID_PARAMS, "Unknown tool", n),
            Named::Prompt(n) => (code::INVALID_PARAMS, "Unknown prompt", n),
            Named::Resource(u) => (RESOURCE_NOT_FOUND, "Resource not found", u),
        };
        tracing::info!(virtual_server = %session.server.name, method, name = %name, "refused: no member of the virtual server shows this name (unknown, or hidden by tools.allow / tools.deny)");
        return Err(Message::error(id, code, &format!("{what}: {name}")));
    };
    let renamed = jsonrpc::spliced(&params, at, &jsonrpc::raw(&original));
    msg.params = Some(params);
    // The rules decide once the member is known: they see it as `resource.upstream`.
    if let Some(member) = session.server.members.get(idx)
        && let Err(e) =
            gw.shared
                .guard
                .decide_member(&session.server.name, &member.name, caller, &msg)
    {
        return Err(e.message(id));
    }
    let Some(renamed) = renamed else {
        // Not reached: `at` is a slice of `params` by construction.
        return Err(Message::error(
            id,
            code::INTERNAL_ERROR,
            "Internal error: could not rename the target",
        ));
    };
    msg.params = Some(renamed);
    Ok((idx, msg))
}

/// Which member shows a listed name, from the merged lists just made.
pub(super) fn member_of(session: &Arc<VirtualSession>) -> crate::rules::MemberOf {
    let session = session.clone();
    Arc::new(move |kind: &str, name: &str| {
        let named = match kind {
            "tool" => Named::Tool(name.to_owned()),
            "prompt" => Named::Prompt(name.to_owned()),
            _ => Named::Resource(name.to_owned()),
        };
        let i = session.listed(&named)?;
        Some(session.server.members.get(i)?.name.clone())
    })
}

/// The member that shows `target`, and the member's own name for it. Names
/// not listed yet (or listed before a `list_changed`) are looked up once
/// more after merging that list.
async fn resolve(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    target: &Named,
) -> Option<(usize, String)> {
    if let Some(found) = known(session, target) {
        return Some(found);
    }
    let lists: &[List] = match target {
        Named::Tool(_) => &[List::Tools],
        Named::Prompt(_) => &[List::Prompts],
        Named::Resource(_) => &[List::Resources, List::Templates],
    };
    for list in lists {
        if let Err(e) = merge::merged(gw, session, caller, proof, *list).await {
            tracing::info!(virtual_server = %session.server.name, error = %e, "could not list the members to route a name");
        }
    }
    known(session, target)
}

fn known(session: &VirtualSession, target: &Named) -> Option<(usize, String)> {
    let members = &session.server.members;
    // When every member is prefixed the prefix alone says which member; with
    // an unprefixed member the merged list decides (the first member wins).
    let all_prefixed = members.iter().all(|m| m.rules.is_prefixed());
    match target {
        Named::Tool(name) => match session.listed(target) {
            Some(i) => Some((i, members.get(i)?.rules.tool_original(name)?)),
            None if all_prefixed => members
                .iter()
                .enumerate()
                .find_map(|(i, m)| Some((i, m.rules.tool_original(name)?))),
            None => None,
        },
        Named::Prompt(name) => match session.listed(target) {
            Some(i) => Some((i, members.get(i)?.rules.unprefixed(name)?.to_owned())),
            None if all_prefixed => members
                .iter()
                .enumerate()
                .find_map(|(i, m)| Some((i, m.rules.unprefixed(name)?.to_owned()))),
            None => None,
        },
        Named::Resource(uri) => session
            .listed(target)
            .or_else(|| session.templated(uri))
            .map(|i| (i, uri.clone())),
    }
}

#[cfg(test)]
mod tests;
