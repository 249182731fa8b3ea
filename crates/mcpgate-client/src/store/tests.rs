use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::oauth::TokenResponse;
use crate::oauth::tokens_from;
use crate::registration::RegistrationSource;

fn signin(issuer: &str, resource: &str) -> SignIn {
    SignIn {
        issuer: issuer.into(),
        resource: resource.into(),
        server_url: resource.into(),
        resource_metadata_url: None,
        auth_server: serde_json::from_value(serde_json::json!({
            "issuer": issuer, "code_challenge_methods_supported": ["S256"], "x-extra": 1
        }))
        .unwrap(),
        registration: ClientRegistration {
            issuer: issuer.into(),
            client_id: "cid".into(),
            client_secret: Some("csecret".into()),
            token_endpoint_auth_method: "client_secret_basic".into(),
            redirect_uris: vec![],
            source: RegistrationSource::Dynamic,
            grant_types: vec![],
            registration_client_uri: None,
            registration_access_token: None,
        },
        grant: Grant::AuthorizationCode,
        tokens: Tokens {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: Some(now_secs() + 100),
            issued_at: Some(now_secs()),
            scopes: vec!["mcp".into()],
            dpop_key: None,
        },
        updated_at: 0,
        updated_ms: 0,
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_is_private_and_keyed_by_issuer_and_resource() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let store = TokenStore::open_dir(home.clone()).unwrap();
    store.save(&signin("http://a", "http://r/mcp")).unwrap();
    store.save(&signin("http://b", "http://r/mcp")).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    let back = store.load("http://a", "http://r/mcp").unwrap().unwrap();
    assert_eq!(back.tokens.refresh_token.as_deref(), Some("rt"));
    assert_eq!(back.auth_server.extra["x-extra"], 1);
    assert_eq!(mode(&home), 0o700);
    for f in std::fs::read_dir(home.join("sessions")).unwrap() {
        let f = f.unwrap().path();
        assert_eq!(mode(&f), 0o600);
        assert!(
            !f.file_name().unwrap().to_str().unwrap().starts_with('.'),
            "temp file left"
        );
    }
    let url = url::Url::parse("http://r/mcp/").unwrap();
    assert!(store.find_for_url(&url).unwrap().is_some());
    assert!(
        store
            .find_for_url(&url::Url::parse("http://other/").unwrap())
            .unwrap()
            .is_none()
    );
    store.delete("http://a", "http://r/mcp").unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn registrations_are_per_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open_dir(dir.path().to_owned()).unwrap();
    let reg = signin("http://a", "http://r").registration;
    store.save_registration(&reg).unwrap();
    assert_eq!(
        store
            .load_registration("http://a")
            .unwrap()
            .unwrap()
            .client_id,
        "cid"
    );
    assert!(store.load_registration("http://b").unwrap().is_none());
    store.delete_registration("http://a").unwrap();
    assert!(store.load_registration("http://a").unwrap().is_none());
}

#[test]
fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let old = signin("http://a", "http://r").tokens;
    let t: TokenResponse =
        serde_json::from_str(r#"{"access_token":"new","token_type":"Bearer","expires_in":60}"#)
            .unwrap();
    let next = tokens_from(t, Some(&old));
    assert_eq!(next.refresh_token.as_deref(), Some("rt"));
    assert_eq!(next.scopes, vec!["mcp"]);
    let at = next.expires_at.unwrap();
    assert!(
        at >= now_secs() + 59 && at <= now_secs() + 61,
        "absolute expiry"
    );
    let t: TokenResponse = serde_json::from_str(
        r#"{"access_token":"n","token_type":"bearer","refresh_token":"rt2","scope":"a b"}"#,
    )
    .unwrap();
    let next = tokens_from(t, Some(&old));
    assert_eq!(next.refresh_token.as_deref(), Some("rt2"));
    assert_eq!(next.scopes, vec!["a", "b"]);
    assert_eq!(next.expires_at, None);
}

#[tokio::test]
async fn the_lock_excludes_a_second_holder_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open_dir(dir.path().to_owned()).unwrap();
    let first = store.lock("k").await.unwrap();
    let s2 = store.clone();
    let second = tokio::spawn(async move { s2.lock("k").await.map(|_| ()) });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second holder got the lock too early"
    );
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn default_refresh_margin_is_capped_at_half_the_lifetime() {
    use std::time::Duration;
    let now = now_secs();
    // A 5-minute token just issued: the 300 s default would call it stale at once.
    let short = Tokens {
        access_token: "at".into(),
        expires_at: Some(now + 300),
        issued_at: Some(now),
        ..Tokens::default()
    };
    assert!(!short.due(RefreshMargin::default()));
    assert!(short.due(RefreshMargin::Exactly(Duration::from_secs(300))));
    // Past half of its lifetime it is due.
    let half_gone = Tokens {
        issued_at: Some(now - 200),
        expires_at: Some(now + 100),
        ..short.clone()
    };
    assert!(half_gone.due(RefreshMargin::default()));
    // Stored before issue times were kept: the plain 300 s margin applies.
    let legacy = Tokens {
        issued_at: None,
        ..short
    };
    assert!(legacy.due(RefreshMargin::default()));
}
