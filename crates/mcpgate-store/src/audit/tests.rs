use std::time::{Duration, SystemTime};

use super::*;

/// The hash before the first record (the migration's initial head).
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn store() -> (crate::TestDb, Store) {
    crate::test_store().await
}

fn event(kind: &str, subject: &str) -> NewAuditRecord {
    let mut r = NewAuditRecord::new(kind);
    r.subject = Some(subject.to_owned());
    r
}

#[tokio::test]
async fn records_link_and_verify() {
    let (_d, s) = store().await;
    let a = s
        .audit_append(&event("sign_in", "alice"))
        .await
        .expect("append");
    let b = s
        .audit_append(&event("tool_called", "bob"))
        .await
        .expect("append");
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(a.prev_hash, GENESIS);
    assert_eq!(b.prev_hash, a.hash);
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(
        v,
        AuditVerification {
            checked: 2,
            broken: None
        }
    );
    let only_bob = s
        .audit_list(&AuditFilter::new(None, Some("bob".into()), None))
        .await
        .expect("list");
    assert_eq!(only_bob.len(), 1);
    let sign_ins = s
        .audit_list(&AuditFilter::new(None, None, Some("sign_in".into())))
        .await
        .expect("list");
    assert_eq!(sign_ins[0].event.subject.as_deref(), Some("alice"));
}

#[tokio::test]
async fn updates_are_refused_and_an_edit_is_found() {
    let (_d, s) = store().await;
    for i in 0..3 {
        s.audit_append(&event("sign_in", &format!("u{i}")))
            .await
            .expect("append");
    }
    let refused = sqlx::query("UPDATE audit_log SET subject = 'mallory' WHERE seq = 2")
        .execute(&s.pool)
        .await;
    assert!(refused.is_err(), "the trigger must refuse updates");
    let drop = if s.url().is_postgres() {
        "DROP TRIGGER audit_log_append_only ON audit_log"
    } else {
        "DROP TRIGGER audit_log_append_only"
    };
    sqlx::query(drop).execute(&s.pool).await.expect("drop");
    sqlx::query("UPDATE audit_log SET subject = 'mallory' WHERE seq = 2")
        .execute(&s.pool)
        .await
        .expect("edit");
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(v.broken, Some(ChainBreak::Edited { seq: 2 }));
    assert_eq!(v.checked, 1);
}

#[tokio::test]
async fn deletions_are_found_in_the_middle_and_at_the_end() {
    let (_d, s) = store().await;
    for i in 0..5 {
        s.audit_append(&event("sign_in", &format!("u{i}")))
            .await
            .expect("append");
    }
    sqlx::query("DELETE FROM audit_log WHERE seq = 5")
        .execute(&s.pool)
        .await
        .expect("delete");
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(v.broken, Some(ChainBreak::TailMissing { last: 4, head: 5 }));
    assert_eq!(
        v.broken.map(|b| b.to_string()).as_deref(),
        Some("record 5 (the newest) was deleted")
    );
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&s.pool)
        .await
        .expect("delete");
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(
        v.broken,
        Some(ChainBreak::Broken {
            seq: 4,
            missing_from: Some(3)
        })
    );
}

#[tokio::test]
async fn pruning_keeps_the_chain_verifiable() {
    let (_d, s) = store().await;
    for i in 0..3 {
        s.audit_append(&event("sign_in", &format!("u{i}")))
            .await
            .expect("append");
    }
    // Everything so far is "before" a moment in the future.
    let gone = s
        .audit_prune(SystemTime::now() + Duration::from_secs(5))
        .await
        .expect("prune");
    assert_eq!(gone, 3);
    s.audit_append(&event("audit_pruned", "admin"))
        .await
        .expect("append");
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(
        v,
        AuditVerification {
            checked: 1,
            broken: None
        }
    );
    assert_eq!(
        s.audit_prune(SystemTime::UNIX_EPOCH).await.expect("prune"),
        0
    );
}

#[tokio::test]
async fn a_batch_links_in_order_after_the_head_and_verifies() {
    let (_d, s) = store().await;
    let first = s
        .audit_append(&event("sign_in", "alice"))
        .await
        .expect("append");
    let batch = [
        event("tool_called", "a"),
        event("tool_called", "b"),
        event("policy_denied", "c"),
    ];
    let written = s.audit_append_all(&batch).await.expect("batch");
    let seqs: Vec<i64> = written.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [2, 3, 4]);
    assert_eq!(written[0].prev_hash, first.hash);
    assert_eq!(written[1].prev_hash, written[0].hash);
    assert_eq!(written[2].prev_hash, written[1].hash);
    assert_eq!(written[2].event.subject.as_deref(), Some("c"));
    assert!(s.audit_append_all(&[]).await.expect("empty").is_empty());
    let after = s
        .audit_append(&event("sign_in", "d"))
        .await
        .expect("append");
    assert_eq!(after.seq, 5);
    assert_eq!(after.prev_hash, written[2].hash);
    let listed = s.audit_list(&AuditFilter::default()).await.expect("list");
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[1..4].to_vec(), written);
    let v = s.audit_verify().await.expect("verify");
    assert_eq!(v.checked, 5);
    assert_eq!(v.broken, None);
}

#[tokio::test]
async fn a_batch_larger_than_one_insert_statement_keeps_its_order() {
    let (_d, s) = store().await;
    let batch: Vec<NewAuditRecord> = (0..150)
        .map(|i| event("tool_called", &format!("s{i}")))
        .collect();
    let written = s.audit_append_all(&batch).await.expect("batch");
    let listed = s.audit_list(&AuditFilter::default()).await.expect("list");
    assert_eq!(listed, written);
    for (i, r) in listed.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1);
        assert_eq!(r.event.subject.as_deref(), Some(format!("s{i}").as_str()));
    }
    let v = s.audit_verify().await.expect("verify");
    assert_eq!((v.checked, v.broken), (150, None));
}

/// Records written by earlier builds hashed a `serde_json::json!` array: the
/// canonical form must stay byte for byte the same, or their chains stop verifying.
#[test]
fn the_canonical_form_is_the_json_array_earlier_builds_hashed() {
    let mut r = event("tool_called", "al\"ice\u{7}é");
    r.tool = Some("echo".into());
    r.detail = r#"{"duration_ms":3,"status":200}"#.into();
    let old = serde_json::json!([
        7_i64,
        -12_i64,
        r.kind,
        r.subject,
        r.client_id,
        r.upstream,
        r.tool,
        r.outcome,
        r.detail,
        GENESIS
    ]);
    let digest = Sha256::digest(old.to_string().as_bytes());
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(chain_hash(7, -12, &r, GENESIS), expected);
}

#[tokio::test]
async fn an_appender_links_its_batches_and_notices_other_writers() {
    let (_d, s) = store().await;
    let mut a = s.audit_appender();
    let first = a
        .append(vec![event("sign_in", "a1"), event("sign_in", "a2")])
        .await
        .expect("append");
    // The head it remembers is still the chain's: linked without reading it.
    let second = a
        .append(vec![event("sign_in", "a3")])
        .await
        .expect("append");
    assert_eq!(second[0].seq, 3);
    assert_eq!(second[0].prev_hash, first[1].hash);
    // Another writer (a CLI command, another replica) moves the head…
    let other = s
        .audit_append(&event("api_key_created", "cli"))
        .await
        .expect("append");
    assert_eq!(other.prev_hash, second[0].hash);
    // …and the appender links after that one, not after its own last.
    let third = a
        .append(vec![event("sign_in", "a4")])
        .await
        .expect("append");
    assert_eq!((third[0].seq, &third[0].prev_hash), (5, &other.hash));
    let v = s.audit_verify().await.expect("verify");
    assert_eq!((v.checked, v.broken), (5, None));
}

/// SQLite's statement has anonymous placeholders (sqlx binds them in order
/// without asking SQLite for a name each); PostgreSQL's are numbered.
#[test]
fn the_insert_has_one_placeholder_per_column_in_each_backends_form() {
    let sqlite = multi_row_insert(64, false);
    assert_eq!(sqlite.matches('?').count(), 64 * 11);
    assert!(!sqlite.contains('$'));
    let postgres = multi_row_insert(3, true);
    assert_eq!(postgres.matches('$').count(), 3 * 11);
    assert!(postgres.ends_with("$23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33)"));
    assert!(!postgres.contains('?'));
    // Beyond the kept sizes the text is still written.
    assert_eq!(multi_row_insert(65, false).matches('?').count(), 65 * 11);
}
