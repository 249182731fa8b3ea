//! The part of a decision that a call's arguments cannot change, worked out
//! once per caller and target and kept: the Cedar entities of the request,
//! what the reachable policies that never read `context` concluded, and the
//! reachable ones that do, left for each call to evaluate with its arguments.
//!
//! Sound because a policy that does not read `context` sees only the
//! principal (subject, groups, scopes, client), the action and the resource
//! (name, upstream, virtual server, annotations): the key holds all of them.

use std::sync::Arc;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use serde_json::Value;

use crate::call::Call;
use crate::entities::{Types, context, entities};
use crate::scope::{Scopes, subset};

/// Callers × targets kept; past it the least useful are dropped.
const CAPACITY: u64 = 4096;

/// A key longer than this (a client may name a tool with a megabyte) is not
/// kept: the call is prepared for itself alone.
const MAX_KEY: usize = 2048;

/// The prepared parts, per caller and target; a reload builds new rules and
/// so starts an empty cache. Hashed with foldhash: SipHash over the key was
/// a fifth of a cached decision's cost, and a random seed still keeps a
/// client from choosing names that collide.
pub(crate) type Cache = moka::sync::Cache<Box<[u8]>, Arc<Prepared>, foldhash::quality::FixedState>;

pub(crate) fn cache() -> Cache {
    // std's `RandomState` draws its keys from the OS: a hash under them is a
    // random seed (foldhash's own seeding without `std` uses addresses only).
    let seed =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
    moka::sync::Cache::builder()
        .max_capacity(CAPACITY)
        .build_with_hasher(foldhash::quality::FixedState::with_seed(seed))
}

/// What some policies concluded about one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcome {
    /// Positions of the policies satisfied, those Cedar names: the permits
    /// when no forbid was satisfied, else the forbids.
    pub(crate) satisfied: Vec<usize>,
    /// Positions of the policies that could not be evaluated, and why.
    pub(crate) errors: Vec<(usize, String)>,
    /// Cedar refused the request itself (it does not without a schema).
    pub(crate) refused: bool,
}

/// One caller and target, ready for its calls.
#[derive(Debug)]
pub(crate) struct Prepared {
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    entities: Entities,
    /// The reachable policies that do not read `context`, decided.
    pub(crate) fixed: Outcome,
    /// The reachable policies that do, to decide per call.
    live: Option<PolicySet>,
    /// Their positions, when every one of them is evaluated without Cedar
    /// (`native.rs`).
    native: Option<Vec<usize>>,
}

impl Prepared {
    /// Evaluates the policies that read `context` with the call's
    /// arguments (`None`: an empty context): without Cedar when each can
    /// be and none errs, else by Cedar over Cedar's context of them.
    pub(crate) fn live(&self, scopes: &Scopes, args: Option<&Value>) -> Outcome {
        let Some(set) = &self.live else {
            return Outcome::default();
        };
        if let Some(satisfied) = self.native.as_ref().and_then(|n| native(scopes, n, args)) {
            return Outcome {
                satisfied,
                ..Outcome::default()
            };
        }
        self.run(scopes, set, context(args))
    }

    #[cfg(test)]
    pub(crate) fn evaluated_natively(&self) -> bool {
        self.live.is_some() && self.native.is_some()
    }

    fn run(&self, scopes: &Scopes, set: &PolicySet, context: Context) -> Outcome {
        let request = Request::new(
            self.principal.clone(),
            self.action.clone(),
            self.resource.clone(),
            context,
            None,
        );
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("policy request refused by Cedar: {e}");
                return Outcome {
                    refused: true,
                    ..Outcome::default()
                };
            }
        };
        let response = Authorizer::new().is_authorized(&request, set, &self.entities);
        let d = response.diagnostics();
        let satisfied = d.reason().filter_map(|id| scopes.position(id)).collect();
        let errors = d
            .errors()
            .filter_map(|e| {
                let cedar_policy::AuthorizationError::PolicyEvaluationError(e) = e;
                Some((scopes.position(e.policy_id())?, e.inner().to_string()))
            })
            .collect();
        Outcome {
            satisfied,
            errors,
            refused: false,
        }
    }
}

/// The positions among `live` whose conditions hold, or `None` when one
/// of them would err in Cedar (or, not expected, is not compiled).
fn native(scopes: &Scopes, live: &[usize], args: Option<&Value>) -> Option<Vec<usize>> {
    let mut satisfied = Vec::new();
    for &i in live {
        if scopes.get(i)?.native.as_ref()?.hold(args)? {
            satisfied.push(i);
        }
    }
    Some(satisfied)
}

/// The prepared parts of `call`, from the cache or made now.
pub(crate) fn prepared(
    cache: &Cache,
    scopes: &Scopes,
    types: &Types,
    call: &Call<'_>,
) -> Arc<Prepared> {
    let key = key(call);
    if key.len() > MAX_KEY {
        return Arc::new(prepare(scopes, types, call));
    }
    if let Some(p) = cache.get(&key[..]) {
        return p;
    }
    let p = Arc::new(prepare(scopes, types, call));
    cache.insert(key.into_boxed_slice(), p.clone());
    p
}

fn prepare(scopes: &Scopes, types: &Types, call: &Call<'_>) -> Prepared {
    let resource = types.target(call.op, call.name);
    let entities = entities(types, call, &resource);
    let mut p = Prepared {
        principal: types.user(call.caller.subject),
        action: types.action(call.op.method()),
        resource,
        entities,
        fixed: Outcome::default(),
        live: None,
        native: None,
    };
    let (live, fixed): (Vec<usize>, Vec<usize>) = scopes
        .candidates(&call.caller, call.op, call.name)
        .into_iter()
        .partition(|&i| scopes.get(i).is_some_and(|p| p.reads_context));
    let sets = (subset(scopes, &fixed), subset(scopes, &live));
    let positions = live;
    match sets {
        (Ok(fixed), Ok(live)) => {
            p.fixed = p.run(scopes, &fixed, Context::empty());
            p.native = positions
                .iter()
                .all(|&i| scopes.get(i).is_some_and(|p| p.native.is_some()))
                .then_some(positions);
            p.live = (!live.is_empty()).then_some(live);
        }
        (Err(e), _) | (_, Err(e)) => {
            // Every policy then, per call: slower, never a different answer.
            tracing::warn!("policy subset refused by Cedar: {e}");
            p.live = Some(scopes.all().clone());
        }
    }
    p
}

/// Everything the prepared parts depend on, each string length-prefixed so
/// no two calls share a key unless they agree on every part.
fn key(call: &Call<'_>) -> Vec<u8> {
    fn text(k: &mut Vec<u8>, s: &str) {
        k.extend_from_slice(&(s.len() as u64).to_le_bytes());
        k.extend_from_slice(s.as_bytes());
    }
    fn flag(b: Option<bool>) -> u8 {
        match b {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }
    }
    let c = &call.caller;
    let mut k = Vec::with_capacity(
        128 + call.name.len()
            + call.upstream.len()
            + c.subject.len()
            + c.groups
                .iter()
                .chain(&c.scopes)
                .map(String::len)
                .sum::<usize>(),
    );
    k.push(call.op as u8);
    text(&mut k, call.name);
    text(&mut k, call.upstream);
    k.push(flag(call.hints.read_only));
    k.push(flag(call.hints.destructive));
    match call.virtual_server {
        Some(v) => {
            k.push(1);
            text(&mut k, v);
        }
        None => k.push(0),
    }
    text(&mut k, c.subject);
    for list in [&c.groups, &c.scopes] {
        k.extend_from_slice(&(list.len() as u64).to_le_bytes());
        for s in list {
            text(&mut k, s);
        }
    }
    match c.client_id {
        Some(id) => {
            k.push(1);
            text(&mut k, id);
            k.push(u8::from(c.client_dynamic));
            k.push(u8::from(c.client_metadata_document));
        }
        None => k.push(0),
    }
    k
}
