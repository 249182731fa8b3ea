//! The Cedar values of one call: the principal and its groups, the resource,
//! and the arguments as context, built from what the gateway knows.
//!
//! Values are built as Cedar expressions, never parsed from JSON: an argument
//! shaped like Cedar's JSON escapes (`{"__entity": …}`) stays a plain record
//! and cannot name an entity.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};
use serde_json::Value;

use crate::call::{Call, Caller, Operation};

/// The entity types of the request, parsed once when the rules load.
#[derive(Debug, Clone)]
pub(crate) struct Types {
    user: EntityTypeName,
    group: EntityTypeName,
    action: EntityTypeName,
    tool: EntityTypeName,
    prompt: EntityTypeName,
    resource: EntityTypeName,
}

impl Types {
    /// `None` only if one of the constant names did not parse.
    pub(crate) fn new() -> Option<Types> {
        let t = |s: &str| EntityTypeName::from_str(s).ok();
        Some(Types {
            user: t("User")?,
            group: t("Group")?,
            action: t("Action")?,
            tool: t("Tool")?,
            prompt: t("Prompt")?,
            resource: t("Resource")?,
        })
    }

    pub(crate) fn user(&self, id: &str) -> EntityUid {
        uid(&self.user, id)
    }

    pub(crate) fn action(&self, id: &str) -> EntityUid {
        uid(&self.action, id)
    }

    pub(crate) fn user_type(&self) -> &EntityTypeName {
        &self.user
    }

    pub(crate) fn group_type(&self) -> &EntityTypeName {
        &self.group
    }

    /// The resource type of an operation's requests.
    pub(crate) fn target_type(&self, op: Operation) -> &EntityTypeName {
        match op {
            Operation::ToolsCall => &self.tool,
            Operation::PromptsGet => &self.prompt,
            Operation::ResourcesRead => &self.resource,
        }
    }

    /// The resource of an operation: `Tool::`, `Prompt::` or `Resource::`.
    pub(crate) fn target(&self, op: Operation, name: &str) -> EntityUid {
        uid(self.target_type(op), name)
    }
}

fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .into_iter()
            .map(|s| RestrictedExpression::new_string(s.to_owned())),
    )
}

/// The principal, its groups and the resource of `call`.
pub(crate) fn entities(types: &Types, call: &Call<'_>, resource: &EntityUid) -> Entities {
    let c: &Caller<'_> = &call.caller;
    let groups: HashSet<EntityUid> = c.groups.iter().map(|g| uid(&types.group, g)).collect();
    let mut attrs = HashMap::from([
        (
            "groups".to_owned(),
            strings(c.groups.iter().map(String::as_str)),
        ),
        (
            "scopes".to_owned(),
            strings(c.scopes.iter().map(String::as_str)),
        ),
    ]);
    if let Some(id) = c.client_id {
        let client = RestrictedExpression::new_record([
            (
                "id".to_owned(),
                RestrictedExpression::new_string(id.to_owned()),
            ),
            (
                "dynamic".to_owned(),
                RestrictedExpression::new_bool(c.client_dynamic),
            ),
            (
                "metadata_document".to_owned(),
                RestrictedExpression::new_bool(c.client_metadata_document),
            ),
        ]);
        if let Ok(client) = client {
            attrs.insert("client".to_owned(), client);
        }
    }
    let mut all: Vec<Entity> = groups
        .iter()
        .map(|g| Entity::new_no_attrs(g.clone(), HashSet::new()))
        .collect();
    let me = types.user(c.subject);
    let principal = Entity::new(me.clone(), attrs, groups)
        .unwrap_or_else(|_| Entity::new_no_attrs(me, HashSet::new()));
    all.push(principal);
    let mut resource_attrs = HashMap::from([
        (
            "name".to_owned(),
            RestrictedExpression::new_string(call.name.to_owned()),
        ),
        (
            "upstream".to_owned(),
            RestrictedExpression::new_string(call.upstream.to_owned()),
        ),
    ]);
    // Absent rather than defaulted when unknown, so a rule says what it
    // assumes (`resource has read_only && resource.read_only`).
    let optional = [
        (
            "virtual_server",
            call.virtual_server
                .map(|v| RestrictedExpression::new_string(v.to_owned())),
        ),
        (
            "read_only",
            call.hints.read_only.map(RestrictedExpression::new_bool),
        ),
        (
            "destructive",
            call.hints.destructive.map(RestrictedExpression::new_bool),
        ),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            resource_attrs.insert(k.to_owned(), v);
        }
    }
    let resource = Entity::new(resource.clone(), resource_attrs, HashSet::new())
        .unwrap_or_else(|_| Entity::new_no_attrs(resource.clone(), HashSet::new()));
    all.push(resource);
    Entities::from_entities(all, None).unwrap_or_else(|e| {
        tracing::warn!("policy entities: {e}");
        Entities::empty()
    })
}

/// The call's arguments as context: each top-level argument a context
/// attribute. Values Cedar has no type for (null, a fraction, an integer
/// beyond 64 bits) are left out, so a condition on them errors and its policy
/// does not apply.
pub(crate) fn context(args: Option<&Value>) -> Context {
    let Some(Value::Object(map)) = args else {
        return Context::empty();
    };
    let pairs = map
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), expression(v, 0)?)));
    Context::from_pairs(pairs).unwrap_or_else(|e| {
        tracing::warn!("policy context: {e}");
        Context::empty()
    })
}

/// Arguments nested deeper than this are left out (Cedar evaluates recursively).
pub(crate) const MAX_DEPTH: usize = 32;

fn expression(v: &Value, depth: usize) -> Option<RestrictedExpression> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().filter_map(|i| expression(i, depth + 1)))
        }
        Value::Object(map) => RestrictedExpression::new_record(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), expression(v, depth + 1)?))),
        )
        .ok()?,
    })
}
