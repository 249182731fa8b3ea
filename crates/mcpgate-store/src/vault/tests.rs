use super::*;
use crate::test_store;

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32], "test").unwrap()
}

fn kid_aad(kid: &str) -> Vec<u8> {
    kid.as_bytes().to_vec()
}

#[tokio::test]
async fn put_get_replace_delete() {
    let (_dir, store) = test_store().await;
    let k = key(1);
    assert!(
        store
            .vault_get(&k, "alice", "weather")
            .await
            .unwrap()
            .is_none()
    );
    store
        .vault_put(&k, "alice", "weather", "key-one")
        .await
        .unwrap();
    store
        .vault_put(&k, "alice", "weather", "key-two")
        .await
        .unwrap();
    store
        .vault_put(&k, "bob", "weather", "bobs-key")
        .await
        .unwrap();
    let got = store
        .vault_get(&k, "alice", "weather")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose(), "key-two");
    assert_eq!(format!("{got:?}"), "VaultSecret(<redacted>)");
    let list = store.vault_list("alice").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].upstream, "weather");
    assert!(store.vault_delete("alice", "weather").await.unwrap());
    assert!(!store.vault_delete("alice", "weather").await.unwrap());
    assert!(
        store
            .vault_get(&k, "alice", "weather")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .vault_get(&k, "bob", "weather")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "bobs-key"
    );
}

#[tokio::test]
async fn bad_secrets_are_refused_with_a_reason() {
    let (_dir, store) = test_store().await;
    let k = key(1);
    for (bad, says) in [("", "empty"), ("a\nb", "one line")] {
        let e = store.vault_put(&k, "alice", "w", bad).await.unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let long = "x".repeat(MAX_SECRET_LEN + 1);
    assert!(store.vault_put(&k, "alice", "w", &long).await.is_err());
    assert!(store.vault_put(&k, "", "w", "v").await.is_err());
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let (_dir, store) = test_store().await;
    let k = key(1);
    store
        .vault_put(&k, "alice", "weather", "alices-key")
        .await
        .unwrap();
    store
        .vault_put(&k, "bob", "weather", "bobs-key")
        .await
        .unwrap();
    sqlx::query(
        "UPDATE vault_secrets SET sealed = (SELECT sealed FROM vault_secrets WHERE subject = 'alice')
         WHERE subject = 'bob'",
    )
    .execute(&store.pool)
    .await
    .unwrap();
    let e = store.vault_get(&k, "bob", "weather").await.unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Seal {
                source: SealError::Damaged,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains("alices-key"));
}

#[tokio::test]
async fn a_wrong_key_is_named_and_changes_nothing() {
    let (_dir, store) = test_store().await;
    store
        .vault_put(&key(1), "alice", "w", "secret")
        .await
        .unwrap();
    let e = store.check_master_key(&key(2)).await.unwrap_err();
    assert!(e.to_string().contains("MCPGATE_MASTER_KEY"), "{e}");
    assert!(store.vault_get(&key(2), "alice", "w").await.is_err());
    let e = store
        .rotate_master_key(&key(2), &key(3), &kid_aad)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    store.check_master_key(&key(1)).await.unwrap();
    assert_eq!(
        store
            .vault_get(&key(1), "alice", "w")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "secret"
    );
}

#[tokio::test]
async fn rotation_moves_every_sealed_value() {
    let (_dir, store) = test_store().await;
    let (old, new) = (key(1), key(2));
    store.vault_put(&old, "alice", "w", "secret").await.unwrap();
    let scopes = crate::scopes("repo");
    store
        .put_federated_tokens(
            &old,
            "alice",
            "github",
            crate::federation::NewTokens {
                access: "gho_access",
                refresh: Some("ghr_refresh"),
                scopes: &scopes,
                expires_at: None,
                keep_refresh: false,
            },
        )
        .await
        .unwrap();
    let sealed_key = old.seal(b"pkcs8", b"kid-1").unwrap();
    store
        .add_signing_key(
            &crate::oauth::SigningKeyRow::new("kid-1".into(), "ES256".into(), sealed_key),
            SystemTime::now(),
        )
        .await
        .unwrap();
    let done = store.rotate_master_key(&old, &new, &kid_aad).await.unwrap();
    assert_eq!(
        (done.vault_secrets, done.federated_tokens, done.signing_keys),
        (1, 1, 1)
    );
    assert!(store.vault_get(&old, "alice", "w").await.is_err());
    assert_eq!(
        store
            .vault_get(&new, "alice", "w")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "secret"
    );
    let t = store
        .federated_tokens(&new, "alice", "github")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.access.expose(), "gho_access");
    assert_eq!(t.refresh.unwrap().expose(), "ghr_refresh");
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(new.open(&keys[0].sealed, b"kid-1").unwrap(), b"pkcs8");
    store.check_master_key(&new).await.unwrap();
    assert!(store.check_master_key(&old).await.is_err());
    assert!(store.rotate_master_key(&new, &new, &kid_aad).await.is_err());
}
