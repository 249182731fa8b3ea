//! The audit trail from the binary's side: `mcpgate audit list|verify|prune`,
//! the writer that stores the server's events (and mirrors them as JSON
//! lines), and [`record`] for the CLI commands that change security state.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mcpgate_store::audit::{AuditFilter, AuditRecord};
use mcpgate_store::{Store, format_utc};
use mcpgate_telemetry::{AuditEvent, AuditKind, AuditSink, ToolArguments};
use tokio::sync::{mpsc, oneshot};

use crate::audit_record::{json_line, record, to_record};
use crate::keys::{StoreArgs, exit};
use crate::telemetry_config::AuditConfig;

/// Events waiting to be written; past this the server counts, logs and drops
/// them rather than slow requests down.
const QUEUE: usize = 10_000;

/// `mcpgate audit …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Print audit records, oldest first.
    List {
        /// Only records at or after this time: RFC 3339 (2026-12-01T10:00:00Z),
        /// a date (2026-12-01), or an age (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this subject's records.
        #[arg(long)]
        subject: Option<String>,
        /// Only this kind (sign_in, tool_called, api_key_created, …).
        #[arg(long)]
        kind: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check the hash chain; names the first record edited or deleted.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete records older than a time, keeping the chain verifiable.
    Prune {
        /// RFC 3339, a date, or an age (90d).
        #[arg(long)]
        before: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) async fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::List {
            since,
            subject,
            kind,
            json,
            store,
        } => exit(list(since, subject, kind, json, &store).await),
        AuditCommand::Verify { store } => match verify(&store).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => exit(Err(e)),
        },
        AuditCommand::Prune { before, store } => exit(prune(&before, &store).await),
    }
}

/// An RFC 3339 time, a date (midnight UTC) or an age before now.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(age) = humantime::parse_duration(s) {
        return SystemTime::now()
            .checked_sub(age)
            .ok_or_else(|| format!("{s:?} is too long ago"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(&full).map_err(|_| {
        format!("{s:?} is not a time: use RFC 3339 (2026-12-01T10:00:00Z), a date (2026-12-01) or an age (24h, 7d)")
    })
}

async fn list(
    since: Option<String>,
    subject: Option<String>,
    kind: Option<String>,
    json: bool,
    args: &StoreArgs,
) -> Result<(), String> {
    if let Some(k) = &kind
        && !AuditKind::ALL.iter().any(|a| a.as_str() == k)
    {
        let known: Vec<_> = AuditKind::ALL.iter().map(|a| a.as_str()).collect();
        return Err(format!(
            "unknown kind {k:?}: use one of {}",
            known.join(", ")
        ));
    }
    let since = since.as_deref().map(parse_time).transpose()?;
    let store = args.existing().await?;
    let records = store
        .audit_list(&AuditFilter::new(since, subject, kind))
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    for r in &records {
        let line = if json { json_line(r) } else { human_line(r) };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    if records.is_empty() && !json {
        eprintln!("no audit records match in {}", args.dir());
    }
    Ok(())
}

fn human_line(w: &AuditRecord) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let r = &w.event;
    format!(
        "{:>6}  {}  {:<20}  subject={}  client={}  upstream={}  tool={}  outcome={}  {}",
        w.seq,
        format_utc(w.at),
        r.kind,
        opt(&r.subject),
        opt(&r.client_id),
        opt(&r.upstream),
        opt(&r.tool),
        opt(&r.outcome),
        r.detail
    )
}

async fn verify(args: &StoreArgs) -> Result<bool, String> {
    let store = args.existing().await?;
    let v = store.audit_verify().await.map_err(|e| e.to_string())?;
    store.close().await;
    match v.broken {
        None => {
            println!("audit: OK ({} records checked)", v.checked);
            Ok(true)
        }
        Some(b) => {
            println!(
                "audit: BROKEN: {b} ({} records before it are intact)",
                v.checked
            );
            Ok(false)
        }
    }
}

async fn prune(before: &str, args: &StoreArgs) -> Result<(), String> {
    let t = parse_time(before)?;
    let store = args.existing().await?;
    let gone = store.audit_prune(t).await.map_err(|e| e.to_string())?;
    // The pruning itself is on the record.
    record(
        &store,
        AuditEvent::new(AuditKind::AuditPruned)
            .with("before", format_utc(t))
            .with("records", gone),
    )
    .await;
    store.close().await;
    eprintln!(
        "Pruned {gone} audit records written before {}.",
        format_utc(t)
    );
    Ok(())
}

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// The most events written in one transaction.
const BATCH: usize = 1024;
/// How long the writer waits, after an event, for more to join its transaction.
const LINGER: Duration = Duration::from_millis(100);

struct Sink {
    tx: mpsc::Sender<Msg>,
    /// Events refused since the writer last reported them.
    dropped: Arc<AtomicU64>,
}

impl AuditSink for Sink {
    fn record(&self, event: AuditEvent) {
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Never blocks a request; counted, and the first of a run is
                // logged at once (the writer reports the total when it catches up).
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(
                        "audit events are being dropped: {QUEUE} are waiting to be written (is the data directory's disk slow or full?)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("an audit event was dropped: the audit writer has stopped");
            }
        }
    }
}

/// The server's audit writer: events queue in memory (at most [`QUEUE`]) and
/// one task appends them to the store in order, those that arrive within
/// [`LINGER`] of the first in one transaction (at most [`BATCH`]), then
/// mirrors them.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
}

impl Writer {
    pub(crate) async fn start(
        url: &mcpgate_store::StoreUrl,
        cfg: &AuditConfig,
    ) -> Result<Writer, String> {
        let store = Store::connect(url)
            .await
            .map_err(|e| format!("audit: {e}"))?;
        let mirror: Option<Box<dyn std::io::Write + Send>> = match cfg.mirror.as_deref() {
            None | Some("") => None,
            Some("stdout") => Some(Box::new(std::io::stdout())),
            Some(path) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("audit.mirror: cannot open {path}: {e}"))?,
            )),
        };
        let (tx, rx) = mpsc::channel::<Msg>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, rx, mirror, dropped.clone()));
        let args = if cfg.tool_arguments == ToolArguments::Full {
            tracing::warn!(
                "audit.tool_arguments = \"full\": tool arguments are stored in the audit trail as sent, personal data and secrets included"
            );
            ToolArguments::Full
        } else {
            cfg.tool_arguments
        };
        let sink = Sink {
            tx: tx.clone(),
            dropped,
        };
        if !mcpgate_telemetry::install_audit_sink(Box::new(sink), args) {
            tracing::warn!("an audit sink was installed already");
        }
        Ok(Writer { tx })
    }

    /// Waits (at most `max`) until the events queued so far are written.
    pub(crate) async fn flush(&self, max: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(max, wait).await;
        }
    }
}

/// The writer task: waits for an event, sleeps [`LINGER`] so that what else
/// arrives meanwhile joins it, and appends whatever is queued then in
/// transactions of at most [`BATCH`], in queue order.
async fn write_batches(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    mut mirror: Option<Box<dyn std::io::Write + Send>>,
    dropped: Arc<AtomicU64>,
) {
    let mut appender = store.audit_appender();
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        // Asleep, the writer is not waiting on the queue, so the requests
        // that record events meanwhile wake no one: one wake-up per batch,
        // not per event. A flush (shutdown, tests) writes at once.
        if !matches!(first, Msg::Flush(_)) {
            tokio::time::sleep(LINGER).await;
        }
        let mut next = Some(first);
        while next.is_some() {
            let mut full = false;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(e) => batch.push(to_record(*e)),
                    Msg::Flush(done) => flushes.push(done),
                }
                full = batch.len() >= BATCH;
                if !full {
                    next = rx.try_recv().ok();
                }
            }
            write_batch(&mut appender, &mut batch, mirror.as_mut()).await;
            // Flushes answer once everything queued before them is written.
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::error!(
                    dropped = lost,
                    "{lost} audit events were dropped while the queue was full"
                );
            }
            // More than a batch was waiting: the next transaction at once.
            // Else what arrived during the write waits for its own linger.
            next = if full { rx.try_recv().ok() } else { None };
        }
    }
}

/// Appends one batch (emptied) and mirrors what was written.
async fn write_batch(
    appender: &mut mcpgate_store::audit::AuditAppender,
    batch: &mut Vec<mcpgate_store::audit::NewAuditRecord>,
    mirror: Option<&mut Box<dyn std::io::Write + Send>>,
) {
    let records = batch.len();
    match appender.append(std::mem::take(batch)).await {
        Ok(written) => {
            if let Some(m) = mirror {
                let lines: String = written.iter().map(|r| json_line(r) + "\n").collect();
                if let Err(err) = m.write_all(lines.as_bytes()).and_then(|()| m.flush()) {
                    tracing::warn!("audit.mirror: cannot write: {err}");
                }
            }
        }
        Err(err) => {
            tracing::error!(records, "audit records not written: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_what_it_drops_and_never_blocks() {
        let (tx, mut rx) = mpsc::channel(2);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = Sink {
            tx,
            dropped: dropped.clone(),
        };
        for _ in 0..5 {
            sink.record(AuditEvent::new(AuditKind::ToolCalled));
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, 2);
    }

    #[tokio::test]
    async fn the_writer_keeps_queue_order_across_batches_and_a_flush_waits_for_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("store");
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx, None, Arc::new(AtomicU64::new(0))));
        // More than one transaction holds.
        let events = BATCH + 44;
        for i in 0..events {
            let e = AuditEvent::new(AuditKind::ToolCalled).with("i", i);
            tx.send(Msg::Event(Box::new(e))).await.expect("queued");
        }
        let (done, wait) = oneshot::channel();
        tx.send(Msg::Flush(done)).await.expect("flush");
        wait.await.expect("flushed");
        let store = Store::open(dir.path()).await.expect("store");
        let all = store
            .audit_list(&AuditFilter::default())
            .await
            .expect("list");
        assert_eq!(all.len(), events);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.seq, i as i64 + 1);
            assert_eq!(r.event.detail, format!("{{\"i\":{i}}}"));
        }
        let v = store.audit_verify().await.expect("verify");
        assert_eq!((v.checked, v.broken), (events as u64, None));
    }

    #[test]
    fn times_parse_in_three_forms() {
        let now = SystemTime::now();
        let day = parse_time("1d").expect("age");
        let ago = now.duration_since(day).expect("past");
        assert!(ago >= Duration::from_secs(86_399) && ago <= Duration::from_secs(86_500));
        assert_eq!(
            format_utc(parse_time("2026-12-01").expect("date")),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            format_utc(parse_time("2026-12-01T10:11:12Z").expect("rfc3339")),
            "2026-12-01T10:11:12Z"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
