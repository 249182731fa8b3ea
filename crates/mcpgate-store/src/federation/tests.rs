use super::*;
use crate::{scopes, test_store};

fn sub(s: &str) -> Subject {
    s.parse().unwrap()
}

fn key() -> MasterKey {
    MasterKey::from_bytes(&[9; 32], "test").unwrap()
}

#[tokio::test]
async fn identities_link_to_local_users() {
    let (_dir, store) = test_store().await;
    assert!(
        store
            .find_federated_identity("gh", &sub("42"))
            .await
            .unwrap()
            .is_none()
    );
    store
        .create_federated_user("octo", Some("Octo@Example.com"), &scopes("notes"))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_user_by_email("octo@example.COM")
            .await
            .unwrap()
            .as_deref(),
        Some("octo")
    );
    store
        .link_federated_identity(
            "gh",
            &sub("42"),
            &sub("octo"),
            Some("octo@example.com"),
            Some("octocat"),
        )
        .await
        .unwrap();
    store
        .link_federated_identity("gh", &sub("42"), &sub("octo"), None, Some("octocat2"))
        .await
        .unwrap();
    let id = store
        .find_federated_identity("gh", &sub("42"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            id.subject.as_str(),
            id.external_subject.as_str(),
            id.login.as_deref()
        ),
        ("octo", "42", Some("octocat2"))
    );
    assert_eq!(
        store.federated_identities_of("octo").await.unwrap().len(),
        1
    );
    // A random password nobody knows: password sign-in fails.
    assert!(store.check_password("octo", "x").await.unwrap().is_none());
    assert!(store.set_user_email("nobody", Some("a@b")).await.is_err());
}

#[tokio::test]
async fn tokens_keep_refresh_and_track_revocation() {
    let (_dir, store) = test_store().await;
    let k = key();
    let s = scopes("openid email");
    let first = NewTokens {
        access: "at-1",
        refresh: Some("rt-1"),
        scopes: &s,
        expires_at: Some(SystemTime::now() + Duration::from_secs(60)),
        keep_refresh: false,
    };
    store
        .put_federated_tokens(&k, "alice", "idp", first)
        .await
        .unwrap();
    store
        .put_federated_tokens(
            &k,
            "alice",
            "idp",
            NewTokens {
                access: "at-2",
                refresh: None,
                keep_refresh: true,
                ..first
            },
        )
        .await
        .unwrap();
    let t = store
        .federated_tokens(&k, "alice", "idp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.access.expose(), "at-2");
    assert_eq!(t.refresh.as_ref().unwrap().expose(), "rt-1");
    assert!(t.revoked_at.is_none());
    assert!(store.mark_federated_revoked("alice", "idp").await.unwrap());
    assert!(!store.mark_federated_revoked("alice", "idp").await.unwrap());
    assert_eq!(
        store.revoked_federations_of("alice").await.unwrap(),
        ["idp"]
    );
    let t = store
        .federated_tokens(&k, "alice", "idp")
        .await
        .unwrap()
        .unwrap();
    assert!(t.revoked_at.is_some());
    store
        .put_federated_tokens(&k, "alice", "idp", first)
        .await
        .unwrap();
    assert!(
        store
            .revoked_federations_of("alice")
            .await
            .unwrap()
            .is_empty()
    );
    // A new sign-in without a refresh token drops the old one.
    let again = NewTokens {
        access: "at-3",
        refresh: None,
        keep_refresh: false,
        ..first
    };
    store
        .put_federated_tokens(&k, "alice", "idp", again)
        .await
        .unwrap();
    let t = store
        .federated_tokens(&k, "alice", "idp")
        .await
        .unwrap()
        .unwrap();
    assert!(t.refresh.is_none());
    assert!(
        store
            .federated_tokens(&k, "bob", "idp")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn logins_are_single_use_and_expire() {
    let (_dir, store) = test_store().await;
    let k = key();
    let login = FederationLogin::new("gh", "verifier-123", "nonce-456", "/account");
    store
        .begin_federation_login(&k, "state-1", &login, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        store.take_federation_login(&k, "state-1").await.unwrap(),
        Some(login.clone())
    );
    assert_eq!(
        store.take_federation_login(&k, "state-1").await.unwrap(),
        None
    );
    assert_eq!(
        store.take_federation_login(&k, "other").await.unwrap(),
        None
    );
    store
        .begin_federation_login(&k, "state-2", &login, Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        store.take_federation_login(&k, "state-2").await.unwrap(),
        None
    );
}
