//! A client's session with a virtual server: one session per member, opened
//! the first time a request needs that member, and the maps that route
//! answers back (which member a shown name came from, which member asked
//! the client a question under which id, which member a request went to).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mcpgate_types::{SessionId, Subject};
use serde_json::value::RawValue;

use super::naming::VirtualServer;
use crate::events::EventLog;
use crate::jsonrpc::{self, Kind, Message};
use crate::session::IdHasher;
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
    /// Shared: a 2026-07-28 call parked for the client's retry holds it too.
    pub(crate) link: Arc<Link>,
    /// The capabilities the member declared at initialize.
    pub(crate) capabilities: serde_json::Value,
    /// Relays the member's messages outside requests to the client's GET stream.
    pub(crate) pump: tokio::task::JoinHandle<()>,
}

/// Where a member session is kept: empty until a request needs the member,
/// and emptied again when it is found dead, so the next request opens a new
/// one instead of failing for the rest of the virtual session.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    value: Mutex<Option<Arc<Opened>>>,
    /// Held while a member session opens: one open per member at a time.
    pub(crate) opening: tokio::sync::Mutex<()>,
}

impl Slot {
    /// The member session, if one is open.
    pub(crate) fn get(&self) -> Option<Arc<Opened>> {
        lock(&self.value).clone()
    }

    /// The member session, unless it is gone; a gone one is taken out (and returned second).
    pub(crate) fn live(&self) -> (Option<Arc<Opened>>, Option<Arc<Opened>>) {
        let mut v = lock(&self.value);
        match v.as_ref() {
            Some(o) if o.link.gone().is_some() => (None, v.take()),
            Some(o) => (Some(o.clone()), None),
            None => (None, None),
        }
    }

    pub(crate) fn set(&self, o: Arc<Opened>) {
        *lock(&self.value) = Some(o);
    }
}

/// The front a virtual session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    /// Streamable HTTP with sessions: answers on each POST, the GET stream for the rest.
    Sessions,
    /// Legacy HTTP+SSE: every answer and message on the one stream.
    Legacy,
    /// 2026-07-28 clients of one subject: no session of theirs; the member
    /// sessions are the gateway's own per-subject ones, shared with the
    /// members' own endpoints.
    Stateless,
}

/// One client session with a virtual server.
#[derive(Debug)]
pub(crate) struct VirtualSession {
    pub(crate) id: SessionId,
    pub(crate) server: Arc<VirtualServer>,
    pub(crate) subject: Subject,
    pub(crate) front: Front,
    /// The client's `initialize` params, sent to each member as it is opened
    /// (a legacy client sends them after its session opened).
    init_params: Mutex<Option<Box<RawValue>>>,
    /// The GET stream (the legacy front's only stream): what members say
    /// outside any request. Tapped for stateless clients' `subscriptions/listen`.
    pub(crate) server_stream: Arc<EventLog>,
    members: Vec<Slot>,
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

/// Ids of the gateway's own requests to members: unique in the process,
/// since a stateless member session is shared by every virtual server (and
/// the member's own endpoint) a subject uses.
static OWN_IDS: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VirtualSession {
    /// A session under `id`: sealed for a session client (`owner.rs`), any
    /// other's random (its stream ties it to this process).
    pub(crate) fn new(
        id: SessionId,
        replay_events: usize,
        server: Arc<VirtualServer>,
        subject: Subject,
        init_params: Option<Box<RawValue>>,
        front: Front,
    ) -> Arc<Self> {
        let members = server.members.iter().map(|_| Slot::default()).collect();
        let server_stream = match front {
            Front::Sessions => EventLog::new(0, replay_events, None),
            Front::Legacy => EventLog::new(0, replay_events, Some("message")),
            Front::Stateless => EventLog::tapped(0, replay_events),
        };
        Arc::new(VirtualSession {
            id,
            server,
            subject,
            front,
            init_params: Mutex::new(init_params),
            server_stream,
            members,
            names: Mutex::default(),
            templates: Mutex::default(),
            asked: Mutex::default(),
            in_flight: Mutex::default(),
            next: AtomicU64::new(1),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// The client's `initialize` params, for a member about to be opened.
    pub(crate) fn init_params(&self) -> Option<Box<RawValue>> {
        lock(&self.init_params).clone()
    }

    pub(crate) fn set_init_params(&self, params: Option<Box<RawValue>>) {
        *lock(&self.init_params) = params;
    }

    pub(crate) fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    pub(crate) fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }

    /// A client's stream keeps the session however idle: a legacy client's
    /// one stream (the session ends with it), a stateless client's
    /// `subscriptions/listen`.
    fn held_open(&self) -> bool {
        match self.front {
            Front::Sessions => false,
            Front::Legacy => true,
            Front::Stateless => self.server_stream.listeners() > 0,
        }
    }

    /// A fresh SSE log for one POST's answer.
    pub(crate) fn new_stream(&self, capacity: usize) -> Arc<EventLog> {
        EventLog::new(self.next.fetch_add(1, Ordering::Relaxed), capacity, None)
    }

    /// An id for a request the gateway sends a member on the client's behalf
    /// (list pages), unique in this process.
    pub(crate) fn own_id(&self) -> Box<RawValue> {
        let n = OWN_IDS.fetch_add(1, Ordering::Relaxed);
        jsonrpc::raw(&format!("mcpgate-virtual-{n}"))
    }

    /// The slot of member `idx`, filled by the first request that needs it (`open.rs`).
    pub(crate) fn slot(&self, idx: usize) -> Option<&Slot> {
        self.members.get(idx)
    }

    /// The members opened so far.
    pub(crate) fn opened(&self) -> Vec<(usize, Arc<Opened>)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.get().map(|o| (i, o)))
            .collect()
    }

    /// A member's message on its way to the client: a request of the
    /// member's gets an id of ours (members' ids may collide), and a
    /// `list_changed` forgets the names of that list.
    pub(crate) fn relayed_from(&self, idx: usize, mut m: Message) -> Message {
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

    /// Ends every member session (a stateless one's member sessions are the
    /// gateway's per-subject ones: only the relays end).
    pub(crate) async fn close(&self) {
        self.server_stream.close();
        for (_, o) in self.opened() {
            o.pump.abort();
            if self.front != Front::Stateless {
                o.link.close().await;
            }
        }
    }
}

/// Who shares a stateless clients' virtual session: the virtual server's name and the subject.
type SharedBy = (Arc<str>, Subject);

/// The virtual sessions this process holds (their member sessions, which may
/// be stdio children, live here; other replicas forward a session client's
/// requests here: `owner.rs`).
#[derive(Debug, Default)]
pub(crate) struct VirtualSessions {
    map: Mutex<HashMap<SessionId, Arc<VirtualSession>, IdHasher>>,
    /// The stateless clients' sessions, one per virtual server and subject.
    stateless: Mutex<HashMap<SharedBy, Arc<VirtualSession>>>,
}

impl VirtualSessions {
    /// Keeps `s`, unless its subject (signed in) already has `cap` virtual
    /// sessions (`server.max_sessions_per_subject`; 0: no limit, as for
    /// anonymous callers): then why not.
    pub(crate) fn insert_within(&self, s: Arc<VirtualSession>, cap: usize) -> Result<(), String> {
        let mut map = lock(&self.map);
        let subject = s.subject.as_str();
        if cap > 0 {
            let open = map.values().filter(|o| o.subject == s.subject).count();
            if open >= cap {
                return Err(format!(
                    "{subject} already has {cap} open virtual sessions (server.max_sessions_per_subject = {cap}); end one with DELETE, or wait for idle ones to expire (server.session_idle_timeout)"
                ));
            }
        }
        map.insert(s.id.clone(), s);
        Ok(())
    }

    /// The session stateless (2026-07-28) clients of `subject` share at `server`.
    pub(crate) fn stateless_for(
        &self,
        server: &Arc<VirtualServer>,
        subject: &Subject,
        replay_events: usize,
    ) -> Arc<VirtualSession> {
        let mut map = lock(&self.stateless);
        let s = map
            .entry((server.name.clone(), subject.clone()))
            .or_insert_with(|| {
                VirtualSession::new(
                    crate::session_key::random_session_id(),
                    replay_events,
                    server.clone(),
                    subject.clone(),
                    None,
                    Front::Stateless,
                )
            })
            .clone();
        s.touch();
        s
    }

    /// By the id as the client sent it: not parsed first, since an id that
    /// is not a valid one is simply not found.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<VirtualSession>> {
        lock(&self.map).get(id).cloned()
    }

    pub(crate) fn remove(&self, id: &SessionId) -> Option<Arc<VirtualSession>> {
        lock(&self.map).remove(id)
    }

    /// Takes out the sessions idle for `max` or longer.
    pub(crate) fn take_stale(&self, max: Duration) -> Vec<Arc<VirtualSession>> {
        let mut out = take_idle(&mut lock(&self.map), max);
        out.extend(take_idle(&mut lock(&self.stateless), max));
        out
    }

    /// Takes out every session (shutdown).
    pub(crate) fn drain(&self) -> Vec<Arc<VirtualSession>> {
        let mut out: Vec<_> = lock(&self.map).drain().map(|(_, s)| s).collect();
        out.extend(lock(&self.stateless).drain().map(|(_, s)| s));
        out
    }

    /// Client sessions (the stateless clients' shared ones are none).
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

fn take_idle<K: Clone + Eq + std::hash::Hash, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, Arc<VirtualSession>, S>,
    max: Duration,
) -> Vec<Arc<VirtualSession>> {
    let stale: Vec<K> = map
        .iter()
        .filter(|(_, s)| s.idle_for() >= max && !s.held_open())
        .map(|(k, _)| k.clone())
        .collect();
    stale.iter().filter_map(|k| map.remove(k)).collect()
}
