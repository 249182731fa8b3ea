use argon2::{Argon2, PasswordHash, PasswordHasher as _};

use super::DUMMY_HASH;
use crate::error::{Kind, StoreError};
use crate::{Store, scopes, test_sqlite_store, test_store};

#[tokio::test]
async fn add_check_passwd_remove() {
    let (_dir, store) = test_store().await;
    store
        .add_user("alice", "correct horse", &scopes("notes:read"))
        .await
        .unwrap();

    let alice = store
        .check_password("alice", "correct horse")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.scopes, scopes("notes:read"));
    assert!(alice.password_hash.starts_with("$argon2id$"));
    assert!(!alice.password_hash.contains("correct horse"));
    assert!(
        store
            .check_password("alice", "wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .check_password("bob", "correct horse")
            .await
            .unwrap()
            .is_none()
    );

    store.set_password("alice", "battery staple").await.unwrap();
    assert!(
        store
            .check_password("alice", "correct horse")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .check_password("alice", "battery staple")
            .await
            .unwrap()
            .is_some()
    );

    store.remove_user("alice").await.unwrap();
    assert!(store.find_user("alice").await.unwrap().is_none());
    assert!(
        store
            .check_password("alice", "battery staple")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn user_errors_are_clear() {
    let (_dir, store) = test_store().await;
    store.add_user("alice", "pw", &scopes("")).await.unwrap();
    let dup = store
        .add_user("alice", "pw2", &scopes(""))
        .await
        .unwrap_err();
    assert!(matches!(
        dup,
        StoreError::Duplicate {
            kind: Kind::User,
            ..
        }
    ));
    assert_eq!(dup.to_string(), "user \"alice\" already exists");
    let empty = store.add_user("bob", "", &scopes("")).await.unwrap_err();
    assert!(matches!(empty, StoreError::EmptyPassword));
    assert!(matches!(
        store.set_password("alice", "").await,
        Err(StoreError::EmptyPassword)
    ));
    let bad = store.add_user("a:b", "pw", &scopes("")).await.unwrap_err();
    assert!(matches!(
        bad,
        StoreError::InvalidName {
            kind: Kind::User,
            ..
        }
    ));
    let missing = store.set_password("nobody", "pw").await.unwrap_err();
    assert_eq!(missing.to_string(), "no user named \"nobody\"");
    assert!(matches!(
        store.remove_user("nobody").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn users_survive_reopening_and_passwords_never_reach_the_disk() {
    let (dir, store) = test_sqlite_store().await;
    store
        .add_user("carol", "s3cret-passphrase", &scopes("*"))
        .await
        .unwrap();
    store.close().await;
    let data = dir.path().join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(17).any(|w| w == b"s3cret-passphrase"));
    }
    let store = Store::open(&data).await.unwrap();
    let carol = store
        .check_password("carol", "s3cret-passphrase")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.scopes, scopes("*"));
    assert!(
        !format!("{carol:?}").contains("argon2"),
        "Debug shows the hash"
    );
}

#[test]
fn the_dummy_hash_costs_what_a_real_one_does() {
    let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
    let real_text = Argon2::default().hash_password(b"x").unwrap().to_string();
    let real = PasswordHash::new(&real_text).unwrap();
    assert_eq!(dummy.algorithm, real.algorithm);
    assert_eq!(dummy.version, real.version);
    assert_eq!(dummy.params, real.params);
    assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
}

#[tokio::test]
async fn removing_a_user_revokes_their_grants_only() {
    use crate::oauth::GrantRow;
    use std::time::{Duration, SystemTime};
    let (_dir, store) = test_store().await;
    store.add_user("alice", "pw-a", &scopes("")).await.unwrap();
    store.add_user("bob", "pw-b", &scopes("")).await.unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    for (id, who) in [("g-alice", "alice"), ("g-bob", "bob")] {
        let g = GrantRow::new(
            id.into(),
            "client".parse().unwrap(),
            crate::subject(who),
            scopes("notes:read"),
            "http://127.0.0.1/mcp".parse().unwrap(),
            later,
        );
        store.insert_grant(&g).await.unwrap();
    }
    store.remove_user("alice").await.unwrap();
    let now = SystemTime::now();
    let alice = store.find_grant("g-alice").await.unwrap().unwrap();
    assert!(!alice.is_active(now), "a removed user's grant must end");
    let bob = store.find_grant("g-bob").await.unwrap().unwrap();
    assert!(bob.is_active(now), "other users keep theirs");
    // Removing an unknown user changes nothing and says so.
    assert!(store.remove_user("alice").await.is_err());
}

#[test]
fn a_taken_name_gets_a_numbered_suffix_nineteen_times_at_most() {
    let names: Vec<String> = crate::user_name_candidates("bob").collect();
    assert_eq!(names.len(), 20);
    assert_eq!(names[0], "bob");
    assert_eq!(names[1], "bob-1");
    assert_eq!(names[19], "bob-19");
    // A base from `user_name_from` keeps every candidate a valid name.
    let long = crate::user_name_from(&"x".repeat(100));
    assert!(crate::user_name_candidates(&long).all(|n| n.len() <= 64));
}
