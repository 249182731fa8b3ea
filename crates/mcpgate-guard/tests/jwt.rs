//! The JWT verifier against real signed tokens (ES256, RS256, PS256, EdDSA,
//! HS256), a JWKS server on loopback that rotates keys and goes down, and
//! hostile input.

#[path = "jwt/support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use mcpgate_guard::{
    AuthRejection, Chain, Credential, IdentitySigner, JwksSettings, JwtConfig, JwtVerifier,
    Principal, Verifier, VerifyError,
};
use serde_json::json;
use support::*;

fn config(jwks_uri: &str) -> JwtConfig {
    JwtConfig {
        jwks_uri: Some(jwks_uri.into()),
        ..JwtConfig::new(ISSUER.parse().unwrap(), AUDIENCE.parse().unwrap())
    }
}

fn verifier(jwks_uri: &str) -> JwtVerifier {
    JwtVerifier::new(&config(jwks_uri)).unwrap()
}

/// A verifier whose fetch intervals are 200 ms, so refreshes happen within a test.
fn quick_verifier(jwks_uri: &str) -> JwtVerifier {
    let settings = JwksSettings::default().with_intervals(Duration::from_millis(200));
    JwtVerifier::with_settings(&config(jwks_uri), |_| None, settings).unwrap()
}

fn pem_verifier(pem: &str) -> JwtVerifier {
    JwtVerifier::new(&JwtConfig {
        public_key_pem: Some(pem.into()),
        ..JwtConfig::new(ISSUER.parse().unwrap(), AUDIENCE.parse().unwrap())
    })
    .unwrap()
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-shared";

fn hmac_verifier() -> JwtVerifier {
    let cfg = JwtConfig {
        hmac_secret_env: Some("JWT_SECRET".into()),
        ..JwtConfig::new(ISSUER.parse().unwrap(), AUDIENCE.parse().unwrap())
    };
    JwtVerifier::with_env(&cfg, |v| {
        (v == "JWT_SECRET").then(|| String::from_utf8(SECRET.to_vec()).unwrap())
    })
    .unwrap()
}

async fn check(v: &JwtVerifier, token: &str) -> Result<Principal, VerifyError> {
    let cred = Credential::Bearer(token.to_owned());
    assert!(
        v.accepts(&cred),
        "the verifier should take a JWS-shaped bearer"
    );
    v.verify(&cred).await.map(|ok| ok.into_principal())
}

async fn refused(v: &JwtVerifier, token: &str) -> String {
    match check(v, token).await {
        Err(VerifyError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn every_algorithm_verifies_through_the_jwks() {
    let es = TestKey::es256("ec-1");
    let rs = TestKey::rsa("rsa-1", Algorithm::RS256);
    let ps = TestKey::rsa("rsa-pss-1", Algorithm::PS256);
    let ed = TestKey::ed25519("ed-1");
    let server = JwksServer::start(&[&es, &rs, &ps, &ed]).await;
    let v = verifier(&server.url);
    for key in [&es, &rs, &ps, &ed] {
        let p = check(&v, &key.sign(&claims()))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", key.alg));
        assert_eq!(p.subject(), "alice");
        assert_eq!(p.client_id().map(|c| c.as_str()), Some("cursor"));
        assert!(p.has_scope("notes:read"));
        assert_eq!(p.audience(), [AUDIENCE]);
        assert_eq!(p.method(), mcpgate_guard::AuthMethod::Jwt);
    }
    assert_eq!(server.hits(), 1, "the key set is fetched once and cached");
    // The verified result may be cached until the token expires.
    let ok = v
        .verify(&Credential::Bearer(es.sign(&claims())))
        .await
        .unwrap();
    assert!(
        ok.cache_for() > Duration::from_secs(590) && ok.cache_for() <= Duration::from_secs(600)
    );
}

#[tokio::test]
async fn a_token_without_kid_is_tried_against_fitting_keys() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let server = JwksServer::start(&[&a, &b]).await;
    let v = verifier(&server.url);
    check(&v, &b.sign_as(None, &claims())).await.unwrap();
    // Signed by b, but claiming to be a: refused.
    assert_eq!(
        refused(&v, &b.sign_as(Some("a"), &claims())).await,
        "JWT signature does not verify"
    );
}

#[tokio::test]
async fn pem_keys_inline_or_in_a_file() {
    let es = TestKey::es256("x");
    let rs = TestKey::rsa("x", Algorithm::RS256);
    let ed = TestKey::ed25519("x");
    for key in [&es, &rs, &ed] {
        check(&pem_verifier(&key.public_pem), &key.sign(&claims()))
            .await
            .unwrap();
    }
    let path = std::env::temp_dir().join(format!("mcpgate-jwt-test-{}.pem", std::process::id()));
    std::fs::write(&path, &es.public_pem).unwrap();
    let v = JwtVerifier::new(&JwtConfig {
        public_key_file: Some(path.clone()),
        ..JwtConfig::new(ISSUER.parse().unwrap(), AUDIENCE.parse().unwrap())
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    check(&v, &es.sign(&claims())).await.unwrap();
    // Another key of the same kind does not verify.
    let other = TestKey::es256("x");
    assert_eq!(
        refused(&v, &other.sign(&claims())).await,
        "JWT signature does not verify"
    );
    // A key of another kind: the algorithm does not fit.
    assert_eq!(
        refused(&v, &rs.sign(&claims())).await,
        "JWT algorithm RS256 does not fit this issuer's EC key"
    );
}

#[tokio::test]
async fn hmac_secret_from_the_environment() {
    let v = hmac_verifier();
    check(&v, &hs256(SECRET, &claims())).await.unwrap();
    assert_eq!(
        refused(&v, &hs256(b"another secret of enough length!!", &claims())).await,
        "JWT signature does not verify"
    );
    let rs = TestKey::rsa("r", Algorithm::RS256);
    assert_eq!(
        refused(&v, &rs.sign(&claims())).await,
        "JWT algorithm RS256 is refused: this issuer signs with a shared HMAC secret (algorithm confusion)"
    );
}

#[tokio::test]
async fn alg_none_is_refused_in_any_spelling() {
    let server = JwksServer::start(&[&TestKey::es256("k")]).await;
    let v = verifier(&server.url);
    for alg in ["none", "None", "NONE"] {
        let token = forge(&json!({"alg": alg, "typ": "JWT"}), &claims(), b"");
        assert!(token.ends_with('.'));
        assert_eq!(
            refused(&v, &token).await,
            "JWT algorithm \"none\" is refused: the token is not signed"
        );
    }
    let v = hmac_verifier();
    let token = forge(&json!({"alg": "none"}), &claims(), b"");
    assert_eq!(
        refused(&v, &token).await,
        "JWT algorithm \"none\" is refused: the token is not signed"
    );
    assert_eq!(server.hits(), 0, "no key was needed to refuse it");
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    // The classic attack: HS256 "signed" with the issuer's RSA public key as the secret.
    let rs = TestKey::rsa("rsa", Algorithm::RS256);
    let forged = hs256(rs.public_pem.as_bytes(), &claims());
    let want = "JWT algorithm HS256 (HMAC) is refused: this issuer signs with public keys (algorithm confusion)";
    assert_eq!(refused(&pem_verifier(&rs.public_pem), &forged).await, want);
    let server = JwksServer::start(&[&rs]).await;
    assert_eq!(refused(&verifier(&server.url), &forged).await, want);
    // Also with the JWK's own bytes and a matching kid.
    let n = rs.jwk["n"].as_str().unwrap();
    let forged = forge(
        &json!({"alg": "HS256", "kid": "rsa"}),
        &claims(),
        n.as_bytes(),
    );
    assert_eq!(refused(&verifier(&server.url), &forged).await, want);
}

#[tokio::test]
async fn algorithms_outside_the_allow_list_are_refused() {
    let rs = TestKey::rsa("rsa", Algorithm::RS256);
    let es = TestKey::es256("ec");
    let server = JwksServer::start(&[&rs, &es]).await;
    let mut cfg = config(&server.url);
    cfg.algorithms = Some(vec!["ES256".into()]);
    let v = JwtVerifier::new(&cfg).unwrap();
    check(&v, &es.sign(&claims())).await.unwrap();
    assert_eq!(
        refused(&v, &rs.sign(&claims())).await,
        "JWT algorithm RS256 is not allowed for this issuer (allowed: ES256)"
    );
    let token = forge(&json!({"alg": "ES512", "kid": "ec"}), &claims(), b"sig");
    assert_eq!(
        refused(&v, &token).await,
        "JWT algorithm \"ES512\" is not supported"
    );
    let token = forge(
        &json!({"alg": "ES256", "kid": "ec", "crit": ["exp"]}),
        &claims(),
        b"sig",
    );
    assert!(refused(&v, &token).await.contains("critical extensions"));
    // A JWK published for RS256 is not used for PS256.
    let mut pinned = rs.jwk.clone();
    pinned["alg"] = "RS256".into();
    server.set_raw_keys(vec![pinned]);
    let v = verifier(&server.url);
    let ps = TestKey::rsa("rsa", Algorithm::PS256);
    assert_eq!(
        refused(&v, &ps.sign(&claims())).await,
        "JWT signing key is not published for PS256"
    );
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_removed_keys_refused() {
    let old = TestKey::es256("2026-01");
    let new = TestKey::rsa("2026-02", Algorithm::RS256);
    let server = JwksServer::start(&[&old]).await;
    server.set_cache_control("max-age=0");
    let v = quick_verifier(&server.url);
    check(&v, &old.sign(&claims())).await.unwrap();
    assert_eq!(server.hits(), 1);

    // The issuer adds a key: the first token naming it triggers a refetch.
    server.set_keys(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    check(&v, &new.sign(&claims())).await.unwrap();
    let after_rotation = server.hits();
    assert!((2..=3).contains(&after_rotation), "hits: {after_rotation}");

    // The issuer drops the old key: after the next refresh it is refused.
    server.set_keys(&[&new]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let why = loop {
        match check(&v, &old.sign(&claims())).await {
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(_) => panic!("the removed key is still accepted"),
            Err(VerifyError::Invalid(why)) => break why,
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(
        why,
        "JWT signing key \"2026-01\" is not among the issuer's keys"
    );
    check(&v, &new.sign(&claims())).await.unwrap();
}

#[tokio::test]
async fn an_unknown_kid_flood_costs_at_most_one_fetch() {
    let key = TestKey::es256("real");
    let server = JwksServer::start(&[&key]).await;
    let v = Arc::new(verifier(&server.url));
    // Cold start under a flood: the concurrent misses share one fetch.
    let flood = |v: Arc<JwtVerifier>| async move {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let v = v.clone();
                let token = key_for_flood(i);
                tokio::spawn(async move { check(&v, &token).await })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Err(VerifyError::Invalid(why)) => {
                    assert!(why.contains("is not among the issuer's keys"), "{why}")
                }
                other => panic!("{other:?}"),
            }
        }
    };
    flood(v.clone()).await;
    assert!(server.hits() <= 2, "cold flood: {} fetches", server.hits());
    check(&v, &key.sign(&claims())).await.unwrap();
    let before = server.hits();
    flood(v.clone()).await;
    assert_eq!(
        server.hits(),
        before,
        "a warm flood within 30 s fetches nothing"
    );
}

fn key_for_flood(i: usize) -> String {
    let random = URL_SAFE_NO_PAD.encode(format!("kid-{i}-{:?}", Instant::now()));
    forge(
        &json!({"alg": "ES256", "kid": random}),
        &claims(),
        &[7u8; 64],
    )
}

#[tokio::test]
async fn another_issuers_token_is_not_mine() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    let v = verifier(&server.url);
    let mut c = claims();
    c["iss"] = "https://someone-else.example/".into();
    assert_eq!(
        check(&v, &key.sign(&c)).await.unwrap_err(),
        VerifyError::NotMine
    );
    // Issuers compare exactly: no trailing-slash leniency for iss.
    c["iss"] = "https://issuer.example".into();
    assert_eq!(
        check(&v, &key.sign(&c)).await.unwrap_err(),
        VerifyError::NotMine
    );
    assert_eq!(server.hits(), 0, "no keys fetched for someone else's token");
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(refused(&v, &key.sign(&c)).await, "Token has no iss claim");
}

#[tokio::test]
async fn audience_expiry_and_not_before() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    let v = verifier(&server.url);
    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims();
        c[field] = value;
        key.sign(&c)
    };
    // aud differing only by a trailing slash or the host's case is the same resource.
    check(&v, &with("aud", json!("https://mcp.example/mcp/")))
        .await
        .unwrap();
    check(
        &v,
        &with(
            "aud",
            json!(["https://other.example", "https://MCP.example/mcp"]),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        refused(&v, &with("aud", json!("https://mcp.example/other"))).await,
        "Token audience does not include https://mcp.example/mcp"
    );
    let expired = refused(&v, &with("exp", json!(now() - 120))).await;
    assert!(
        expired.starts_with("Token expired at 20") && expired.ends_with('Z'),
        "{expired}"
    );
    check(&v, &with("exp", json!(now() - 30)))
        .await
        .expect("within the 60 s leeway");
    let early = refused(&v, &with("nbf", json!(now() + 3600))).await;
    assert!(early.starts_with("Token not valid before 20"), "{early}");
    let future = refused(&v, &with("iat", json!(now() + 3600))).await;
    assert!(future.starts_with("Token issued in the future"), "{future}");
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(&v, &key.sign(&c)).await,
        "Token has no exp claim; tokens must expire"
    );
    c = claims();
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        refused(&v, &key.sign(&c)).await,
        "Token has no \"sub\" claim naming the caller"
    );

    let mut cfg = config(&server.url);
    cfg.required_claims = vec!["tenant".into()];
    let strict = JwtVerifier::new(&cfg).unwrap();
    assert_eq!(
        refused(&strict, &key.sign(&claims())).await,
        "Token lacks the required claim \"tenant\""
    );
    check(&strict, &with("tenant", json!("acme")))
        .await
        .unwrap();
}

#[tokio::test]
async fn oversized_and_malformed_tokens() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    let v = verifier(&server.url);
    let mut c = claims();
    c["padding"] = "x".repeat(9000).into();
    assert_eq!(
        refused(&v, &key.sign(&c)).await,
        "the JWT is longer than 8192 bytes"
    );
    let huge = format!("{}.{}.sig", "a".repeat(10), "b~".repeat(6000));
    assert!(
        v.accepts(&Credential::Bearer(huge.clone())),
        "oversized tokens are refused, not passed on"
    );
    assert_eq!(
        refused(&v, &huge).await,
        "the JWT is longer than 8192 bytes"
    );
    let cases = [
        (
            "abcde.eyJ9.c2ln",
            "malformed JWT: the header is not base64url",
        ),
        (
            "bm90IGpzb24.eyJ9.c2ln",
            "malformed JWT: the header is not a JSON object",
        ),
        (
            "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln",
            "malformed JWT: the payload is not a JSON object",
        ),
        (
            "eyJhbGciOiJFUzI1NiJ9.abcde.c2ln",
            "malformed JWT: the payload is not base64url",
        ),
        ("e30.e30.c2ln", "JWT header has no alg"),
    ];
    for (token, want) in cases {
        assert_eq!(refused(&v, token).await, want, "{token}");
    }
    // A valid token with a corrupted signature.
    let token = key.sign(&claims());
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let bad = format!("{head}.{flipped}{}", &sig[1..]);
    assert_eq!(refused(&v, &bad).await, "JWT signature does not verify");
    assert!(!v.accepts(&Credential::Bearer("not-a-jwt".into())));
    assert_eq!(
        v.verify(&Credential::ApiKey(token)).await.unwrap_err(),
        VerifyError::NotMine
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn cold_start_with_the_identity_provider_down_is_unavailable() {
    let key = TestKey::es256("k");
    let v = verifier(&closed_url().await);
    match check(&v, &key.sign(&claims())).await {
        Err(VerifyError::Unavailable(why)) => {
            assert!(
                why.contains("cannot fetch the token issuer's signing keys"),
                "{why}"
            );
            assert!(why.contains("cannot connect"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(v.warm_up().await.is_err());

    // 503, then the identity provider recovers.
    let server = JwksServer::start(&[&key]).await;
    server.set_mode(Mode::Down);
    let v = quick_verifier(&server.url);
    match check(&v, &key.sign(&claims())).await {
        Err(VerifyError::Unavailable(why)) => assert!(why.contains("HTTP 503"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Retries are spaced: an immediate second request does not ask again.
    assert!(matches!(
        check(&v, &key.sign(&claims())).await,
        Err(VerifyError::Unavailable(_))
    ));
    assert_eq!(server.hits(), 1);
    server.set_mode(Mode::Up);
    tokio::time::sleep(Duration::from_millis(250)).await;
    check(&v, &key.sign(&claims())).await.unwrap();
}

#[tokio::test]
async fn cached_keys_outlive_an_identity_provider_outage() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    server.set_cache_control("no-cache");
    let v = quick_verifier(&server.url);
    v.warm_up().await.unwrap();
    server.set_mode(Mode::Down);
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.hits() < 3 {
        assert!(Instant::now() < deadline, "refreshes were not attempted");
        check(&v, &key.sign(&claims()))
            .await
            .expect("served from the cached keys");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An unknown kid during the outage is simply unknown, not "unavailable".
    let stranger = TestKey::es256("new");
    assert!(
        refused(&v, &stranger.sign(&claims()))
            .await
            .contains("not among the issuer's keys")
    );
}

#[tokio::test]
async fn slow_and_oversized_key_sets_are_cut_off() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(&[&key]).await;
    server.set_mode(Mode::Hang);
    let mut settings = JwksSettings::default();
    settings.timeout = Duration::from_millis(300);
    let v = JwtVerifier::with_settings(&config(&server.url), |_| None, settings).unwrap();
    let started = Instant::now();
    match check(&v, &key.sign(&claims())).await {
        Err(VerifyError::Unavailable(why)) => assert!(why.contains("timed out"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    server.set_mode(Mode::Huge);
    let v = verifier(&server.url);
    match check(&v, &key.sign(&claims())).await {
        Err(VerifyError::Unavailable(why)) => {
            assert!(why.contains("larger than 262144 bytes"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_set_of_unusable_keys_is_an_error_and_oct_keys_are_ignored() {
    let server = JwksServer::start(&[]).await;
    // A symmetric key in a public key set must never become an HMAC secret.
    server.set_raw_keys(vec![
        json!({"kty": "oct", "kid": "s", "k": URL_SAFE_NO_PAD.encode(SECRET)}),
    ]);
    let v = verifier(&server.url);
    let mut forged = claims();
    forged["sub"] = "mallory".into();
    let token = forge(&json!({"alg": "ES256", "kid": "s"}), &forged, &[1u8; 64]);
    match check(&v, &token).await {
        Err(VerifyError::Unavailable(why)) => {
            assert!(why.contains("no usable signing key"), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn identity_tokens_verify_through_the_served_key_set() {
    let (signer, _pem) = IdentitySigner::generate("https://gateway.example").unwrap();
    let server = JwksServer::start(&[]).await;
    server.set_raw_keys(signer.jwks()["keys"].as_array().unwrap().clone());
    let v = JwtVerifier::new(&JwtConfig {
        jwks_uri: Some(server.url.clone()),
        ..JwtConfig::new(
            "https://gateway.example".parse().unwrap(),
            "notes".parse().unwrap(),
        )
    })
    .unwrap();
    let p = Principal::new("alice".parse().unwrap(), mcpgate_guard::AuthMethod::ApiKey)
        .with_scopes("notes:read".parse().unwrap());
    let got = check(&v, &signer.sign(&p, "notes").unwrap()).await.unwrap();
    assert_eq!(got.subject(), "alice");
    assert!(got.has_scope("notes:read"));
}

#[tokio::test]
async fn several_issuers_in_one_chain() {
    let a = TestKey::es256("a");
    let server = JwksServer::start(&[&a]).await;
    let other_issuer = JwtConfig {
        hmac_secret_env: Some("S".into()),
        ..JwtConfig::new(
            "https://other.example".parse().unwrap(),
            AUDIENCE.parse().unwrap(),
        )
    };
    let hmac = JwtVerifier::with_env(&other_issuer, |_| {
        Some(String::from_utf8(SECRET.to_vec()).unwrap())
    })
    .unwrap();
    let chain = Chain::new(vec![Arc::new(verifier(&server.url)), Arc::new(hmac)]);
    let mut c = claims();
    c["iss"] = "https://other.example".into();
    c["sub"] = "bob".into();
    let p = chain
        .authenticate(&Credential::Bearer(hs256(SECRET, &c)))
        .await
        .unwrap();
    assert_eq!(p.subject(), "bob");
    let p = chain
        .authenticate(&Credential::Bearer(a.sign(&claims())))
        .await
        .unwrap();
    assert_eq!(p.subject(), "alice");
    c["iss"] = "https://unknown.example".into();
    match chain
        .authenticate(&Credential::Bearer(hs256(SECRET, &c)))
        .await
    {
        Err(AuthRejection::InvalidToken(why)) => assert!(why.contains("not recognized"), "{why}"),
        other => panic!("{other:?}"),
    }
}
