//! The steps of one request that get a child span under its span:
//! authentication, policy, the upstream call, a credential renewal.
//!
//! A hook times a step with [`crate::step`] and ends it with
//! [`crate::Step::end`] (or by dropping it). The step is kept in the request's note, and the layer turns
//! each into an OpenTelemetry span with its real start and end once the
//! request's own span has its final parent (a `params._meta.traceparent` is
//! read only after authentication, and a span's parent is fixed when its first
//! child starts). While traces are off, or outside the layer, a step is a
//! no-op: no clock is read.

use std::time::SystemTime;

use crate::otlp::proto::{Attr, Kind};

/// Which step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepName {
    /// The guard checking the caller's credential.
    Authentication,
    /// The gateway's scope and tool rules.
    Policy,
    /// From sending the request upstream to its first answer.
    UpstreamCall,
    /// Obtaining or refreshing an upstream credential.
    CredentialRenewal,
}

impl StepName {
    /// The span's name, as the one piece the encoder writes.
    pub(crate) fn name_pieces(self) -> &'static [&'static str] {
        match self {
            StepName::Authentication => &["authenticate"],
            StepName::Policy => &["authorize"],
            StepName::UpstreamCall => &["upstream call"],
            StepName::CredentialRenewal => &["credential renewal"],
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            StepName::UpstreamCall | StepName::CredentialRenewal => Kind::Client,
            _ => Kind::Internal,
        }
    }
}

/// A finished step, waiting for the request's end to be exported.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) name: StepName,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// The attributes its hook gave (the upstream call's come from the
    /// request's note when it ends: the same upstream, method and tool).
    pub(crate) attrs: Vec<(&'static str, String)>,
    pub(crate) failed: bool,
}

impl Phase {
    /// The upstream call, timed by the note itself.
    pub(crate) fn upstream_call(start: SystemTime, failed: bool) -> Phase {
        Phase {
            name: StepName::UpstreamCall,
            start,
            end: SystemTime::now(),
            attrs: Vec::new(),
            failed,
        }
    }

    /// Appends the span's attributes to `out`: the hook's (for the upstream
    /// call, `call_attrs`), then `mcpgate.outcome`.
    pub(crate) fn attributes<'a>(&'a self, call_attrs: &[Attr<'a>], out: &mut Vec<Attr<'a>>) {
        if self.name == StepName::UpstreamCall {
            out.extend_from_slice(call_attrs);
        }
        out.extend(self.attrs.iter().map(|(k, v)| Attr::str(k, v)));
        out.push(Attr::str(
            "mcpgate.outcome",
            if self.failed { "failed" } else { "ok" },
        ));
    }
}

#[cfg(test)]
mod tests;
