//! Which policies a request can reach, from their scopes alone: indexed once
//! when the rules load, so a call hands Cedar only the policies whose
//! `principal`, `action` and `resource` constraints its request can satisfy.
//!
//! A scope constraint never errors and never reads an attribute: one the
//! request cannot satisfy makes its policy "not satisfied, no error", exactly
//! what leaving the policy out gives. The request the gateway builds is
//! narrow, which is what makes this decidable here: the principal is
//! `User::"<subject>"` whose only ancestors are its `Group::"<g>"`s, the
//! action is one of three `Action::"<method>"` with no ancestors, and the
//! resource is a `Tool::`, `Prompt::` or `Resource::` with no ancestors.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, Effect, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    PrincipalConstraint, ResourceConstraint,
};

use crate::call::{Caller, Operation};
use crate::entities::Types;
use crate::native::Conditions;

/// The principals a policy's scope admits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Anyone,
    /// `principal == User::"<s>"` or `principal in User::"<s>"`.
    Subject(String),
    /// `principal in Group::"<g>"`.
    Member(String),
    /// A type or entity the request's principal never is nor descends from.
    Nobody,
}

impl Who {
    fn of(c: PrincipalConstraint, types: &Types) -> Who {
        let within = |uid: &EntityUid| {
            let id = uid.id().unescaped().to_owned();
            if uid.type_name() == types.user_type() {
                Who::Subject(id)
            } else if uid.type_name() == types.group_type() {
                Who::Member(id)
            } else {
                Who::Nobody
            }
        };
        match c {
            PrincipalConstraint::Any => Who::Anyone,
            PrincipalConstraint::Is(t) if &t == types.user_type() => Who::Anyone,
            PrincipalConstraint::Is(_) => Who::Nobody,
            PrincipalConstraint::Eq(uid) if uid.type_name() == types.user_type() => {
                Who::Subject(uid.id().unescaped().to_owned())
            }
            PrincipalConstraint::Eq(_) => Who::Nobody,
            PrincipalConstraint::In(uid) => within(&uid),
            PrincipalConstraint::IsIn(t, uid) if &t == types.user_type() => within(&uid),
            PrincipalConstraint::IsIn(..) => Who::Nobody,
        }
    }

    fn admits(&self, caller: &Caller<'_>) -> bool {
        match self {
            Who::Anyone => true,
            Who::Subject(s) => s == caller.subject,
            Who::Member(g) => caller.groups.iter().any(|m| m == g),
            Who::Nobody => false,
        }
    }
}

/// One policy as the index keeps it.
#[derive(Debug)]
pub(crate) struct Indexed {
    pub(crate) policy: Policy,
    /// The name a decision gives it (its `@id`, else Cedar's id).
    pub(crate) name: String,
    pub(crate) forbid: bool,
    /// Whether its text mentions `context`: a word search, so a string
    /// literal holding the word only makes the policy evaluated per call for
    /// nothing, while a policy cannot read the context without the word.
    pub(crate) reads_context: bool,
    /// Its conditions, when they read the context in a form evaluated
    /// without Cedar (`native.rs`).
    pub(crate) native: Option<Conditions>,
    who: Who,
}

/// The policies one operation's requests can reach, by resource.
#[derive(Debug, Default)]
struct Reach {
    /// Whatever the resource (no constraint, or only its type).
    any: Vec<usize>,
    /// Only the resource of that name (`resource == T::"n"`, `resource in T::"n"`).
    named: HashMap<String, Vec<usize>>,
}

impl Reach {
    fn add(&mut self, i: usize, op: Operation, c: &ResourceConstraint, types: &Types) {
        let kind = types.target_type(op);
        fn named<'u>(uid: &'u EntityUid, kind: &EntityTypeName) -> Option<&'u str> {
            (uid.type_name() == kind).then(|| uid.id().unescaped())
        }
        match c {
            ResourceConstraint::Any => self.any.push(i),
            ResourceConstraint::Is(t) => {
                if t == kind {
                    self.any.push(i);
                }
            }
            ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => {
                if let Some(n) = named(uid, kind) {
                    self.named.entry(n.to_owned()).or_default().push(i);
                }
            }
            ResourceConstraint::IsIn(t, uid) => {
                if let Some(n) = named(uid, kind).filter(|_| t == kind) {
                    self.named.entry(n.to_owned()).or_default().push(i);
                }
            }
        }
    }

    /// In file order: the positions are pushed in order into each list.
    fn candidates(&self, name: &str) -> Vec<usize> {
        let named = self.named.get(name).map_or(&[][..], Vec::as_slice);
        let mut all = Vec::with_capacity(self.any.len() + named.len());
        let (mut a, mut n) = (self.any.iter().peekable(), named.iter().peekable());
        loop {
            let next = match (a.peek(), n.peek()) {
                (Some(x), Some(y)) if x <= y => a.next(),
                (Some(_), Some(_)) => n.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => n.next(),
                (None, None) => break,
            };
            all.extend(next.copied());
        }
        all
    }
}

/// The policy file indexed by scope.
#[derive(Debug, Default)]
pub(crate) struct Scopes {
    /// The whole file.
    all: PolicySet,
    /// In file order.
    policies: Vec<Indexed>,
    position: HashMap<PolicyId, usize>,
    tools: Reach,
    prompts: Reach,
    resources: Reach,
}

impl Scopes {
    /// `names`: each policy's name, by Cedar id.
    pub(crate) fn new(all: PolicySet, names: &HashMap<PolicyId, String>, types: &Types) -> Self {
        let mut policies: Vec<Policy> = all.policies().cloned().collect();
        // Cedar names the policies of a file policy0, policy1… in file order;
        // the number keeps the order (and so the order a decision lists them in).
        policies.sort_by_key(|p| {
            let id = p.id().to_string();
            let n = id
                .strip_prefix("policy")
                .and_then(|n| n.parse::<u64>().ok());
            (n.unwrap_or(u64::MAX), id)
        });
        let mut s = Scopes::default();
        for (i, p) in policies.into_iter().enumerate() {
            let ops = [
                Operation::ToolsCall,
                Operation::PromptsGet,
                Operation::ResourcesRead,
            ];
            let action = p.action_constraint();
            let resource = p.resource_constraint();
            for op in ops {
                let uid = types.action(op.method());
                let reached = match &action {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(a) => *a == uid,
                    ActionConstraint::In(list) => list.contains(&uid),
                };
                if reached {
                    s.reach_mut(op).add(i, op, &resource, types);
                }
            }
            let name = names
                .get(p.id())
                .cloned()
                .unwrap_or_else(|| p.id().to_string());
            s.position.insert(p.id().clone(), i);
            let forbid = p.effect() == Effect::Forbid;
            let reads_context = p.to_string().contains("context");
            let native = reads_context.then(|| Conditions::compile(&p)).flatten();
            let who = Who::of(p.principal_constraint(), types);
            s.policies.push(Indexed {
                policy: p,
                name,
                forbid,
                reads_context,
                native,
                who,
            });
        }
        s.all = all;
        s
    }

    /// The whole file.
    pub(crate) fn all(&self) -> &PolicySet {
        &self.all
    }

    fn reach(&self, op: Operation) -> &Reach {
        match op {
            Operation::ToolsCall => &self.tools,
            Operation::PromptsGet => &self.prompts,
            Operation::ResourcesRead => &self.resources,
        }
    }

    fn reach_mut(&mut self, op: Operation) -> &mut Reach {
        match op {
            Operation::ToolsCall => &mut self.tools,
            Operation::PromptsGet => &mut self.prompts,
            Operation::ResourcesRead => &mut self.resources,
        }
    }

    /// The positions of the policies a request of `caller` for `op` on
    /// `name` can reach, in file order.
    pub(crate) fn candidates(&self, caller: &Caller<'_>, op: Operation, name: &str) -> Vec<usize> {
        let mut c = self.reach(op).candidates(name);
        c.retain(|&i| self.get(i).is_some_and(|p| p.who.admits(caller)));
        c
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Indexed> {
        self.policies.get(i)
    }

    /// The position of a policy, by Cedar id.
    pub(crate) fn position(&self, id: &PolicyId) -> Option<usize> {
        self.position.get(id).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.policies.len()
    }

    pub(crate) fn any_reads_context(&self) -> bool {
        self.policies.iter().any(|p| p.reads_context)
    }
}

/// The policies at `positions`, as one set; `Err` only if Cedar refuses
/// to make one (it cannot: they come from one set, so their ids are distinct).
pub(crate) fn subset(scopes: &Scopes, positions: &[usize]) -> Result<PolicySet, String> {
    let policies = positions
        .iter()
        .filter_map(|&i| scopes.get(i))
        .map(|p| p.policy.clone());
    PolicySet::from_policies(policies).map_err(|e| e.to_string())
}
