//! The running gateway's state, shared by the router and every front handler.
//! It sits below both: `gateway.rs` builds it and routes to the fronts, the
//! fronts read it, and neither imports the other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Guard;
use crate::config::Limits;
use crate::front::mrtr::ParkedTable;
use crate::origin::OriginPolicy;
use crate::session::SessionTable;
use crate::stopping::Stopping;
use crate::upstream::Upstream;

/// A condition `/readyz` checks on every request, outside what the gateway
/// itself knows: each returned line is a reason it is not ready, naming what
/// to fix. Must be quick (it runs on the request path of `/readyz`).
pub trait ReadinessCheck: std::fmt::Debug + Send + Sync {
    /// Why the gateway is not ready now; empty when it is.
    fn problems(&self) -> Vec<String>;
}

/// The running gateway's state; cheap to clone. One configuration's snapshot:
/// a reload builds the next one ([`Gateway::reconfigured`]), which shares the
/// sessions, and the binary swaps the router it serves.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Shared with the snapshots a reload makes (`reload.rs`): a session
    /// outlives the configuration it was opened under.
    pub(crate) sessions: Arc<SessionTable>,
    pub(crate) limits: Limits,
    pub(crate) timeouts: BTreeMap<String, Duration>,
    pub(crate) origins: OriginPolicy,
    pub(crate) guard: Arc<Guard>,
    /// `[[rate_limit]]`: checked after the guard, per message.
    pub(crate) rate_limits: Arc<crate::limits::RateLimits>,
    /// 2026-07-28 calls waiting for the client's `input_required` retry.
    pub(crate) parked: Arc<ParkedTable>,
    /// Answers requests still in flight at the end of the shutdown grace.
    pub(crate) stopping: Arc<Stopping>,
    pub(crate) readiness_checks: Vec<Arc<dyn ReadinessCheck>>,
    pub(crate) session_keys: Arc<crate::session_key::SessionKeys>,
    /// Where other replicas reach this one's internal listener; sealed into
    /// the ids of the sessions only this process can serve.
    pub(crate) internal_advertise: Option<String>,
    /// Connections to the other replicas' internal listeners.
    pub(crate) forwarder: crate::forward::pool::Forwarder,
    /// Forwarding passes already taken (shared across reloads).
    pub(crate) used_passes: Arc<crate::forward::pass::Used>,
    /// `[[virtual_server]]`s by name.
    pub(crate) virtuals: BTreeMap<String, Arc<crate::virtual_server::naming::VirtualServer>>,
    /// Sessions with virtual servers (shared across reloads like `sessions`).
    pub(crate) virtual_sessions: Arc<crate::virtual_server::session::VirtualSessions>,
}

impl Gateway {
    pub(crate) fn upstream(&self, name: &str) -> Option<(Arc<str>, Arc<Upstream>)> {
        // The upstream's own shared name, not a new `Arc<str>` per request.
        self.shared
            .upstreams
            .get(name)
            .map(|v| (v.name().clone(), v.clone()))
    }

    pub(crate) fn only_upstream(&self) -> Option<String> {
        self.shared.upstreams.keys().next().cloned()
    }

    pub(crate) fn timeout_for_any(&self) -> Duration {
        self.shared.limits.request_timeout
    }

    pub(crate) fn timeout_for(&self, name: &str) -> Duration {
        self.shared
            .timeouts
            .get(name)
            .copied()
            .unwrap_or(self.shared.limits.request_timeout)
    }
}
