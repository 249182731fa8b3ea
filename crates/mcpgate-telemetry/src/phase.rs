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

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanKind, Status};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

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

/// Exports the request's steps as children of `parent` (the request span's
/// context). They are finished records already: each becomes the SDK's span
/// record directly, without a span started and ended through the tracer. A
/// child is sampled as its parent is (what the SDK's samplers decide for a
/// local parent).
pub(crate) fn export(parent: &SpanContext, phases: Vec<Phase>) {
    if !parent.is_valid() || !parent.is_sampled() {
        return;
    }
    for p in phases {
        crate::pipeline::export_span(SpanData {
            span_context: SpanContext::new(
                parent.trace_id(),
                crate::pipeline::new_span_id(),
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            parent_span_id: parent.span_id(),
            parent_span_is_remote: false,
            span_kind: p.name.kind(),
            name: Cow::Borrowed(p.name.span_name()),
            start_time: p.start,
            end_time: p.end,
            attributes: p.attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if p.failed {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: crate::pipeline::scope().clone(),
        });
    }
}

#[cfg(test)]
mod tests;
