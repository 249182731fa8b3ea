//! One decision: the prepared part of a call's request, the policies that
//! read its arguments evaluated with them, and the answer with the names of
//! the policies that gave it.

use crate::call::Call;
use crate::load::Rules;
use crate::prepared::{Outcome, prepared};
use crate::scope::Scopes;

/// What the rules say about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call may go ahead.
    pub allowed: bool,
    /// The policies that decided: the permits that applied to an allowed
    /// call, the forbids that applied to a denied one (none: no policy permits).
    pub deciding: Vec<String>,
    /// Policies that could not be evaluated (a missing argument, a type
    /// mismatch), each `<id>: <Cedar's reason>`; they did not apply.
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
        let args = call.args.filter(|_| self.reads_context);
        let p = prepared(&self.prepared, &self.scopes, &self.types, call);
        let live = p.live(&self.scopes, args);
        decision(&self.scopes, &p.fixed, &live)
    }

    /// Whether a list shows `call`'s target (its `args` are ignored): the
    /// call is decided with no arguments; an allowed one is shown, a forbidden
    /// one hidden; one nothing permits is shown only when a permit could not
    /// be evaluated without arguments (its condition reads `context`), since
    /// some arguments may satisfy it.
    pub fn visible(&self, call: &Call<'_>) -> bool {
        let p = prepared(&self.prepared, &self.scopes, &self.types, call);
        let live = p.live(&self.scopes, None);
        shown(&self.scopes, &p.fixed, &live)
    }
}

/// Cedar's answer over the policies of `parts` (disjoint sets of one file):
/// any satisfied forbid denies, naming every satisfied forbid; else any
/// satisfied permit allows, naming every satisfied permit; else denied,
/// naming none. Policies named and errors are listed in file order.
pub(crate) fn decision(scopes: &Scopes, fixed: &Outcome, live: &Outcome) -> Decision {
    let name = |i: &usize| scopes.get(*i).map(|p| p.name.clone());
    if fixed.refused || live.refused {
        return Decision {
            allowed: false,
            deciding: Vec::new(),
            errors: Vec::new(),
        };
    }
    let mut errors: Vec<&(usize, String)> = fixed.errors.iter().chain(&live.errors).collect();
    errors.sort_by_key(|(i, _)| *i);
    let errors = errors
        .into_iter()
        .filter_map(|(i, why)| Some(format!("{}: {why}", name(i)?)))
        .collect();
    let mut satisfied: Vec<usize> = fixed
        .satisfied
        .iter()
        .chain(&live.satisfied)
        .copied()
        .collect();
    satisfied.sort_unstable();
    let forbid = |i: &usize| scopes.get(*i).is_some_and(|p| p.forbid);
    let denied = satisfied.iter().any(forbid);
    let deciding = satisfied
        .iter()
        .filter(|i| forbid(i) == denied)
        .filter_map(name)
        .collect::<Vec<_>>();
    Decision {
        allowed: !denied && !deciding.is_empty(),
        deciding,
        errors,
    }
}

/// Whether a list shows the target, from its outcome with no arguments.
pub(crate) fn shown(scopes: &Scopes, fixed: &Outcome, live: &Outcome) -> bool {
    let d = decision(scopes, fixed, live);
    if d.allowed {
        return true;
    }
    if !d.deciding.is_empty() {
        return false;
    }
    fixed
        .errors
        .iter()
        .chain(&live.errors)
        .any(|(i, _)| scopes.get(*i).is_some_and(|p| !p.forbid))
}
