use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, SystemTime};

use crate::error::{Kind, StoreError};
use crate::{DB_FILE, KEY_PREFIX, KeyDigest, Store, scopes, test_sqlite_store, test_store};

#[tokio::test]
async fn create_returns_a_prefixed_base62_key_found_by_digest() {
    let (_dir, store) = test_store().await;
    let key = store
        .create_api_key(
            "ci",
            &crate::subject("ci-bot"),
            &scopes("notes:read notes:write"),
            None,
        )
        .await
        .unwrap();
    let rest = key.strip_prefix(KEY_PREFIX).expect("prefix");
    assert!(rest.len() >= 32, "{} random chars", rest.len());
    assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()));

    let found = store
        .find_api_key(&KeyDigest::of(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "ci");
    assert_eq!(found.subject, "ci-bot");
    assert_eq!(found.scopes, scopes("notes:read notes:write"));
    assert!(key.starts_with(&found.prefix) && found.prefix.len() < key.len() / 2);
    assert_eq!(found.expires_at, None);
    assert_eq!(found.revoked_at, None);

    let other = KeyDigest::of(&format!("{key}x"));
    assert!(store.find_api_key(&other).await.unwrap().is_none());
}

#[tokio::test]
async fn keys_are_unique_and_names_are_checked() {
    let (_dir, store) = test_store().await;
    let a = store
        .create_api_key("a", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    let b = store
        .create_api_key("b", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    assert_ne!(a, b);
    let dup = store
        .create_api_key("a", &crate::subject("s"), &scopes(""), None)
        .await;
    assert!(
        matches!(
            dup,
            Err(StoreError::Duplicate {
                kind: Kind::ApiKey,
                ..
            })
        ),
        "{dup:?}"
    );
    assert_eq!(dup.unwrap_err().to_string(), "API key \"a\" already exists");
    for bad in ["", "has space", "x:y", &"n".repeat(65)] {
        let r = store
            .create_api_key(bad, &crate::subject("s"), &scopes(""), None)
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidName { .. })),
            "{bad:?}: {r:?}"
        );
    }
    let long = crate::subject(&"s".repeat(257));
    let r = store.create_api_key("q", &long, &scopes(""), None).await;
    assert!(matches!(r, Err(StoreError::InvalidSubject(_))), "{r:?}");
}

#[tokio::test]
async fn list_revoke_and_expire() {
    let (_dir, store) = test_store().await;
    let past = SystemTime::now() - Duration::from_secs(60);
    store
        .create_api_key("old", &crate::subject("s"), &scopes("*"), Some(past))
        .await
        .unwrap();
    let live = store
        .create_api_key("live", &crate::subject("s"), &scopes("*"), None)
        .await
        .unwrap();

    let list = store.list_api_keys().await.unwrap();
    assert_eq!(list.len(), 2);
    let old = list.iter().find(|k| k.name == "old").unwrap();
    assert!(old.is_expired(SystemTime::now()));
    assert!(
        !list
            .iter()
            .find(|k| k.name == "live")
            .unwrap()
            .is_expired(SystemTime::now())
    );

    assert!(store.revoke_api_key("live").await.unwrap());
    assert!(
        !store.revoke_api_key("live").await.unwrap(),
        "second revoke reports already revoked"
    );
    let found = store
        .find_api_key(&KeyDigest::of(&live))
        .await
        .unwrap()
        .unwrap();
    assert!(found.revoked_at.is_some());
    let missing = store.revoke_api_key("nope").await;
    assert!(
        matches!(
            missing,
            Err(StoreError::NotFound {
                kind: Kind::ApiKey,
                ..
            })
        ),
        "{missing:?}"
    );
    assert_eq!(
        missing.unwrap_err().to_string(),
        "no API key named \"nope\""
    );
}

#[tokio::test]
async fn only_digests_reach_the_disk_and_reopening_keeps_them() {
    let (dir, store) = test_sqlite_store().await;
    let key = store
        .create_api_key("k", &crate::subject("s"), &scopes("a"), None)
        .await
        .unwrap();
    store.close().await;

    let data = dir.path().join("data");
    let mut digest_seen = false;
    let hex: String = KeyDigest::of(&key)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for entry in std::fs::read_dir(&data).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, key.as_bytes()), "the key is on disk");
        assert!(
            !contains(&bytes, &key.as_bytes()[KEY_PREFIX.len() + 6..]),
            "the key's secret part is on disk"
        );
        digest_seen |= contains(&bytes, hex.as_bytes());
    }
    assert!(
        digest_seen,
        "the digest is stored (so the scan above read the data)"
    );

    let store = Store::open(&data).await.unwrap();
    let found = store
        .find_api_key(&KeyDigest::of(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.name, "k");
}

#[tokio::test]
async fn the_data_dir_is_private() {
    let (dir, store) = test_sqlite_store().await;
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join(DB_FILE)), 0o600);
    assert_eq!(store.path(), Some(data.join(DB_FILE).as_path()));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
