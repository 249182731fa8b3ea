//! mcpgate's per-call rules, written in Cedar: who may call which tool,
//! prompt or resource, with which arguments.
//!
//! The gateway asks once per `tools/call`, `prompts/get` and `resources/read`,
//! after authentication and the scope check, with the caller and the call
//! ([`Call`]); [`Rules::decide`] answers with a [`Decision`] that names the
//! policies that decided it (their `@id("…")` annotation, else Cedar's
//! `policy0`, `policy1`…). [`Rules::visible`] decides what lists show.
//!
//! The request Cedar sees (docs/POLICY.md has the worked examples):
//! - principal `User::"<subject>"`, a member of `Group::"<g>"` for each of its
//!   groups, with attributes `groups` and `scopes` (sets of strings) and, when
//!   the token names a client, `client` (`{ id, dynamic, metadata_document }`);
//! - action `Action::"tools/call"`, `Action::"prompts/get"` or `Action::"resources/read"`;
//! - resource `Tool::"<name>"`, `Prompt::"<name>"` or `Resource::"<uri>"`, as
//!   the client sees it, with attributes `name`, `upstream` (the member a
//!   virtual server routes to), `virtual_server` (only through one), and
//!   `read_only` / `destructive` (the tool's annotations, when known);
//! - context: the call's arguments (a resource read has none).
//!
//! Cedar decides every call; the common argument conditions (`context has
//! repo && context.repo like "acme/*"`) are evaluated on the JSON arguments
//! directly, with Cedar's answers (`native.rs`), and anything else, or
//! anything that errs, by Cedar itself.
//!
//! This crate never sees a credential; it must never panic on what a client
//! sends (arguments Cedar cannot represent are left out of the context).

mod call;
mod decide;
mod entities;
mod error;
mod load;
mod native;
mod prepared;
mod scope;

#[cfg(test)]
mod differential;

pub use call::{Call, Caller, Hints, Operation};
pub use decide::Decision;
pub use error::PolicyError;
pub use load::Rules;
