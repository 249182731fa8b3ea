//! The vault at rest: the database file and its WAL never hold a secret in the
//! clear; rotation re-seals everything and the old key stops opening it; a
//! wrong master key is refused with a clear error and loses nothing.

use std::path::Path;

use mcpgate_store::federation::NewTokens;
use mcpgate_store::{MasterKey, Store, VaultError};

const SECRET: &str = "sk-live-PLAINTEXT-canary-7c1e9a";
const IDP_TOKEN: &str = "gho_CANARYaccessTOKEN4242";

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32], "test").unwrap()
}

/// The bytes of the database file and of its `-wal` and `-shm` companions.
fn on_disk(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).unwrap();
    for ext in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(ext);
        if let Ok(b) = std::fs::read(Path::new(&p)) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn fill(store: &Store, k: &MasterKey) {
    for user in ["alice", "bob", "carol"] {
        store
            .vault_put(k, user, "weather", &format!("{SECRET}-{user}"))
            .await
            .unwrap();
    }
    let scopes: mcpgate_types::ScopeSet = "repo".parse().unwrap();
    store
        .put_federated_tokens(
            k,
            "alice",
            "github",
            NewTokens {
                access: IDP_TOKEN,
                refresh: Some(IDP_TOKEN),
                scopes: &scopes,
                expires_at: None,
                keep_refresh: false,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn no_plaintext_in_the_database_file_or_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    let k = key(1);
    fill(&store, &k).await;
    // Replaced values must not linger either.
    store
        .vault_put(&k, "alice", "weather", &format!("{SECRET}-new"))
        .await
        .unwrap();
    let db = store.path().expect("a SQLite store").to_path_buf();
    // While open: the data sits in the WAL.
    let bytes = on_disk(&db);
    assert!(bytes.len() > 4096, "the database holds something");
    assert!(
        contains(&bytes, "weather"),
        "the search sees clear-text columns"
    );
    assert!(
        !contains(&bytes, "PLAINTEXT-canary"),
        "plaintext secret in the database or WAL"
    );
    assert!(
        !contains(&bytes, "CANARYaccess"),
        "plaintext IdP token in the database or WAL"
    );
    // After a checkpoint: the data sits in the main file.
    store.close().await;
    let bytes = on_disk(&db);
    assert!(contains(&bytes, "weather"));
    assert!(!contains(&bytes, "PLAINTEXT-canary"));
    assert!(!contains(&bytes, "CANARYaccess"));
    // And it still reads back.
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    let got = store
        .vault_get(&k, "bob", "weather")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose(), format!("{SECRET}-bob"));
}

#[tokio::test]
async fn rotation_reseals_and_the_old_key_no_longer_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).await.unwrap();
    let (old, new) = (key(1), key(2));
    fill(&store, &old).await;
    let before = on_disk(store.path().expect("a SQLite store"));
    let done = store
        .rotate_master_key(&old, &new, &|kid: &str| kid.as_bytes().to_vec())
        .await
        .unwrap();
    assert_eq!(done.vault_secrets, 3);
    assert_eq!(done.federated_tokens, 1);
    store.close().await;

    let store = Store::open(&data).await.unwrap();
    store.check_master_key(&new).await.unwrap();
    let e = store.check_master_key(&old).await.unwrap_err();
    assert!(matches!(e, VaultError::Seal { .. }));
    assert!(store.vault_get(&old, "alice", "weather").await.is_err());
    for user in ["alice", "bob", "carol"] {
        let got = store
            .vault_get(&new, user, "weather")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), format!("{SECRET}-{user}"));
    }
    let t = store
        .federated_tokens(&new, "alice", "github")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.access.expose(), IDP_TOKEN);
    assert!(!contains(&before, "PLAINTEXT-canary"));
    assert!(!contains(
        &on_disk(store.path().expect("a SQLite store")),
        "PLAINTEXT-canary"
    ));
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_clearly_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).await.unwrap();
    let right = key(1);
    fill(&store, &right).await;
    let wrong = key(2);

    let e = store
        .check_master_key(&wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("MCPGATE_MASTER_KEY"), "says what to do: {e}");
    assert!(
        e.contains(&format!("{:02x}", wrong.id())),
        "names the key ids: {e}"
    );
    let e = store
        .vault_get(&wrong, "alice", "weather")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("alice") && e.contains("weather") && !e.contains(SECRET),
        "{e}"
    );
    // A rotation from the wrong key fails as a whole.
    let e = store
        .rotate_master_key(&wrong, &key(3), &|kid: &str| kid.as_bytes().to_vec())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing was changed"), "{e}");
    store.close().await;

    let store = Store::open(&data).await.unwrap();
    store.check_master_key(&right).await.unwrap();
    for user in ["alice", "bob", "carol"] {
        let got = store
            .vault_get(&right, user, "weather")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), format!("{SECRET}-{user}"));
    }
}
