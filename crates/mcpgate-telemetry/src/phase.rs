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

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};

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
    pub(crate) fn span_name(self) -> &'static str {
        match self {
            StepName::Authentication => "authenticate",
            StepName::Policy => "authorize",
            StepName::UpstreamCall => "upstream call",
            StepName::CredentialRenewal => "credential renewal",
        }
    }

    fn kind(self) -> SpanKind {
        match self {
            StepName::UpstreamCall | StepName::CredentialRenewal => SpanKind::Client,
            _ => SpanKind::Internal,
        }
    }
}

/// A finished step, waiting for the layer to export it.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) name: StepName,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attrs: Vec<KeyValue>,
    pub(crate) failed: bool,
}

impl Phase {
    /// A step timed by the note itself (the upstream call).
    pub(crate) fn new(
        name: StepName,
        start: SystemTime,
        attrs: Vec<KeyValue>,
        failed: bool,
    ) -> Phase {
        Phase {
            name,
            start,
            end: SystemTime::now(),
            attrs,
            failed,
        }
    }
}

/// Exports the request's steps as children of `parent` (the request's span).
pub(crate) fn export(parent: &opentelemetry::Context, phases: Vec<Phase>) {
    let Some(tracer) = crate::trace::tracer() else {
        return;
    };
    if !parent.span().span_context().is_valid() {
        return;
    }
    for p in phases {
        let mut span = tracer
            .span_builder(p.name.span_name())
            .with_kind(p.name.kind())
            .with_start_time(p.start)
            .with_attributes(p.attrs)
            .start_with_context(tracer, parent);
        if p.failed {
            span.set_status(Status::error(""));
        }
        span.end_with_timestamp(p.end);
    }
}

#[cfg(test)]
mod tests;
