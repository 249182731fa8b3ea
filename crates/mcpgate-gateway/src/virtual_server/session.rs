//! A client's session with a virtual server: one session per member, opened
//! the first time a request needs that member, and the maps that route
//! answers back (which member a shown name came from, which member asked
//! the client a question under which id, which member a request went to).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcpgate_guard::Authorized;
use mcpgate_types::{SessionId, Subject};
use serde_json::value::RawValue;

use super::naming::VirtualServer;
use crate::auth::Admitted;
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{self, Kind, Message};
use crate::state::Gateway;
use crate::upstream::Link;

/// What a shown name stands for: its kind and the name or URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Named {
    Tool(String),
    Prompt(String),
    Resource(String),
}

/// A member session, once opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) link: Link,
    /// The capabilities the member declared at initialize.
    pub(crate) capabilities: serde_json::Value,
    pump: tokio::task::JoinHandle<()>,
}

/// One client session with a virtual server.
#[derive(Debug)]
pub(crate) struct VirtualSession {
    pub(crate) id: SessionId,
    pub(crate) server: Arc<VirtualServer>,
    pub(crate) subject: Subject,
    /// The client's `initialize` params, sent to each member as it is opened.
    init_params: Option<Box<RawValue>>,
    /// The GET stream: what members say outside any request.
    pub(crate) server_stream: Arc<EventLog>,
    members: Vec<tokio::sync::OnceCell<Arc<Opened>>>,
    /// Shown name → member index, from the last merged lists.
    names: Mutex<HashMap<Named, usize>>,
    /// Resource-template URI prefixes (before the first `{`) → member index.
    templates: Mutex<Vec<(String, usize)>>,
    /// Id we gave a member's request to the client → (member, its own id).
    asked: Mutex<HashMap<String, (usize, Box<RawValue>)>>,
    /// A client request id in flight → the member it went to.
    in_flight: Mutex<HashMap<String, usize>>,
    next: AtomicU64,
    last_used: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VirtualSession {
    pub(crate) fn new(
        gw: &Gateway,
        server: Arc<VirtualServer>,
        subject: Subject,
        init_params: Option<Box<RawValue>>,
    ) -> Arc<Self> {
        let members = server
            .members
            .iter()
            .map(|_| tokio::sync::OnceCell::new())
            .collect();
        Arc::new(VirtualSession {
            id: crate::session_key::random_session_id(),
            server,
            subject,
            init_params,
            server_stream: EventLog::new(0, gw.shared.limits.replay_events, None),
            members,
            names: Mutex::default(),
            templates: Mutex::default(),
            asked: Mutex::default(),
            in_flight: Mutex::default(),
            next: AtomicU64::new(1),
            last_used: Mutex::new(Instant::now()),
        })
    }

    pub(crate) fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    pub(crate) fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }

    /// A fresh SSE log for one POST's answer.
    pub(crate) fn new_stream(&self, capacity: usize) -> Arc<EventLog> {
        EventLog::new(self.next.fetch_add(1, Ordering::Relaxed), capacity, None)
    }

    /// An id for a request the gateway sends a member on the client's behalf
    /// (list pages), unique in this session.
    pub(crate) fn own_id(&self) -> Box<RawValue> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        jsonrpc::raw(&format!("mcpgate-virtual-{n}"))
    }

    /// The member session `idx`, opened (initialize, `notifications/initialized`)
    /// if this is the first request that needs it.
    pub(crate) async fn member(
        self: &Arc<Self>,
        gw: &Gateway,
        idx: usize,
        caller: &Admitted,
        proof: &Authorized,
    ) -> Result<Arc<Opened>, GatewayError> {
        let cell = self
            .members
            .get(idx)
            .ok_or_else(|| GatewayError::UnknownUpstream(format!("member #{idx}")))?;
        cell.get_or_try_init(|| self.open(gw, idx, caller, proof))
            .await
            .cloned()
    }

    /// The members opened so far.
    pub(crate) fn opened(&self) -> Vec<(usize, Arc<Opened>)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.get().map(|o| (i, o.clone())))
            .collect()
    }

    async fn open(
        self: &Arc<Self>,
        gw: &Gateway,
        idx: usize,
        caller: &Admitted,
        proof: &Authorized,
    ) -> Result<Arc<Opened>, GatewayError> {
        let member = &self.server.members[idx];
        let identity = gw.shared.guard.identity(caller, &member.name);
        // Listening before the link opens: nothing the member says first is lost.
        let log = EventLog::tapped(0, gw.shared.limits.replay_events);
        let Some(mut rx) = log.listen() else {
            return Err(GatewayError::UpstreamUnavailable(
                "the member's stream cannot be listened to".into(),
            ));
        };
        let link = member
            .upstream
            .open(log.clone(), &identity)
            .await
            .map_err(|e| GatewayError::from(&e))?;
        let init = Message::request(self.own_id(), "initialize", self.init_params.clone());
        let (link, resp) = match crate::front::sessionful::initialize_link(
            &member.upstream,
            link,
            &log,
            init,
            member.timeout,
            &identity,
            proof,
        )
        .await
        {
            Ok(v) => v,
            Err((link, _)) => {
                link.close().await;
                let why = format!("member {} did not complete initialize", member.name);
                tracing::warn!(virtual_server = %self.server.name, member = %member.name, "{why}");
                return Err(GatewayError::UpstreamUnavailable(why));
            }
        };
        let Some(result) = resp.result.as_deref() else {
            link.close().await;
            let why = format!(
                "member {} refused initialize: {}",
                member.name,
                resp.error.as_deref().map_or("", RawValue::get)
            );
            tracing::warn!(virtual_server = %self.server.name, member = %member.name, "{why}");
            return Err(GatewayError::UpstreamUnavailable(why));
        };
        let parsed: serde_json::Value = serde_json::from_str(result.get()).unwrap_or_default();
        let version = jsonrpc::result_protocol_version(result)
            .unwrap_or_else(|| crate::protocol::DEFAULT_VERSION.to_owned());
        link.set_protocol_version(&version);
        link.send(
            proof,
            Message::notification("notifications/initialized", None),
        )
        .await
        .map_err(|e| GatewayError::from(&e))?;
        link.open_server_stream();
        let weak = Arc::downgrade(self);
        let pump = tokio::spawn(async move {
            loop {
                let m = match rx.recv().await {
                    Ok(m) => m,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            skipped = n,
                            "a virtual server fell behind a member's stream"
                        );
                        continue;
                    }
                    Err(_) => break,
                };
                let Some(s) = weak.upgrade() else { break };
                let m = s.from_member(idx, m);
                s.server_stream.push(&m);
            }
        });
        tracing::debug!(virtual_server = %self.server.name, member = %member.name, %version, "member session opened");
        Ok(Arc::new(Opened {
            link,
            capabilities: parsed.get("capabilities").cloned().unwrap_or_default(),
            pump,
        }))
    }

    /// A member's message on its way to the client: a request of the
    /// member's gets an id of ours (members' ids may collide), and a
    /// `list_changed` forgets the names of that list.
    pub(crate) fn from_member(&self, idx: usize, mut m: Message) -> Message {
        match m.kind() {
            Some(Kind::Request) => {
                if let Some(theirs) = m.id.take() {
                    let n = self.next.fetch_add(1, Ordering::Relaxed);
                    let ours = format!("{}-{n}", self.server.members[idx].name);
                    lock(&self.asked).insert(jsonrpc::raw(&ours).get().to_owned(), (idx, theirs));
                    m.id = Some(jsonrpc::raw(&ours));
                }
            }
            Some(Kind::Notification) => match m.method.as_deref() {
                Some("notifications/tools/list_changed") => {
                    self.forget(|n| matches!(n, Named::Tool(_)))
                }
                Some("notifications/prompts/list_changed") => {
                    self.forget(|n| matches!(n, Named::Prompt(_)))
                }
                Some("notifications/resources/list_changed") => {
                    self.forget(|n| matches!(n, Named::Resource(_)));
                    lock(&self.templates).clear();
                }
                _ => {}
            },
            _ => {}
        }
        m
    }

    fn forget(&self, which: impl Fn(&Named) -> bool) {
        lock(&self.names).retain(|n, _| !which(n));
    }

    /// The member (and its own id) a client's response answers.
    pub(crate) fn answered(&self, id: &RawValue) -> Option<(usize, Box<RawValue>)> {
        lock(&self.asked).remove(id.get())
    }

    /// The member a name was listed by, if a merged list named it.
    pub(crate) fn listed(&self, n: &Named) -> Option<usize> {
        lock(&self.names).get(n).copied()
    }

    /// The member whose resource template starts `uri` (the longest match).
    pub(crate) fn templated(&self, uri: &str) -> Option<usize> {
        lock(&self.templates)
            .iter()
            .filter(|(p, _)| !p.is_empty() && uri.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, i)| *i)
    }

    /// Replaces the names of one kind with those of a fresh merged list.
    pub(crate) fn remember(&self, kind: impl Fn(&Named) -> bool, fresh: Vec<(Named, usize)>) {
        let mut names = lock(&self.names);
        names.retain(|n, _| !kind(n));
        names.extend(fresh);
    }

    pub(crate) fn remember_templates(&self, fresh: Vec<(String, usize)>) {
        *lock(&self.templates) = fresh;
    }

    pub(crate) fn start(&self, id: &RawValue, idx: usize) {
        lock(&self.in_flight).insert(id.get().to_owned(), idx);
    }

    pub(crate) fn finish(&self, id: &RawValue) {
        lock(&self.in_flight).remove(id.get());
    }

    /// The member a client request in flight went to.
    pub(crate) fn in_flight(&self, id: &RawValue) -> Option<usize> {
        lock(&self.in_flight).get(id.get()).copied()
    }

    /// Ends every member session.
    pub(crate) async fn close(&self) {
        self.server_stream.close();
        for (_, o) in self.opened() {
            o.pump.abort();
            o.link.close().await;
        }
    }
}

/// The virtual sessions of this process (they are not sealed for other
/// replicas: a member session may be a stdio child here).
#[derive(Debug, Default)]
pub(crate) struct VirtualSessions {
    map: Mutex<HashMap<SessionId, Arc<VirtualSession>>>,
}

impl VirtualSessions {
    pub(crate) fn insert(&self, s: Arc<VirtualSession>) {
        lock(&self.map).insert(s.id.clone(), s);
    }

    pub(crate) fn get(&self, id: &SessionId) -> Option<Arc<VirtualSession>> {
        lock(&self.map).get(id).cloned()
    }

    pub(crate) fn remove(&self, id: &SessionId) -> Option<Arc<VirtualSession>> {
        lock(&self.map).remove(id)
    }

    /// Takes out the sessions idle for `max` or longer.
    pub(crate) fn take_stale(&self, max: Duration) -> Vec<Arc<VirtualSession>> {
        let mut map = lock(&self.map);
        let stale: Vec<SessionId> = map
            .iter()
            .filter(|(_, s)| s.idle_for() >= max)
            .map(|(k, _)| k.clone())
            .collect();
        stale.iter().filter_map(|k| map.remove(k)).collect()
    }

    /// Takes out every session (shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<VirtualSession>> {
        lock(&self.map).drain().map(|(_, s)| s).collect()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}
