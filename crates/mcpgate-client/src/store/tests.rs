use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::oauth::TokenResponse;
use crate::oauth::tokens_from;
use crate::registration::RegistrationSource;

fn signin(issuer: &str, resource: &str) -> SignIn {
    SignIn {
        issuer: Issuer::allowing_plain_http(issuer).unwrap(),
        resource: resource.into(),
        server_url: resource.into(),
        resource_metadata_url: None,
        auth_server: serde_json::from_value(serde_json::json!({
            "issuer": issuer, "code_challenge_methods_supported": ["S256"], "x-extra": 1
        }))
        .unwrap(),
        registration: ClientRegistration {
            issuer: Issuer::allowing_plain_http(issuer).unwrap(),
            client_id: "cid".parse().unwrap(),
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

/// A sign-in and a registration as the store wrote them while `issuer` and
/// `client_id` were plain strings, for a 2025-03-26 server on plain http
/// (its origin is the issuer): both still load, and write back unchanged.
#[test]
fn files_written_before_issuers_and_client_ids_were_typed_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open_dir(dir.path().to_owned()).unwrap();
    let issuer = "http://mcp.internal:8080";
    let registration = serde_json::json!({
        "issuer": issuer, "client_id": "dyn-7f3a", "client_secret": "s3",
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": ["http://127.0.0.1:43111/callback"], "source": "dynamic",
        "grant_types": ["authorization_code", "refresh_token"]
    });
    let record = serde_json::json!({
        "issuer": issuer, "resource": "http://mcp.internal:8080/mcp",
        "server_url": "http://mcp.internal:8080/mcp",
        "auth_server": {"issuer": issuer, "token_endpoint": "http://mcp.internal:8080/token",
                        "code_challenge_methods_supported": ["S256"]},
        "registration": registration, "grant": "authorization_code",
        "tokens": {"access_token": "at", "refresh_token": "rt", "scopes": ["mcp"]},
        "updated_at": 1_700_000_000u64, "updated_ms": 1_700_000_000_123u64
    });
    let write = |path: PathBuf, v: &serde_json::Value| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    };
    let key = key_of(issuer, "http://mcp.internal:8080/mcp");
    write(store.session_path(&key), &record);
    write(store.registration_path(issuer), &registration);

    let s = store
        .load(issuer, "http://mcp.internal:8080/mcp")
        .unwrap()
        .expect("the old record loads");
    assert_eq!(s.issuer, issuer);
    assert_eq!(s.registration.client_id, "dyn-7f3a");
    assert_eq!(s.tokens.refresh_token.as_deref(), Some("rt"));
    let reg = store.load_registration(issuer).unwrap().unwrap();
    assert_eq!(
        (reg.issuer.as_str(), reg.client_id.as_str()),
        (issuer, "dyn-7f3a")
    );
    // The same representation: what loads serializes to what was written.
    assert_eq!(serde_json::to_value(&reg).unwrap(), registration);
    let again = serde_json::to_value(&s).unwrap();
    assert_eq!(again["issuer"], record["issuer"]);
    assert_eq!(again["registration"], record["registration"]);
    // What no version wrote is refused with the rule, not taken.
    let mut bad = record.clone();
    bad["registration"]["client_id"] = "".into();
    write(store.session_path(&key), &bad);
    let err = store
        .load(issuer, "http://mcp.internal:8080/mcp")
        .unwrap_err()
        .to_string();
    assert!(err.contains("client"), "{err}");
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
