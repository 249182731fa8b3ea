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

/// The most attributes a step's hook gives (more are left out): every
/// hook gives one or two.
pub(crate) const MAX_HOOK_ATTRS: usize = 4;

/// The most attributes a step's span has: the upstream call's three, the
/// hook's, `mcpgate.outcome`.
pub(crate) const MAX_PHASE_ATTRS: usize = 3 + MAX_HOOK_ATTRS + 1;

/// A finished step, waiting for the request's end to be exported.
#[derive(Debug)]
pub(crate) struct Phase {
    pub(crate) name: StepName,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// The attributes its hook gave (the upstream call's come from the
    /// request's note when it ends: the same upstream, method and tool).
    pub(crate) attrs: HookAttrs,
    pub(crate) failed: bool,
}

impl Phase {
    /// The upstream call, timed by the note itself.
    pub(crate) fn upstream_call(start: SystemTime, failed: bool) -> Phase {
        Phase {
            name: StepName::UpstreamCall,
            start,
            end: SystemTime::now(),
            attrs: HookAttrs::default(),
            failed,
        }
    }

    /// The span's attributes, written into `room`: for the upstream call
    /// `call_attrs` (at most three), then the hook's, then `mcpgate.outcome`.
    pub(crate) fn attributes<'a, 'r>(
        &'a self,
        call_attrs: &[Attr<'a>],
        room: &'r mut [Attr<'a>; MAX_PHASE_ATTRS],
    ) -> &'r [Attr<'a>] {
        let call = if self.name == StepName::UpstreamCall {
            call_attrs
        } else {
            &[]
        };
        let hook = self.attrs.iter().map(|(k, v)| Attr::str(k, v));
        let outcome = Attr::str("mcpgate.outcome", if self.failed { "failed" } else { "ok" });
        let mut n = 0;
        for (slot, a) in room
            .iter_mut()
            .zip(call.iter().copied().take(3).chain(hook).chain([outcome]))
        {
            *slot = a;
            n += 1;
        }
        &room[..n]
    }
}

/// A hook's attributes (at most [`MAX_HOOK_ATTRS`]), cleaned, their values
/// one after another in one string: one allocation per step instead of a
/// `Vec` and a `String` per value.
#[derive(Debug, Default)]
pub(crate) struct HookAttrs {
    keys: [&'static str; MAX_HOOK_ATTRS],
    /// Where each value ends in `text`.
    ends: [usize; MAX_HOOK_ATTRS],
    len: usize,
    text: String,
}

impl HookAttrs {
    /// The first [`MAX_HOOK_ATTRS`] of `attrs`, cleaned.
    pub(crate) fn new(attrs: &[(&'static str, &str)]) -> HookAttrs {
        let attrs = attrs.get(..MAX_HOOK_ATTRS).unwrap_or(attrs);
        let mut h = HookAttrs {
            text: String::with_capacity(attrs.iter().map(|(_, v)| v.len()).sum()),
            ..HookAttrs::default()
        };
        for ((k, v), (key, end)) in attrs.iter().zip(h.keys.iter_mut().zip(&mut h.ends)) {
            h.text.push_str(&crate::clean::clean_cow(v));
            *key = k;
            *end = h.text.len();
        }
        h.len = attrs.len();
        h
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.keys
            .iter()
            .zip(starts.zip(self.ends.iter().copied()))
            .take(self.len)
            .map(|(k, (start, end))| (*k, self.text.get(start..end).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests;
