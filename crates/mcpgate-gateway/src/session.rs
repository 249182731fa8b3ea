//! Client sessions (protocol eras up to 2025-11-25): the id the client holds,
//! the link to the upstream, and the SSE logs that make its streams resumable.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcpgate_types::{SessionId, Subject};

use crate::events::EventLog;
use crate::subject_slots::{Slot, SubjectSlots};
use crate::upstream::{Link, UpstreamError};

/// POST streams remembered per session for `Last-Event-ID` resumption.
const REMEMBERED_STREAMS: usize = 32;

/// One client session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client-facing `Mcp-Session-Id` (sealed: `front::adopt`), or the
    /// legacy era's `?session_id=`.
    pub(crate) id: SessionId,
    /// What names it in announcements to other replicas ([`digest`]).
    pub(crate) digest: String,
    /// Continued here after another replica opened it: it was counted
    /// against its subject's cap there.
    adopted: AtomicBool,
    pub(crate) upstream_name: Arc<str>,
    /// Who opened it: anyone else presenting its id gets 404.
    pub(crate) subject: Subject,
    pub(crate) link: Link,
    /// The negotiated protocol version (2024-11-05 until a legacy SSE client initializes).
    pub(crate) protocol_version: Mutex<String>,
    /// The GET stream (id 0), or the one stream of a legacy SSE client.
    pub(crate) server_stream: Arc<EventLog>,
    streams: Mutex<VecDeque<Arc<EventLog>>>,
    next_stream: AtomicU64,
    /// The GET connection currently allowed to read the server stream.
    active_get: AtomicU64,
    /// Open GET connections: a session someone listens on is not idle.
    pub(crate) listeners: std::sync::atomic::AtomicUsize,
    last_active: Mutex<Instant>,
    closed: AtomicBool,
    replay: usize,
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        upstream_name: Arc<str>,
        subject: Subject,
        link: Link,
        server_stream: Arc<EventLog>,
        protocol_version: String,
        replay: usize,
    ) -> Arc<Self> {
        Arc::new(Session {
            digest: digest(&id),
            adopted: AtomicBool::new(false),
            id,
            upstream_name,
            subject,
            link,
            protocol_version: Mutex::new(protocol_version),
            server_stream,
            streams: Mutex::new(VecDeque::new()),
            next_stream: AtomicU64::new(1),
            active_get: AtomicU64::new(0),
            listeners: std::sync::atomic::AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            replay,
        })
    }

    /// Marks a session another replica opened (`front::adopt`).
    pub(crate) fn mark_adopted(&self) {
        self.adopted.store(true, Ordering::SeqCst);
    }

    pub(crate) fn protocol_version(&self) -> String {
        self.protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_protocol_version(&self, v: &str) {
        *self
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = v.to_owned();
        self.link.set_protocol_version(v);
    }

    /// Whether SSE streams should open with the priming event (2025-11-25 and later only:
    /// older clients choke on an event with empty data).
    pub(crate) fn wants_priming(&self) -> bool {
        self.protocol_version().as_str() >= "2025-11-25"
    }

    /// A new POST stream log, remembered for resumption.
    pub(crate) fn new_stream(&self) -> Arc<EventLog> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let log = EventLog::new(id, self.replay, None);
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.push_back(log.clone());
        while streams.len() > REMEMBERED_STREAMS {
            streams.pop_front();
        }
        log
    }

    pub(crate) fn find_stream(&self, id: u64) -> Option<Arc<EventLog>> {
        if id == 0 {
            return Some(self.server_stream.clone());
        }
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.iter().find(|s| s.stream_id() == id).cloned()
    }

    /// Claims the server stream for a new GET; an older GET stops reading.
    pub(crate) fn claim_get(&self) -> u64 {
        self.active_get.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn get_is_current(&self, generation: u64) -> bool {
        self.active_get.load(Ordering::SeqCst) == generation
    }

    pub(crate) fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    pub(crate) fn idle_for(&self) -> Duration {
        self.last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Ends the session: streams finish, the upstream session or child is closed.
    pub(crate) async fn close(&self) {
        if self.end_streams() {
            self.link.close().await;
        }
    }

    /// Forgets the session here (idle expiry): streams finish, and a session
    /// any replica can serve is left open upstream (only DELETE ends it).
    pub(crate) async fn release(&self) {
        if self.end_streams() {
            self.link.release().await;
        }
    }

    /// Marks the session closed and finishes its streams; false if it already was.
    fn end_streams(&self) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.server_stream.close();
        for s in self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            s.close();
        }
        true
    }
}

/// A session left the table: `mcpgate_sessions_active` goes down.
fn closed(s: &Arc<Session>) {
    mcpgate_telemetry::metrics().session_closed(&s.upstream_name);
}

/// The name of session `id` in announcements: a SHA-256 of the id, hex. The
/// id itself bears the session (whoever holds it, with the subject's
/// credentials, continues it), so it never leaves the gateway but to its client.
pub(crate) fn digest(id: &SessionId) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tells the other replicas a session ended (the digest of its id).
pub(crate) struct Announcer(Box<dyn Fn(String) + Send + Sync>);

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Announcer")
    }
}

/// A session in the table, found by its id: the key is the session's own id
/// rather than a copy of it (a sealed id is about 180 bytes, once per session).
#[derive(Debug)]
struct ById(Arc<Session>);

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes: lookups by `&str` must land on the same bucket.
        self.0.id.as_str().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id.as_str()
    }
}

/// Hashes the ids of the session tables: foldhash, since SipHash over a
/// sealed id of ~150 bytes was a tenth of a routed call's own cost; the seed
/// is random, so ids that collide cannot be chosen.
#[derive(Clone, Debug)]
pub(crate) struct IdHasher(foldhash::quality::FixedState);

impl Default for IdHasher {
    fn default() -> Self {
        // std's `RandomState` draws its keys from the OS: a hash under them is a random seed.
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        IdHasher(foldhash::quality::FixedState::with_seed(seed))
    }
}

impl std::hash::BuildHasher for IdHasher {
    type Hasher = foldhash::quality::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// Every live session, by id.
#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    map: Mutex<HashSet<ById, IdHasher>>,
    /// Set once on PostgreSQL (several replicas); kept across reloads with the table.
    announcer: OnceLock<Announcer>,
    /// Sessions being opened (initialize in flight), per subject: they count
    /// against `server.max_sessions_per_subject` before they exist.
    opening: SubjectSlots,
}

/// A place for one session of a subject, held while it opens.
pub(crate) type Reservation = Slot;

impl SessionTable {
    /// Holds a place for a new session of `subject` (signed-in callers only;
    /// `None` for anonymous ones), or refuses when the subject already has `cap`
    /// sessions open or opening. `cap` 0 means no limit.
    ///
    /// Only initialize reserves, and only sessions opened here count: every
    /// session passes through one initialize, on one replica, so that is
    /// where the cap holds. A session adopted from another replica is not
    /// counted again, or a subject's sessions would count once per replica
    /// that served them, and a DELETE (itself an adoption when it lands on a
    /// replica that never saw the session) could be refused.
    pub(crate) fn reserve(
        &self,
        subject: Option<&str>,
        cap: usize,
    ) -> Result<Option<Reservation>, UpstreamError> {
        let Some(subject) = subject.filter(|_| cap > 0) else {
            return Ok(None);
        };
        let open = self
            .lock()
            .iter()
            .map(|s| &s.0)
            .filter(|s| s.subject == subject && !s.is_closed() && !s.adopted.load(Ordering::SeqCst))
            .count();
        if let Some(slot) = self.opening.take(subject, cap.saturating_sub(open)) {
            return Ok(Some(slot));
        }
        tracing::warn!(%subject, cap, "refused a session: the subject is at server.max_sessions_per_subject");
        Err(UpstreamError::SubjectLimit(format!(
            "{subject} already has {cap} open sessions (server.max_sessions_per_subject = {cap}); end one with DELETE, or wait for idle ones to expire (server.session_idle_timeout)"
        )))
    }

    pub(crate) fn insert(&self, s: Arc<Session>) {
        mcpgate_telemetry::metrics().session_opened(&s.upstream_name);
        if let Some(old) = self.lock().replace(ById(s)) {
            closed(&old.0);
        }
    }

    /// Inserts `s` unless a session with its id is already there (two
    /// requests adopting the same session at once); returns the one in the table.
    pub(crate) fn insert_or_get(&self, s: Arc<Session>) -> Arc<Session> {
        let mut map = self.lock();
        if let Some(there) = map.get(s.id.as_str()) {
            return there.0.clone();
        }
        mcpgate_telemetry::metrics().session_opened(&s.upstream_name);
        map.insert(ById(s.clone()));
        s
    }

    /// A live session; one whose upstream died is removed and reported missing,
    /// so the client gets 404 and initializes again.
    /// Takes the id as text: the table's keys are checked ids, so text that is
    /// no id simply misses, and the hot path needs no `SessionId` (a new `String`)
    /// per request.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.lock().get(id).map(|s| s.0.clone())?;
        if s.is_closed() || s.link.gone().is_some() {
            self.remove(id);
            let s2 = s.clone();
            tokio::spawn(async move { s2.close().await });
            return None;
        }
        s.touch();
        Some(s)
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.lock().take(id).map(|s| s.0);
        s.inspect(closed)
    }

    /// Announces ended sessions with `f` from now on (once; later calls are ignored).
    pub(crate) fn set_announcer(&self, f: Box<dyn Fn(String) + Send + Sync>) {
        let _ = self.announcer.set(Announcer(f));
    }

    /// Tells the other replicas that `s`, ended by its client here, is ended.
    pub(crate) fn announce_end(&self, s: &Session) {
        if let Some(a) = self.announcer.get() {
            (a.0)(s.digest.clone());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn count_for(&self, upstream: &str) -> usize {
        self.lock()
            .iter()
            .filter(|s| &*s.0.upstream_name == upstream)
            .count()
    }

    /// Removes and returns sessions idle longer than `max` or whose upstream is gone.
    pub(crate) fn take_stale(&self, max: Duration) -> Vec<Arc<Session>> {
        self.take_where(|s| {
            let idle = s.idle_for() > max && s.listeners.load(Ordering::SeqCst) == 0;
            idle || s.is_closed() || s.link.gone().is_some()
        })
    }

    /// Removes and returns the sessions `which` picks (a reload's retired upstreams).
    pub(crate) fn take_where(&self, which: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        self.lock()
            .extract_if(|s| which(&s.0))
            .map(|s| s.0)
            .inspect(closed)
            .collect()
    }

    pub(crate) fn end_streams(&self) {
        for s in self.lock().iter() {
            s.0.server_stream.close();
        }
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Session>> {
        self.lock().drain().map(|s| s.0).inspect(closed).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ById, IdHasher>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
