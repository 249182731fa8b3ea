//! Every multi-statement transaction, failed mid-way the way a full disk fails
//! it (SQLite rolls the whole transaction back by itself), must leave nothing
//! half-done and hand its connection back clean: later writes are committed
//! and visible to another connection.
//!
//! The failure is injected by a trigger that runs `RAISE(ROLLBACK, …)`:
//! the same state SQLite leaves after `SQLITE_FULL` or `SQLITE_IOERR` undoes
//! a transaction, without needing a full filesystem (the end-to-end test in
//! `crates/mcpgate/tests/e2e/disk_full.rs` fills a real one).

use std::time::{Duration, SystemTime};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _, SqliteConnection};

use crate::oauth::{
    ClientKind, ClientRow, CodeOutcome, CodeRow, GrantRow, RefreshRow, SigningKeyRow,
};
use crate::{MasterKey, Store, scopes, test_sqlite_store};

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

/// A connection of its own (outside the pool) for installing triggers.
async fn side_connection(store: &Store) -> SqliteConnection {
    let opts = SqliteConnectOptions::new()
        .filename(store.path().expect("a SQLite store"))
        .busy_timeout(Duration::from_secs(5));
    SqliteConnection::connect_with(&opts)
        .await
        .expect("side connection")
}

/// Makes `event` (`"INSERT ON oauth_refresh_tokens"`) fail and roll back the
/// transaction it runs in, until [`heal`].
async fn inject(store: &Store, event: &str) {
    let mut c = side_connection(store).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TRIGGER injected_fault BEFORE {event} BEGIN SELECT RAISE(ROLLBACK, 'injected fault: database or disk is full'); END"
    )))
    .execute(&mut c)
    .await
    .expect("create trigger");
}

async fn heal(store: &Store) {
    let mut c = side_connection(store).await;
    sqlx::raw_sql("DROP TRIGGER injected_fault")
        .execute(&mut c)
        .await
        .expect("drop trigger");
}

/// After a failure: a later transaction that is rolled back (as a refresh
/// that loses a race is) and a later write must leave the pool clean: the
/// write is visible to a second store on the same file, and every pooled
/// connection is outside a transaction.
async fn assert_pool_clean(store: &Store, tag: &str) {
    let mut tx = store.pool.begin().await.expect("begin");
    sqlx::query("UPDATE oauth_clients SET last_used_at = last_used_at WHERE client_id = 'none'")
        .execute(&mut *tx)
        .await
        .expect("update");
    tx.rollback().await.expect("rollback");
    let id = format!("after-{tag}");
    store
        .insert_client(&ClientRow::new(
            id.parse().unwrap(),
            ClientKind::Dynamic,
            serde_json::json!({}),
        ))
        .await
        .expect("a write after the failure");
    let dir = store
        .path()
        .and_then(std::path::Path::parent)
        .expect("data dir");
    let other = Store::open(dir).await.expect("second store");
    assert!(
        other.find_client(&id).await.expect("read").is_some(),
        "{tag}: a write acknowledged after the failure is not visible to another connection"
    );
    other.close().await;
    let mut held = Vec::new();
    for _ in 0..super::MAX_CONNECTIONS {
        held.push(store.pool.acquire().await.expect("acquire"));
    }
    for conn in &mut held {
        assert!(
            !conn.is_in_transaction(),
            "{tag}: sqlx counts a transaction"
        );
        sqlx::raw_sql("BEGIN; ROLLBACK")
            .execute(&mut **conn)
            .await
            .unwrap_or_else(|e| panic!("{tag}: a pooled connection is inside a transaction: {e}"));
    }
}

async fn client_and_grant(store: &Store, client: &str, grant: &str, subject: &str) -> GrantRow {
    store
        .insert_client(&ClientRow::new(
            client.parse().unwrap(),
            ClientKind::Dynamic,
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    let g = GrantRow::new(
        grant.into(),
        client.parse().unwrap(),
        crate::subject(subject),
        scopes("notes:read"),
        "http://127.0.0.1/mcp".parse().unwrap(),
        later(3600),
    );
    store.insert_grant(&g).await.unwrap();
    g
}

#[tokio::test]
async fn rotate_refresh_failing_leaves_the_old_token_unrotated_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    let g = client_and_grant(&store, "c1", "g1", "alice").await;
    let old = RefreshRow::new(
        "old".into(),
        g.id.clone(),
        None,
        g.scopes.clone(),
        later(60),
    );
    store.insert_refresh(&old).await.unwrap();
    inject(&store, "INSERT ON oauth_refresh_tokens").await;
    let new = RefreshRow::new(
        "new".into(),
        g.id.clone(),
        Some("old".into()),
        g.scopes.clone(),
        later(60),
    );
    assert!(
        store
            .rotate_refresh("old", &new, Duration::ZERO, SystemTime::now())
            .await
            .is_err()
    );
    heal(&store).await;
    let old_now = store.find_refresh("old").await.unwrap().unwrap();
    assert!(
        old_now.rotated_at.is_none(),
        "the failed rotation half-happened"
    );
    assert!(store.find_refresh("new").await.unwrap().is_none());
    assert_pool_clean(&store, "rotate_refresh").await;
    // And the token still rotates once the storage is back.
    assert_eq!(
        store
            .rotate_refresh("old", &new, Duration::ZERO, SystemTime::now())
            .await
            .unwrap(),
        crate::oauth::Rotation::Rotated
    );
}

#[tokio::test]
async fn spend_code_failing_leaves_the_code_unspent_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    let g = client_and_grant(&store, "c1", "g1", "alice").await;
    let code = CodeRow {
        digest: "code".into(),
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
    let refresh = RefreshRow::new("r1".into(), g.id.clone(), None, g.scopes.clone(), later(60));
    inject(&store, "INSERT ON oauth_refresh_tokens").await;
    assert!(store.spend_code("code", Some(&refresh)).await.is_err());
    heal(&store).await;
    assert!(
        matches!(
            store.peek_code("code").await.unwrap(),
            CodeOutcome::Fresh(_)
        ),
        "the failed exchange spent the code"
    );
    assert_pool_clean(&store, "spend_code").await;
    // Once the storage is back the retry wins, once.
    assert!(store.spend_code("code", Some(&refresh)).await.unwrap());
    assert!(store.find_refresh("r1").await.unwrap().is_some());
    assert!(!store.spend_code("code", None).await.unwrap());
    assert!(matches!(
        store.peek_code("code").await.unwrap(),
        CodeOutcome::Replayed(_)
    ));
}

#[tokio::test]
async fn delete_client_failing_keeps_the_client_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    client_and_grant(&store, "c1", "g1", "alice").await;
    inject(&store, "DELETE ON oauth_grants").await;
    assert!(store.delete_client("c1").await.is_err());
    heal(&store).await;
    assert!(store.find_client("c1").await.unwrap().is_some());
    assert!(store.find_grant("g1").await.unwrap().is_some());
    assert_pool_clean(&store, "delete_client").await;
}

#[tokio::test]
async fn add_signing_key_failing_keeps_the_old_key_active_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    let first = SigningKeyRow::new("k1".into(), "ES256".into(), vec![1, 2, 3]);
    store.add_signing_key(&first, later(60)).await.unwrap();
    inject(&store, "INSERT ON oauth_signing_keys").await;
    let second = SigningKeyRow::new("k2".into(), "ES256".into(), vec![4, 5, 6]);
    assert!(store.add_signing_key(&second, later(60)).await.is_err());
    heal(&store).await;
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].superseded_at.is_none(),
        "the failed rotation half-happened"
    );
    assert_pool_clean(&store, "add_signing_key").await;
}

#[tokio::test]
async fn remove_user_failing_keeps_the_user_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    store
        .add_user("alice", "a long password", &mcpgate_types::ScopeSet::new())
        .await
        .unwrap();
    store
        .put_consent("alice", "c1", &scopes("notes:read"))
        .await
        .unwrap();
    client_and_grant(&store, "c1", "g1", "alice").await;
    inject(&store, "DELETE ON oauth_consents").await;
    assert!(store.remove_user("alice").await.is_err());
    heal(&store).await;
    assert!(store.find_user("alice").await.unwrap().is_some());
    let g = store.find_grant("g1").await.unwrap().unwrap();
    assert!(g.revoked_at.is_none(), "the failed removal half-happened");
    assert_pool_clean(&store, "remove_user").await;
}

#[tokio::test]
async fn purge_expired_failing_deletes_nothing_and_leaves_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    let g = client_and_grant(&store, "c1", "g1", "alice").await;
    let stale = RefreshRow::new(
        "stale".into(),
        g.id.clone(),
        None,
        g.scopes.clone(),
        later(1),
    );
    store.insert_refresh(&stale).await.unwrap();
    inject(&store, "DELETE ON oauth_refresh_tokens").await;
    assert!(store.purge_expired(later(10)).await.is_err());
    heal(&store).await;
    assert!(store.find_refresh("stale").await.unwrap().is_some());
    assert_pool_clean(&store, "purge_expired").await;
}

#[tokio::test]
async fn rotate_master_key_failing_keeps_the_old_seal_and_the_pool_clean() {
    let (_d, store) = test_sqlite_store().await;
    let old = MasterKey::from_bytes(&[1; 32], "test").unwrap();
    let new = MasterKey::from_bytes(&[2; 32], "test").unwrap();
    store
        .vault_put(&old, "alice", "weather", "key-one")
        .await
        .unwrap();
    store
        .vault_put(&old, "bob", "weather", "key-two")
        .await
        .unwrap();
    inject(&store, "UPDATE ON vault_secrets WHEN NEW.subject = 'bob'").await;
    assert!(
        store
            .rotate_master_key(&old, &new, &|kid: &str| kid.as_bytes().to_vec())
            .await
            .is_err()
    );
    heal(&store).await;
    let got = store.vault_get(&old, "alice", "weather").await.unwrap();
    assert_eq!(
        got.map(|s| s.expose().to_owned()).as_deref(),
        Some("key-one"),
        "the failed rotation half-happened"
    );
    assert_pool_clean(&store, "rotate_master_key").await;
}

#[tokio::test]
async fn a_full_database_is_reported_as_unavailable() {
    let (_d, store) = test_sqlite_store().await;
    let mut c = side_connection(&store).await;
    // The database may not grow: the next page it needs fails with SQLITE_FULL.
    sqlx::raw_sql("PRAGMA max_page_count = 1")
        .execute(&mut c)
        .await
        .unwrap();
    let e = sqlx::query("INSERT INTO oauth_consents (subject, client_id, scopes, created_at) VALUES ('a', 'b', $1, 0)")
        .bind("x".repeat(64 * 1024))
        .execute(&mut c)
        .await
        .expect_err("the database is full");
    let e = crate::StoreError::from(e);
    assert!(e.is_unavailable(), "{e:?}");
    assert!(e.to_string().contains("storage unavailable"), "{e}");
}
