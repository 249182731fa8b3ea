//! stdio upstreams: child processes speaking newline-delimited JSON-RPC.
//!
//! A child runs in its own process group so that shutting it down also ends
//! whatever it started (`npx` runs node, which may run more). Its stderr is
//! log output, tagged with the upstream's name; stdout carries only MCP.
//!
//! Every process is owned by its [`Child`]: dropping the last handle (a session
//! that ends, a client that goes away while the child still starts) kills the
//! process group. The slot it takes under `max_children` (and under
//! `server.max_children_per_subject`) is given back only once the process has
//! been reaped, so the counts are counts of live processes.

mod lines;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc, watch};

use self::lines::{Line, LineReader};

use super::error::UpstreamError;
use super::mux::{Mux, SessionKey};
use crate::config::{Isolation, Limits, UpstreamConfig};
use crate::credentials::Credentials;
use crate::events::EventLog;
use crate::identity::OnBehalfOf;
use crate::jsonrpc::{self, Message, code};
use crate::protocol::GATEWAY_PROTOCOL_VERSION;
use crate::subject_slots::{Slot, SubjectSlots};

/// A running child process and the mux over its stdio.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) mux: Arc<Mux>,
    pid: Option<u32>,
    exited: watch::Receiver<bool>,
    /// Set when the gateway itself stops the child, so the exit is not counted as a crash.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Child {
    /// Nothing may outlive its owner: a child still running when its last handle
    /// goes (a client that disconnected during `initialize`, a session dropped
    /// without `close`) is killed with its process group. The wait task reaps it.
    fn drop(&mut self) {
        if self.is_running() {
            self.stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Child {
    /// SIGTERM to the child's process group, then SIGKILL after `grace`.
    pub(crate) async fn terminate(&self, grace: Duration) {
        let mut exited = self.exited.clone();
        if *exited.borrow() {
            return;
        }
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, exited.wait_for(|e| *e))
            .await
            .is_err()
        {
            signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = tokio::time::timeout(Duration::from_secs(2), exited.wait_for(|e| *e)).await;
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        !*self.exited.borrow()
    }
}

fn signal_group(pid: Option<u32>, sig: nix::sys::signal::Signal) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    // The child leads its own group (process_group(0)), so -pid reaches its descendants too.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
}

/// A child the gateway initialized itself, shared by sessions (and by stateless clients).
#[derive(Debug)]
pub(crate) struct SharedChild {
    pub(super) child: Arc<Child>,
    /// The child's `initialize` result, answered to every client that joins.
    pub(crate) init_result: Box<RawValue>,
    /// The mux seat stateless clients use on this child, and where the child's
    /// unsolicited notifications to it go.
    seat: std::sync::OnceLock<(SessionKey, Arc<EventLog>)>,
}

impl SharedChild {
    fn is_usable(&self) -> bool {
        self.child.is_running() && self.child.mux.dead_reason().is_none()
    }
}

/// Everything the gateway keeps about one stdio upstream.
#[derive(Debug)]
pub(crate) struct StdioUpstream {
    name: Arc<str>,
    cfg: UpstreamConfig,
    limits: Limits,
    permits: Arc<Semaphore>,
    backoff: Arc<Mutex<Backoff>>,
    shared: tokio::sync::Mutex<Option<Arc<SharedChild>>>,
    /// Gateway-initialized children of stateless clients, one per subject.
    per_subject: tokio::sync::Mutex<std::collections::HashMap<String, (Arc<SharedChild>, Instant)>>,
    children: Mutex<Vec<std::sync::Weak<Child>>>,
    /// Live processes per signed-in subject, for `server.max_children_per_subject`.
    per_subject_count: SubjectSlots,
    last_error: Mutex<Option<String>>,
    /// Outbound credentials, as environment variables of each child.
    credentials: Arc<Credentials>,
    /// Its tools' `x-mcp-header` parameters (a stdio child is never asked
    /// `server/discover`), against which 2026-07-28 clients' `Mcp-Param-*`
    /// headers are checked.
    pub(crate) era: super::modern::EraCache,
}

#[derive(Debug, Default)]
struct Backoff {
    quick_failures: u32,
}

impl Backoff {
    fn delay(&self) -> Duration {
        if self.quick_failures == 0 {
            return Duration::ZERO;
        }
        let ms = 250u64.saturating_mul(1 << self.quick_failures.min(7).saturating_sub(1));
        Duration::from_millis(ms.min(30_000))
    }
}

/// A session's view of a stdio upstream.
#[derive(Debug)]
pub(crate) struct StdioLink {
    pub(crate) child: Arc<Child>,
    pub(super) key: SessionKey,
    /// The shared child's cached `initialize` result, when the child is shared.
    pub(super) init_result: Option<Box<RawValue>>,
    /// Whether this link owns the child (per-session isolation).
    owns_child: bool,
    /// The stateless seat's notifications, for `subscriptions/listen`.
    pub(super) notifications: Option<Arc<EventLog>>,
}

impl StdioLink {
    /// Ends this session's use of the child; a per-session child is stopped.
    pub(crate) async fn close(&self) {
        self.child.mux.detach(self.key);
        if self.owns_child {
            self.child.terminate(Duration::from_secs(5)).await;
        }
    }
}

impl StdioUpstream {
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn new(cfg: UpstreamConfig, limits: Limits, credentials: Arc<Credentials>) -> Self {
        StdioUpstream {
            name: cfg.name.as_str().into(),
            permits: Arc::new(Semaphore::new(cfg.max_children.max(1))),
            cfg,
            limits,
            backoff: Arc::new(Mutex::new(Backoff::default())),
            shared: tokio::sync::Mutex::new(None),
            per_subject: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            children: Mutex::new(Vec::new()),
            per_subject_count: SubjectSlots::default(),
            last_error: Mutex::new(None),
            credentials,
            era: super::modern::EraCache::default(),
        }
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Opens a session: a new child, or a seat on the shared one.
    pub(crate) async fn open(
        &self,
        server_stream: Arc<EventLog>,
        env: &[(String, String)],
        caller: &OnBehalfOf,
    ) -> Result<StdioLink, UpstreamError> {
        if self.cfg.isolation == Isolation::Shared {
            return self.join_shared(server_stream).await;
        }
        let child = self.spawn(false, env, caller).await?;
        let key = child.mux.attach(server_stream);
        Ok(StdioLink {
            child,
            key,
            init_result: None,
            owns_child: true,
            notifications: None,
        })
    }

    /// A seat on the gateway-initialized shared child (started on first use, restarted after a crash).
    pub(crate) async fn join_shared(
        &self,
        server_stream: Arc<EventLog>,
    ) -> Result<StdioLink, UpstreamError> {
        let shared = self.shared_child().await?;
        let key = shared.child.mux.attach(server_stream);
        Ok(StdioLink {
            child: shared.child.clone(),
            key,
            init_result: Some(shared.init_result.clone()),
            owns_child: false,
            notifications: None,
        })
    }

    /// The seat stateless (2026-07-28) clients use. With `isolation = "shared"` it is
    /// on the shared child; otherwise each subject gets a gateway-initialized child
    /// of its own, so per-user data stays per user. The child's questions reach the
    /// seat only when one request is in flight (see the mux), and the front turns
    /// them into `input_required` results.
    pub(crate) async fn stateless(
        &self,
        subject: &str,
        env: &[(String, String)],
        caller: &OnBehalfOf,
    ) -> Result<StdioLink, UpstreamError> {
        let shared = if self.cfg.isolation == Isolation::Shared {
            self.shared_child().await?
        } else {
            self.subject_child(subject, env, caller).await?
        };
        let (key, notifications) = shared.seat.get_or_init(|| {
            let log = EventLog::tapped(0, 1);
            let key = shared.child.mux.attach(log.clone());
            // Each request's own clientCapabilities decide (front/mrtr.rs).
            shared.child.mux.set_capabilities(key, None);
            (key, log)
        });
        Ok(StdioLink {
            child: shared.child.clone(),
            key: *key,
            init_result: Some(shared.init_result.clone()),
            owns_child: false,
            notifications: Some(notifications.clone()),
        })
    }

    async fn shared_child(&self) -> Result<Arc<SharedChild>, UpstreamError> {
        let mut slot = self.shared.lock().await;
        if let Some(s) = slot.as_ref()
            && s.is_usable()
        {
            return Ok(s.clone());
        }
        // A shared child serves everyone: it gets only the gateway's own credentials.
        let shared = self.initialized_child(&[], &OnBehalfOf::gateway()).await?;
        *slot = Some(shared.clone());
        Ok(shared)
    }

    async fn subject_child(
        &self,
        subject: &str,
        env: &[(String, String)],
        caller: &OnBehalfOf,
    ) -> Result<Arc<SharedChild>, UpstreamError> {
        let mut map = self.per_subject.lock().await;
        if let Some((s, used)) = map.get_mut(subject)
            && s.is_usable()
        {
            *used = Instant::now();
            return Ok(s.clone());
        }
        let shared = self.initialized_child(env, caller).await?;
        map.insert(subject.to_owned(), (shared.clone(), Instant::now()));
        Ok(shared)
    }

    /// Stops per-subject children unused for `max`.
    pub(crate) async fn reap_idle(&self, max: Duration) {
        // Taken out under the lock, stopped after it is released.
        let stale: Vec<Arc<SharedChild>> = self
            .per_subject
            .lock()
            .await
            .extract_if(|_, (s, used)| used.elapsed() > max || !s.is_usable())
            .map(|(_, (s, _))| s)
            .collect();
        for s in stale {
            s.child.terminate(Duration::from_secs(5)).await;
        }
    }

    /// Starts a child and initializes it as the gateway.
    async fn initialized_child(
        &self,
        env: &[(String, String)],
        caller: &OnBehalfOf,
    ) -> Result<Arc<SharedChild>, UpstreamError> {
        let child = self.spawn(true, env, caller).await?;
        let params = jsonrpc::raw(&serde_json::json!({
            "protocolVersion": GATEWAY_PROTOCOL_VERSION,
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": true } },
            "clientInfo": { "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") }
        }));
        let mut ex = child
            .mux
            .request_internal("initialize", params)
            .map_err(|e| self.unavailable(e.0))?;
        let answer = tokio::time::timeout(self.limits.request_timeout, ex.recv()).await;
        let result =
            match answer {
                Ok(Some(Message {
                    result: Some(r), ..
                })) => r,
                Ok(Some(m)) => {
                    let why = m.error.map(|e| e.get().to_owned()).unwrap_or_default();
                    child.terminate(Duration::from_secs(2)).await;
                    return Err(self
                        .unavailable(format!("upstream {} refused initialize: {why}", self.name)));
                }
                Ok(None) => {
                    return Err(self
                        .unavailable(format!("upstream {} exited during initialize", self.name)));
                }
                Err(_) => {
                    child.terminate(Duration::from_secs(2)).await;
                    let why = format!(
                        "upstream {} did not answer initialize within {:?} (request_timeout)",
                        self.name, self.limits.request_timeout
                    );
                    tracing::warn!(upstream = %self.name, "{why}");
                    let _ = self.unavailable(why.clone());
                    return Err(UpstreamError::TimedOut(why));
                }
            };
        child
            .mux
            .notify_internal("notifications/initialized")
            .map_err(|e| self.unavailable(e.0))?;
        Ok(Arc::new(SharedChild {
            child,
            init_result: result,
            seat: std::sync::OnceLock::new(),
        }))
    }

    fn unavailable(&self, why: String) -> UpstreamError {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        UpstreamError::Unavailable(why)
    }

    async fn spawn(
        &self,
        shared: bool,
        env: &[(String, String)],
        caller: &OnBehalfOf,
    ) -> Result<Arc<Child>, UpstreamError> {
        // Resolved first: a missing secret fails the session without starting anything.
        let secrets = self.credentials.env(caller).await?;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            UpstreamError::Busy(format!(
                "upstream {} already runs max_children = {} processes; try again later, or raise max_children for this [[upstream]]",
                self.name, self.cfg.max_children
            ))
        })?;
        let subject_slot = self.subject_slot(caller)?;
        let delay = self
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delay();
        if !delay.is_zero() {
            tracing::info!(upstream = %self.name, ?delay, "upstream crashed recently; waiting before starting it again");
            tokio::time::sleep(delay).await;
        }
        let Some((program, args)) = self.cfg.command.as_deref().and_then(|c| c.split_first())
        else {
            return Err(self.unavailable(format!("upstream {} has no command", self.name)));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(&self.cfg.env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(secrets.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.cfg.cwd {
            cmd.current_dir(dir);
        }
        let mut proc = cmd.spawn().map_err(|e| {
            mcpgate_telemetry::metrics().upstream_up(&self.name, false);
            self.unavailable(format!(
                "cannot start upstream {} ({program}): {e}",
                self.name
            ))
        })?;
        let pid = proc.id();
        let m = mcpgate_telemetry::metrics();
        m.child_started(&self.name);
        m.upstream_up(&self.name, true);
        tracing::info!(upstream = %self.name, pid, "started upstream process");
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Bytes>();
        let mux = Mux::new(self.name.clone(), shared, out_tx);
        let (exited_tx, exited) = watch::channel(false);

        if let Some(stdin) = proc.stdin.take() {
            tokio::spawn(write_lines(stdin, out_rx));
        }
        if let Some(stdout) = proc.stdout.take() {
            tokio::spawn(read_messages(
                self.name.clone(),
                stdout,
                mux.clone(),
                self.limits.max_message_bytes,
            ));
        }
        if let Some(stderr) = proc.stderr.take() {
            tokio::spawn(log_stderr(self.name.clone(), stderr));
        }
        let started = Instant::now();
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let child = Arc::new(Child {
            mux: mux.clone(),
            pid,
            exited,
            stopping: stopping.clone(),
        });
        let name = self.name.clone();
        let backoff = self.backoff.clone();
        tokio::spawn(async move {
            let status = proc.wait().await;
            // Whatever the child started and left behind goes with it.
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            // The slots are free only now that the process is gone.
            drop(permit);
            drop(subject_slot);
            let reason = match status {
                Ok(s) => format!("upstream {name} exited ({s})"),
                Err(e) => format!("upstream {name} could not be waited for: {e}"),
            };
            let crashed = !stopping.load(std::sync::atomic::Ordering::Relaxed);
            let m = mcpgate_telemetry::metrics();
            m.child_exited(&name);
            if crashed {
                m.upstream_up(&name, false);
            }
            if crashed {
                tracing::warn!(upstream = %name, "{reason}");
            } else {
                tracing::debug!(upstream = %name, "{reason}");
            }
            mux.fail(&reason);
            let _ = exited_tx.send(true);
            let mut b = backoff.lock().unwrap_or_else(|e| e.into_inner());
            // Only a crash soon after start counts: a long-lived child that dies
            // is restarted at once; a command that cannot start is not hammered.
            if crashed && started.elapsed() < Duration::from_secs(10) {
                b.quick_failures = b.quick_failures.saturating_add(1);
            } else {
                b.quick_failures = 0;
            }
        });
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&child));
        Ok(child)
    }

    /// Processes alive now (started and not yet reaped).
    pub(crate) fn running(&self) -> usize {
        self.cfg
            .max_children
            .max(1)
            .saturating_sub(self.permits.available_permits())
    }

    /// Takes one of a signed-in subject's child slots; anonymous callers and the
    /// gateway itself (shared children) are bounded by `max_children` alone.
    fn subject_slot(&self, caller: &OnBehalfOf) -> Result<Option<Slot>, UpstreamError> {
        let (Some(subject), cap) = (&caller.subject, self.limits.max_children_per_subject) else {
            return Ok(None);
        };
        if cap == 0 {
            return Ok(None);
        }
        if let Some(slot) = self.per_subject_count.take(subject, cap) {
            return Ok(Some(slot));
        }
        tracing::warn!(upstream = %self.name, %subject, cap, "refused a child: the subject is at server.max_children_per_subject");
        Err(UpstreamError::SubjectLimit(format!(
            "{subject} already runs {cap} processes of upstream {} (server.max_children_per_subject = {cap}); close a session (DELETE) or wait for idle ones to expire",
            self.name
        )))
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops every child: SIGTERM, then SIGKILL after `grace`.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        let children: Vec<_> = {
            let c = self.children.lock().unwrap_or_else(|e| e.into_inner());
            c.iter().filter_map(|w| w.upgrade()).collect()
        };
        futures_util::future::join_all(children.iter().map(|c| c.terminate(grace))).await;
    }
}

/// Writes each queued message to the child as one line.
///
/// A message and its newline go out in one `write`, and so does whatever
/// queued up meanwhile (up to [`WRITE_BATCH`] bytes): two writes per message
/// woke a child that reads line by line twice, once for the line and once
/// for its end.
async fn write_lines<W: tokio::io::AsyncWrite + Unpin>(
    mut stdin: W,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let mut batch = Vec::new();
    while let Some(line) = rx.recv().await {
        batch.extend_from_slice(&line);
        batch.push(b'\n');
        while batch.len() < WRITE_BATCH {
            let Ok(line) = rx.try_recv() else { break };
            batch.extend_from_slice(&line);
            batch.push(b'\n');
        }
        if stdin.write_all(&batch).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
        batch.clear();
        // A rare large message must not keep its buffer for the child's life.
        if batch.capacity() > WRITE_BATCH {
            batch = Vec::new();
        }
    }
}

/// What [`write_lines`] gathers into one write, and keeps allocated after.
const WRITE_BATCH: usize = 64 * 1024;

async fn read_messages(
    name: Arc<str>,
    stdout: tokio::process::ChildStdout,
    mux: Arc<Mux>,
    max: usize,
) {
    let mut lines = LineReader::new(stdout, max);
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(upstream = %name, "reading stdout failed: {e}");
                break;
            }
        };
        match line {
            Line::Whole(line) if line.trim_ascii().is_empty() => {}
            Line::Whole(line) => match Message::parse(&line) {
                Ok(msg) => mux.dispatch(msg),
                Err(e) => {
                    let what = if std::str::from_utf8(&line).is_err() {
                        "is not valid UTF-8"
                    } else {
                        "is not a JSON-RPC message"
                    };
                    tracing::warn!(upstream = %name, "skipped a stdout line that {what} ({e})");
                    fail_request(&name, &mux, &line, &format!("a message that {what}"));
                }
            },
            Line::TooLong { head, len } => {
                tracing::warn!(upstream = %name, len, max, "skipped a stdout line over the message size limit");
                fail_request(
                    &name,
                    &mux,
                    &head,
                    &format!(
                        "a message of {len} bytes, over the gateway's message size limit of {max} bytes"
                    ),
                );
            }
        }
    }
}

/// Answers the request a skipped line was the response to, when its id can be
/// read, so the client hears at once instead of waiting for the timeout.
fn fail_request(name: &str, mux: &Mux, line: &[u8], what: &str) {
    if let Some(id) = lines::response_id(line) {
        mux.dispatch(Message::error(
            Some(id),
            code::UPSTREAM_ERROR,
            &format!("upstream {name} answered with {what}; the answer was dropped"),
        ));
    }
}

async fn log_stderr(name: Arc<str>, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcpgate::upstream::stderr", upstream = %name, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Records every `write` it is given.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Writes {
        fn taken(&self) -> Vec<Vec<u8>> {
            std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
        }
    }

    impl tokio::io::AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The writes [`write_lines`] makes for `lines`, all queued before it runs.
    async fn writes_for(lines: Vec<Bytes>) -> Vec<Vec<u8>> {
        let writes = Writes::default();
        let (tx, rx) = mpsc::unbounded_channel();
        for line in lines {
            tx.send(line).expect("send");
        }
        drop(tx);
        write_lines(writes.clone(), rx).await;
        writes.taken()
    }

    #[tokio::test]
    async fn a_message_and_its_newline_go_out_in_one_write() {
        let got = writes_for(vec![Bytes::from_static(br#"{"id":1}"#)]).await;
        assert_eq!(got, vec![b"{\"id\":1}\n".to_vec()]);
    }

    #[tokio::test]
    async fn what_queued_meanwhile_goes_out_in_the_same_write_in_order() {
        let got = writes_for(["a", "b", "c"].map(Bytes::from).to_vec()).await;
        assert_eq!(got, vec![b"a\nb\nc\n".to_vec()]);
    }

    #[tokio::test]
    async fn a_batch_stops_growing_at_its_limit_and_no_line_is_split_or_lost() {
        let line = vec![b'x'; WRITE_BATCH / 2];
        let got = writes_for(vec![Bytes::from(line.clone()); 5]).await;
        assert!(got.len() > 1, "{} writes", got.len());
        let mut expected = line.clone();
        expected.push(b'\n');
        for w in &got {
            assert!(w.len() <= WRITE_BATCH + expected.len(), "{} bytes", w.len());
            assert_eq!(w.len() % expected.len(), 0, "a line was split");
        }
        assert_eq!(got.concat(), expected.repeat(5));
    }
}
