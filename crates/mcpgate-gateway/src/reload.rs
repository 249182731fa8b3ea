//! Reloading the configuration while serving. A reload builds the next
//! snapshot of the gateway ([`Gateway::reconfigured`]) beside the running one:
//! it shares the session table, keeps every upstream whose connection did not
//! change (its children, its sessions, its open streams), and builds the rest.
//! The binary then swaps the router it serves and retires what the new
//! snapshot no longer has ([`Gateway::retire`]): sessions of removed and
//! changed upstreams end (their clients get 404 and initialize again), then
//! those upstreams' children stop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::GatewayError;
use crate::gateway::GatewayConfig;
use crate::session::Session;
use crate::state::Gateway;
use crate::upstream::Upstream;

/// What a reload does to the upstreams, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamChanges {
    /// New names.
    pub added: Vec<String>,
    /// Names no longer configured: their sessions end.
    pub removed: Vec<String>,
    /// Names whose connection changed (command, URL, credentials, …): a new
    /// upstream replaces the running one, and its sessions end.
    pub changed: Vec<String>,
}

impl UpstreamChanges {
    /// Nothing added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Sessions and upstreams a reload took out of service, to be ended by
/// [`Retired::end`] once the new snapshot serves.
#[derive(Debug, Default)]
#[must_use = "retired sessions and upstreams keep running until `end` is called"]
pub struct Retired {
    sessions: Vec<Arc<Session>>,
    upstreams: Vec<Arc<Upstream>>,
}

impl Gateway {
    /// The next snapshot, built from `cfg`, sharing this one's sessions. The
    /// upstreams named in `unchanged` that run now are kept as they are;
    /// every other one is built anew. Fails like [`Gateway::new`], leaving
    /// this snapshot untouched.
    pub fn reconfigured(
        &self,
        cfg: GatewayConfig,
        unchanged: &BTreeSet<String>,
    ) -> Result<(Gateway, UpstreamChanges), GatewayError> {
        let next = Gateway::build(cfg, Some((&self.shared, unchanged)))?;
        let before = &self.shared.upstreams;
        let after = &next.shared.upstreams;
        let changes = UpstreamChanges {
            added: after
                .keys()
                .filter(|n| !before.contains_key(*n))
                .cloned()
                .collect(),
            removed: before
                .keys()
                .filter(|n| !after.contains_key(*n))
                .cloned()
                .collect(),
            changed: after
                .iter()
                .filter(|(n, u)| before.get(*n).is_some_and(|old| !Arc::ptr_eq(old, u)))
                .map(|(n, _)| n.clone())
                .collect(),
        };
        Ok((next, changes))
    }

    /// Takes out of the session table every session of an upstream that
    /// `next` does not keep, so that from now on their ids answer 404. Call
    /// it just before serving `next`, then [`Retired::end`].
    pub fn retire(&self, next: &Gateway) -> Retired {
        let gone: Vec<(&String, &Arc<Upstream>)> = self
            .shared
            .upstreams
            .iter()
            .filter(|(n, u)| {
                next.shared
                    .upstreams
                    .get(*n)
                    .is_none_or(|kept| !Arc::ptr_eq(kept, u))
            })
            .collect();
        let names: BTreeSet<&str> = gone.iter().map(|(n, _)| n.as_str()).collect();
        Retired {
            sessions: self
                .shared
                .sessions
                .take_where(|s| names.contains(&*s.upstream_name)),
            upstreams: gone.into_iter().map(|(_, u)| u.clone()).collect(),
        }
    }
}

impl Retired {
    /// How many sessions end.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Ends the retired sessions (their streams close, per-session children
    /// stop), then stops the retired upstreams' shared children (SIGTERM,
    /// then SIGKILL after `grace`).
    pub async fn end(self, grace: Duration) {
        futures_util::future::join_all(self.sessions.iter().map(|s| s.close())).await;
        futures_util::future::join_all(self.upstreams.iter().map(|u| u.shutdown(grace))).await;
    }
}

#[cfg(test)]
mod tests;
