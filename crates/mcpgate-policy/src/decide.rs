//! One decision: the Cedar request of a call, the answer, and the names of
//! the policies that gave it.

use crate::call::Call;
use crate::entities::{context, entities};
use crate::load::Rules;
use cedar_policy::{Authorizer, Context, Decision as CedarDecision, Effect, PolicyId, Request};

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
        let (decision, reasons, errors) = self.evaluate(call, context(args));
        Decision {
            allowed: decision == CedarDecision::Allow,
            deciding: reasons.iter().map(|id| self.name(id)).collect(),
            errors: errors
                .into_iter()
                .map(|(id, why)| format!("{}: {why}", self.name(&id)))
                .collect(),
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
                (e.policy_id().clone(), e.inner().to_string())
            })
            .collect();
        (response.decision(), reasons, errors)
    }
}
