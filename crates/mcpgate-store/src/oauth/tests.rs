use std::time::{Duration, SystemTime};

use super::*;
use crate::{scopes, test_store};

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

async fn grant(store: &Store, id: &str) -> GrantRow {
    store
        .insert_client(&ClientRow::new(
            "c1".parse().unwrap(),
            ClientKind::Dynamic,
            serde_json::json!({}),
        ))
        .await
        .ok();
    let g = GrantRow::new(
        id.into(),
        "c1".parse().unwrap(),
        crate::subject("alice"),
        scopes("notes:read"),
        "http://127.0.0.1/mcp".parse().unwrap(),
        later(3600),
    );
    store.insert_grant(&g).await.unwrap();
    g
}

#[tokio::test]
async fn a_code_is_spent_once_and_then_reported_as_replayed() {
    let (_d, store) = test_store().await;
    let g = grant(&store, "g1").await;
    let code = CodeRow {
        digest: digest_hex("code"),
        grant_id: g.id.clone(),
        client_id: "c1".parse().unwrap(),
        redirect_uri: "http://127.0.0.1/cb".parse().unwrap(),
        code_challenge: "x".into(),
        scopes: g.scopes.clone(),
        resource: g.resource.clone(),
        subject: crate::subject("alice"),
        nonce: None,
        created_at: SystemTime::now(),
        expires_at: later(60),
    };
    store.insert_code(&code).await.unwrap();
    assert!(
        matches!(store.redeem_code(&code.digest).await.unwrap(), CodeOutcome::Fresh(c) if c.grant_id == code.grant_id && c.code_challenge == "x")
    );
    assert!(matches!(
        store.redeem_code(&code.digest).await.unwrap(),
        CodeOutcome::Replayed(_)
    ));
    assert_eq!(
        store.redeem_code("nope").await.unwrap(),
        CodeOutcome::Unknown
    );
}

#[tokio::test]
async fn a_refresh_token_rotates_once() {
    let (_d, store) = test_store().await;
    let g = grant(&store, "g1").await;
    let first = RefreshRow::new(
        digest_hex("r1"),
        g.id.clone(),
        None,
        g.scopes.clone(),
        later(60),
    );
    store.insert_refresh(&first).await.unwrap();
    let second = RefreshRow::new(
        digest_hex("r2"),
        g.id.clone(),
        Some(first.digest.clone()),
        g.scopes.clone(),
        later(60),
    );
    let now = SystemTime::now() + Duration::from_secs(7);
    let grace = Duration::from_secs(30);
    assert_eq!(
        store
            .rotate_refresh(&first.digest, &second, grace, now)
            .await
            .unwrap(),
        Rotation::Rotated
    );
    // The rotation marked the grant used, in the same write.
    let touched = store.find_grant(&g.id).await.unwrap().unwrap().last_used_at;
    assert_eq!(
        crate::time::to_unix(touched),
        crate::time::to_unix(now),
        "last_used_at"
    );
    let third = RefreshRow::new(
        digest_hex("r3"),
        g.id.clone(),
        Some(first.digest.clone()),
        g.scopes.clone(),
        later(60),
    );
    // Without a grace window, a second rotation is a reuse and stores nothing.
    assert!(matches!(
        store
            .rotate_refresh(&first.digest, &third, Duration::ZERO, now)
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(store.find_refresh(&third.digest).await.unwrap().is_none());
    // Within the window it stores a sibling; after it, a reuse again.
    assert_eq!(
        store
            .rotate_refresh(&first.digest, &third, grace, now + grace)
            .await
            .unwrap(),
        Rotation::Sibling
    );
    assert!(store.find_refresh(&third.digest).await.unwrap().is_some());
    let fourth = RefreshRow::new(
        digest_hex("r4"),
        g.id.clone(),
        Some(first.digest.clone()),
        g.scopes.clone(),
        later(60),
    );
    let late = now + grace + Duration::from_secs(2);
    assert!(matches!(
        store
            .rotate_refresh(&first.digest, &fourth, grace, late)
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(store.find_refresh(&fourth.digest).await.unwrap().is_none());
    assert_eq!(
        store
            .rotate_refresh(&digest_hex("nope"), &fourth, grace, now)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert!(
        store
            .find_refresh(&first.digest)
            .await
            .unwrap()
            .unwrap()
            .rotated_at
            .is_some()
    );
}

#[tokio::test]
async fn revoked_grants_stop_being_listed_and_purge_removes_expired_rows() {
    let (_d, store) = test_store().await;
    grant(&store, "g1").await;
    grant(&store, "g2").await;
    assert_eq!(
        store
            .list_grants_for("alice", SystemTime::now())
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.revoke_grant("g1", "user").await.unwrap());
    assert!(!store.revoke_grant("g1", "user").await.unwrap());
    let left = store
        .list_grants_for("alice", SystemTime::now())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "g2");
    let s = SessionRow::new(
        digest_hex("s"),
        None,
        "csrf".into(),
        SystemTime::now() - Duration::from_secs(1),
    );
    store.insert_session(&s).await.unwrap();
    let purged = store.purge_expired(SystemTime::now()).await.unwrap();
    assert_eq!(purged.rows, 1);
    assert!(
        store.find_grant("g1").await.unwrap().is_some(),
        "kept a day after revocation"
    );
    let purged = store.purge_expired(later(2 * 24 * 3600)).await.unwrap();
    assert_eq!(purged.grants, 2);
}

#[tokio::test]
async fn deleting_a_client_removes_its_grants() {
    let (_d, store) = test_store().await;
    grant(&store, "g1").await;
    assert!(store.delete_client("c1").await.unwrap());
    assert!(store.find_grant("g1").await.unwrap().is_none());
    assert!(!store.delete_client("c1").await.unwrap());
    assert!(store.list_clients(None).await.unwrap().is_empty());
}

/// Three handles on one database, as three replicas have: on PostgreSQL they
/// open (and migrate) at the same instant; then, 30 times, each tries to
/// rotate the same refresh token at once without a grace window, and exactly
/// one wins while the others are told it is a reuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_handles_migrate_once_and_one_rotation_wins() {
    let db = crate::TestDb::new().await;
    let handles: Vec<Store> = if db.url().is_postgres() {
        let (a, b, c) = tokio::join!(
            Store::connect(db.url()),
            Store::connect(db.url()),
            Store::connect(db.url())
        );
        vec![a.unwrap(), b.unwrap(), c.unwrap()]
    } else {
        // SQLite is one node: its handles open one after the other.
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Store::connect(db.url()).await.unwrap());
        }
        v
    };
    assert_eq!(
        handles[0].migrate().await.unwrap(),
        0,
        "all applied already"
    );
    let g = grant(&handles[0], "g1").await;
    for round in 0..30 {
        let old = RefreshRow::new(
            digest_hex(&format!("old-{round}")),
            g.id.clone(),
            None,
            g.scopes.clone(),
            later(60),
        );
        handles[0].insert_refresh(&old).await.unwrap();
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.clone();
                let old = old.digest.clone();
                let new = RefreshRow::new(
                    digest_hex(&format!("new-{round}-{i}")),
                    g.id.clone(),
                    Some(old.clone()),
                    g.scopes.clone(),
                    later(60),
                );
                tokio::spawn(async move {
                    h.rotate_refresh(&old, &new, Duration::ZERO, SystemTime::now())
                        .await
                })
            })
            .collect();
        let mut rotated = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Rotation::Rotated => rotated += 1,
                Rotation::Reused { .. } => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(rotated, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_client_is_touched_on_first_use_then_at_most_once_a_minute() {
    let (_d, store) = test_store().await;
    grant(&store, "g1").await;
    let created = SystemTime::now();
    // First use: recorded even within the minute of the registration.
    let first = created + Duration::from_secs(5);
    store
        .touch_client("c1", first, Some(first + Duration::from_secs(100)))
        .await
        .unwrap();
    let expect_first = (
        crate::time::to_unix(first),
        Some(crate::time::to_unix(first + Duration::from_secs(100))),
    );
    assert_eq!(client_used(&store).await, expect_first);
    // Within the minute after it: nothing is written.
    let soon = first + Duration::from_secs(30);
    store
        .touch_client("c1", soon, Some(soon + Duration::from_secs(100)))
        .await
        .unwrap();
    assert_eq!(client_used(&store).await, expect_first);
    // A minute later: recorded again.
    let later_use = first + Duration::from_secs(61);
    store
        .touch_client("c1", later_use, Some(later_use + Duration::from_secs(100)))
        .await
        .unwrap();
    assert_eq!(
        client_used(&store).await,
        (
            crate::time::to_unix(later_use),
            Some(crate::time::to_unix(later_use + Duration::from_secs(100)))
        )
    );
    // A short lifetime (expiry within the minute): every use pushes it out, so a
    // client in use never expires between two writes.
    let short = later_use + Duration::from_secs(45);
    store
        .touch_client("c1", short, Some(short + Duration::from_secs(6)))
        .await
        .unwrap();
    let next = short + Duration::from_secs(4);
    store
        .touch_client("c1", next, Some(next + Duration::from_secs(6)))
        .await
        .unwrap();
    assert_eq!(
        client_used(&store).await,
        (
            crate::time::to_unix(next),
            Some(crate::time::to_unix(next + Duration::from_secs(6)))
        )
    );
}

/// Client c1's `last_used_at` and `expires_at`, in whole seconds.
async fn client_used(store: &Store) -> (i64, Option<i64>) {
    let c = store.find_client("c1").await.unwrap().unwrap();
    (
        crate::time::to_unix(c.last_used_at),
        c.expires_at.map(crate::time::to_unix),
    )
}

#[tokio::test]
async fn a_grant_is_bound_to_its_first_dpop_key_only() {
    let (_db, store) = test_store().await;
    grant(&store, "g1").await;
    assert_eq!(
        store.find_grant("g1").await.unwrap().unwrap().dpop_jkt,
        None
    );
    assert_eq!(store.bind_grant_dpop("g1", "key-a").await.unwrap(), "key-a");
    assert_eq!(store.bind_grant_dpop("g1", "key-b").await.unwrap(), "key-a");
    assert_eq!(
        store
            .find_grant("g1")
            .await
            .unwrap()
            .unwrap()
            .dpop_jkt
            .as_deref(),
        Some("key-a")
    );
}

#[tokio::test]
async fn a_row_holding_what_its_type_refuses_is_an_error_naming_the_column() {
    let (_d, store) = test_store().await;
    grant(&store, "g1").await;
    grant(&store, "g2").await;
    // Rows edited by hand, or written before the values were checked.
    for (id, column, value) in [
        ("g1", "client_id", "tab\there"),
        ("g2", "resource", "urn:not:http"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE oauth_grants SET {column} = $1 WHERE id = $2"
        )))
        .bind(value)
        .bind(id)
        .execute(&store.pool)
        .await
        .unwrap();
        let e = store.find_grant(id).await.unwrap_err().to_string();
        assert!(e.contains(column), "{column}: {e}");
        assert!(e.contains(&format!("{value:?}")), "{column}: {e}");
    }
}

#[tokio::test]
async fn a_session_whose_subject_is_no_subject_is_an_error_naming_the_column() {
    let (_d, store) = test_store().await;
    let alice: mcpgate_types::Subject = "alice".parse().unwrap();
    let expires = SystemTime::now() + Duration::from_secs(600);
    let row = SessionRow::new("d1".into(), Some(alice), "csrf".into(), expires);
    store.insert_session(&row).await.unwrap();
    let found = store.find_session("d1", SystemTime::now()).await.unwrap();
    assert_eq!(found.unwrap().subject.as_deref(), Some("alice"));
    // A row edited by hand: a control character is no RFC 7519 subject.
    sqlx::query("UPDATE oauth_sessions SET subject = $1 WHERE digest = $2")
        .bind("bad\u{7}subject")
        .bind("d1")
        .execute(&store.pool)
        .await
        .unwrap();
    let e = store
        .find_session("d1", SystemTime::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("subject"), "{e}");
}
