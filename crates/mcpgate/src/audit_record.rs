//! Audit records from the binary's side: what the CLI commands that change
//! security state append, and the JSON-line form `audit list --json` prints
//! and the mirror writes.

use mcpgate_store::audit::{AuditRecord, NewAuditRecord};
use mcpgate_store::{Store, format_utc};
use mcpgate_telemetry::{AuditEvent, AuditKind};

/// The record as one JSON object: what `--json` prints and the mirror writes.
pub(crate) fn json_line(w: &AuditRecord) -> String {
    let r = &w.event;
    serde_json::json!({
        "seq": w.seq,
        "at": format_utc(w.at),
        "kind": r.kind,
        "subject": r.subject,
        "client_id": r.client_id,
        "upstream": r.upstream,
        "tool": r.tool,
        "outcome": r.outcome,
        "detail": serde_json::from_str::<serde_json::Value>(&r.detail).unwrap_or_default(),
        "prev_hash": w.prev_hash,
        "hash": w.hash,
    })
    .to_string()
}

/// The record an event becomes; its strings move, none is copied.
pub(crate) fn to_record(e: AuditEvent) -> NewAuditRecord {
    let mut r = NewAuditRecord::new(e.kind.as_str());
    // Straight into a buffer: `Value`'s `Display` goes through the
    // formatter a write at a time.
    r.detail = serde_json::to_string(&e.detail).unwrap_or_else(|_| "{}".to_owned());
    r.subject = e.subject;
    r.client_id = e.client_id;
    r.upstream = e.upstream;
    r.tool = e.tool;
    r.outcome = e.outcome;
    r
}

/// Appends one event from a CLI command; a failure is reported, not fatal
/// (the change itself was made).
pub(crate) async fn record(store: &Store, e: AuditEvent) {
    let kind = e.kind.as_str();
    if let Err(err) = store.audit_append(&to_record(e)).await {
        eprintln!("warning: the audit record ({kind}) was not written: {err}");
    }
}

/// `mcpgate keys create`.
pub(crate) async fn key_created(store: &Store, name: &str, subject: &str) {
    let e = AuditEvent::new(AuditKind::ApiKeyCreated).subject(subject);
    record(store, e.with("name", name)).await;
}

/// `mcpgate keys revoke`.
pub(crate) async fn key_revoked(store: &Store, name: &str, newly: bool) {
    let e = AuditEvent::new(AuditKind::ApiKeyRevoked).with("name", name);
    record(
        store,
        e.outcome(if newly { "revoked" } else { "already_revoked" }),
    )
    .await;
}

/// `mcpgate users add` (`added`) and `remove`.
pub(crate) async fn user_changed(store: &Store, name: &str, added: bool) {
    let kind = if added {
        AuditKind::UserCreated
    } else {
        AuditKind::UserRemoved
    };
    record(store, AuditEvent::new(kind).subject(name)).await;
}

/// `mcpgate clients add` (`added`) and `remove`.
pub(crate) async fn client_changed(store: &Store, client_id: &str, added: bool) {
    let kind = if added {
        AuditKind::ClientRegistered
    } else {
        AuditKind::ClientRemoved
    };
    let e = AuditEvent::new(kind).client(Some(client_id)).outcome("cli");
    record(store, e).await;
}

/// `mcpgate signing-keys rotate`.
pub(crate) async fn signing_key_rotated(store: &Store, kid: &str, previous: Option<&str>) {
    let mut e = AuditEvent::new(AuditKind::SigningKeyRotated).with("kid", kid);
    if let Some(p) = previous {
        e = e.with("previous_kid", p);
    }
    record(store, e).await;
}
