use std::time::{Duration, SystemTime};

use super::*;
use crate::{scopes, test_store};

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

async fn grant(store: &Store, id: &str) -> GrantRow {
    store
        .insert_client(&ClientRow::new(
            "c1".into(),
            ClientKind::Dynamic,
            serde_json::json!({}),
        ))
        .await
        .ok();
    let g = GrantRow::new(
        id.into(),
        "c1".into(),
        "alice".into(),
        scopes("notes:read"),
        "http://127.0.0.1/mcp".into(),
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
        client_id: "c1".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "x".into(),
        scopes: g.scopes.clone(),
        resource: g.resource.clone(),
        subject: "alice".into(),
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
    assert!(store.rotate_refresh(&first.digest, &second).await.unwrap());
    let third = RefreshRow::new(
        digest_hex("r3"),
        g.id.clone(),
        Some(first.digest.clone()),
        g.scopes.clone(),
        later(60),
    );
    assert!(!store.rotate_refresh(&first.digest, &third).await.unwrap());
    assert!(store.find_refresh(&third.digest).await.unwrap().is_none());
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
