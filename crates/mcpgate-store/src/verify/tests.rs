use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mcpgate_guard::{AuthMethod, Chain, Credential, Verifier, VerifyError};

use crate::{ApiKeyVerifier, BasicVerifier, scopes, test_store};

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        user: user.into(),
        password: password.into(),
    }
}

fn invalid(r: Result<mcpgate_guard::Verified, VerifyError>) -> String {
    match r {
        Err(VerifyError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn api_keys_verify_from_either_header() {
    let (_dir, store) = test_store().await;
    let key = store
        .create_api_key("ci", &crate::subject("ci-bot"), &scopes("notes:read"), None)
        .await
        .unwrap();
    let v = ApiKeyVerifier::new(store);
    for cred in [
        Credential::ApiKey(key.clone()),
        Credential::Bearer(key.clone()),
    ] {
        assert!(v.accepts(&cred));
        let ok = v.verify(&cred).await.unwrap();
        assert_eq!(ok.principal().subject(), "ci-bot");
        assert_eq!(ok.principal().method(), AuthMethod::ApiKey);
        assert!(ok.principal().has_scope("notes:read") && !ok.principal().has_scope("notes:write"));
        assert_eq!(ok.principal().claims()["key_name"], "ci");
        assert!(ok.cache_for() <= Duration::from_secs(1));
    }
    assert!(!v.accepts(&Credential::Bearer("eyJhbGciOi.x.y".into())));
    assert!(!v.accepts(&basic("u", "mcpg_x")));
    assert_eq!(
        v.verify(&Credential::Bearer("other".into()))
            .await
            .unwrap_err(),
        VerifyError::NotMine
    );
}

#[tokio::test]
async fn wrong_malformed_revoked_and_expired_keys_are_refused_with_a_reason() {
    let (_dir, store) = test_store().await;
    let key = store
        .create_api_key("gone", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    let past = SystemTime::now() - Duration::from_secs(5);
    let old = store
        .create_api_key("old", &crate::subject("s"), &scopes(""), Some(past))
        .await
        .unwrap();
    let v = ApiKeyVerifier::new(store.clone());

    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert!(invalid(v.verify(&Credential::ApiKey(wrong)).await).starts_with("unknown API key"));
    assert!(
        invalid(v.verify(&Credential::ApiKey("mcpg_short".into())).await)
            .starts_with("malformed API key")
    );

    let why = invalid(v.verify(&Credential::ApiKey(old)).await);
    assert!(why.starts_with("API key \"old\" expired at 20"), "{why}");

    store.revoke_api_key("gone").await.unwrap();
    let why = invalid(v.verify(&Credential::Bearer(key.clone())).await);
    assert!(
        why.starts_with("API key \"gone\" was revoked at 20"),
        "{why}"
    );
    assert!(!why.contains(&key));
}

#[tokio::test]
async fn a_revoke_reaches_a_caching_chain_within_a_second() {
    let (dir, store) = test_store().await;
    let key = store
        .create_api_key("k", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    let chain = Chain::new(vec![Arc::new(ApiKeyVerifier::new(store.clone()))]);
    let cred = Credential::ApiKey(key);
    chain.authenticate(&cred).await.unwrap();

    // Revoked through a second handle, as the CLI in another process would.
    let cli = crate::Store::connect(dir.url()).await.unwrap();
    cli.revoke_api_key("k").await.unwrap();
    let revoked = Instant::now();
    while chain.authenticate(&cred).await.is_ok() {
        assert!(
            revoked.elapsed() < Duration::from_millis(1500),
            "still accepted after 1.5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_unreadable_store_is_unavailable_never_allowed() {
    let (_dir, store) = test_store().await;
    let key = store
        .create_api_key("k", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    store.add_user("u", "pw", &scopes("")).await.unwrap();
    store.close().await;
    let r = ApiKeyVerifier::new(store.clone())
        .verify(&Credential::ApiKey(key))
        .await;
    assert!(matches!(r, Err(VerifyError::Unavailable(_))), "{r:?}");
    let r = BasicVerifier::new(store).verify(&basic("u", "pw")).await;
    assert!(matches!(r, Err(VerifyError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn basic_users_verify() {
    let (_dir, store) = test_store().await;
    store
        .add_user("alice", "pw-alice", &scopes("notes:read notes:write"))
        .await
        .unwrap();
    let v = BasicVerifier::new(store);
    assert!(v.accepts(&basic("alice", "x")));
    assert!(!v.accepts(&Credential::Bearer("mcpg_x".into())));

    let ok = v.verify(&basic("alice", "pw-alice")).await.unwrap();
    assert_eq!(ok.principal().subject(), "alice");
    assert_eq!(ok.principal().method(), AuthMethod::Basic);
    assert_eq!(*ok.principal().scopes(), scopes("notes:read notes:write"));
    assert!(ok.cache_for() <= Duration::from_secs(1));

    assert_eq!(
        invalid(v.verify(&basic("alice", "nope")).await),
        "unknown user or wrong password"
    );
    assert_eq!(
        invalid(v.verify(&basic("mallory", "pw-alice")).await),
        "unknown user or wrong password"
    );
    assert_eq!(
        invalid(v.verify(&basic("alice", "")).await),
        "unknown user or wrong password"
    );
}

#[tokio::test]
async fn an_unknown_user_costs_a_full_hash() {
    let (_dir, store) = test_store().await;
    store
        .add_user("alice", "pw-alice", &scopes(""))
        .await
        .unwrap();
    let v = BasicVerifier::new(store);
    // The fastest of a few runs, so a busy machine only makes both slower.
    let mut known = Duration::MAX;
    let mut unknown = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let _ = v.verify(&basic("alice", "wrong")).await;
        known = known.min(t.elapsed());
        let t = Instant::now();
        let _ = v.verify(&basic("nobody", "wrong")).await;
        unknown = unknown.min(t.elapsed());
    }
    assert!(
        unknown * 2 > known && known * 2 > unknown,
        "unknown user {unknown:?} vs wrong password {known:?}"
    );
}
