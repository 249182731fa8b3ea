//! One test per documented scenario of the five systems mcpgate was built
//! from (issue 12), each set up as the docs say. Where an existing test
//! already proves a scenario it is named here instead of repeated:
//!
//! | scenario | test |
//! | --- | --- |
//! | the user's own 40-character key: format check, verify URL, forwarded to its upstream only | [`a_users_own_40_character_key_is_format_checked_verified_once_and_refused_when_unknown`] here; delivery and isolation: `auth::users_own_upstream_key_reaches_only_its_upstream` |
//! | the OAuth façade: two users' own keys behind one upstream (docs/recipes/api-key-facade.md) | `vault::each_user_gets_only_their_own_key_and_the_oauth_facade_works`; the recipe itself runs in `scripts/check-docs` |
//! | the standalone authorization server with an introspecting resource server | `client_authserver::standalone_authorization_server_for_an_introspecting_gateway` (two `mcpgate serve`, the real `mcpgate login`); `resources::a_registered_resource_server_introspects_the_tokens_issued_for_it` |
//! | the client toolkit: API key / Basic / OAuth, 0600 token storage, early refresh under a lock | `client_cli::oidc_provider_path_issuer_dcr_call_restart_and_private_files` (0700/0600 store), `client_cli::step_up_refresh_once_across_processes_and_logout` and `client_authserver::refresh_concurrency_restart_status_and_logout` (one refresh across processes, under the store's lock), `client_authserver::mcp_config_auth_block_with_a_preregistered_client`; the default margin (300 s, at most half the lifetime): `mcpgate-client` `store::tests::default_refresh_margin_is_capped_at_half_the_lifetime` |
//! | the REST login with refresh on 401 and re-login (docs/recipes/rest-api-login.md) | `credentials::login_session_refreshes_relogs_and_renews_once_for_many`; the recipe runs in `scripts/check-docs` |
//! | the resource server: JWKS, PEM and HMAC keys, audience and issuer checks, X-API-Key, optional and disabled modes | [`a_resource_server_verifies_pem_and_hmac_jwts_checks_audience_and_issuer_and_serves_anonymous_callers_when_optional`] here; JWKS: `auth::jwt_from_a_jwks_issuer_end_to_end`; X-API-Key: `auth::demo_requires_the_key_it_prints_on_first_start`; disabled: every test using `harness::config` |
//!
//! Also for issue 12: a client against a server that needs no sign-in is
//! `checks::call_and_login_just_work_against_a_server_that_needs_no_sign_in`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::raw::{Raw, initialize_request, request, tool_call};
use crate::harness::{Gateway, demo_stdio_upstream, toml_str};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A client presenting `header: value` on every request.
fn raw_with(url: &str, header: &str, value: &str) -> Raw {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::HeaderName::from_bytes(header.as_bytes()).expect("header name"),
        reqwest::header::HeaderValue::from_str(value).expect("header value"),
    );
    Raw::with_client(
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client"),
        url,
    )
}

/// The status and the `WWW-Authenticate` of an `initialize`.
async fn initialize_status(raw: &Raw) -> (StatusCode, String) {
    let r = raw.post(None, &initialize_request()).await;
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (r.status(), www)
}

async fn whoami(raw: &Raw) -> Value {
    let session = raw.initialize().await;
    let r = raw
        .call(&session, &tool_call(json!(7), "whoami", json!({})))
        .await;
    r["result"]["structuredContent"].clone()
}

async fn tool_names(raw: &Raw, session: &str) -> Vec<String> {
    let r = raw
        .call(session, &request(json!(3), "tools/list", json!({})))
        .await;
    let mut names: Vec<String> = r["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {r}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// A P-256 key: the PKCS#8 DER to sign with and the SPKI PEM to configure.
fn es256_key() -> (Vec<u8>, String) {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("generate a P-256 key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .expect("parse the key");
    // SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, then the point.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        body.join("\n")
    );
    (pkcs8.as_ref().to_vec(), pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_server_verifies_pem_and_hmac_jwts_checks_audience_and_issuer_and_serves_anonymous_callers_when_optional()
 {
    // As docs/AUTH.md sets it up: one [[auth.jwt]] per issuer, a PEM file and
    // an HMAC secret from the environment, auth.mode = "optional".
    let dir = tempfile::tempdir().expect("tempdir");
    let (pkcs8, pem) = es256_key();
    let pem_file = dir.path().join("issuer.pem");
    std::fs::write(&pem_file, pem).expect("write the PEM");
    let secret = "scenario-hmac-secret-0123456789-abcdefghijklmnop";
    let audience = "https://notes.example/mcp";
    let notes = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"optional\"\napi_keys = false\nusers = false\n\n\
         [[auth.jwt]]\nname = \"pem\"\nissuer = \"https://pem.example\"\naudience = {aud}\n\
         public_key_file = {pem}\nalgorithms = [\"ES256\"]\n\n\
         [[auth.jwt]]\nname = \"hmac\"\nissuer = \"https://hmac.example\"\naudience = {aud}\n\
         hmac_secret_env = \"SCENARIO_HMAC_SECRET\"\nalgorithms = [\"HS256\"]\n\n{up}",
        aud = toml_str(audience),
        pem = toml_str(&pem_file.display().to_string()),
        up = demo_stdio_upstream(
            "notes",
            notes.path(),
            "isolation = \"session\"\n\
             tool_scopes = { \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }",
        ),
    );
    let gw = Gateway::start_with_env(&config, &[("SCENARIO_HMAC_SECRET", secret)]).await;
    let url = gw.mcp("notes");
    let claims = |iss: &str, aud: &str, sub: &str| {
        json!({ "iss": iss, "aud": aud, "sub": sub, "scope": "notes:read",
                "iat": now() - 5, "exp": now() + 300 })
    };
    let es = |c: &Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            c,
            &EncodingKey::from_ec_der(&pkcs8),
        )
        .expect("sign ES256")
    };
    let hs = |c: &Value, key: &str| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .expect("sign HS256")
    };
    let bearer = |t: &str| raw_with(&url, "authorization", &format!("Bearer {t}"));

    // Anonymous: allowed in, sees only what needs no scope.
    let anon = Raw::new(&url);
    let session = anon.initialize().await;
    let names = tool_names(&anon, &session).await;
    assert!(names.contains(&"whoami".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"list_secure_notes".to_owned())
            && !names.contains(&"create_secure_note".to_owned()),
        "anonymous callers must not see scoped tools: {names:?}"
    );

    // PEM-verified ES256 token and HMAC-verified HS256 token, each from its issuer.
    let me = whoami(&bearer(&es(&claims(
        "https://pem.example",
        audience,
        "pem-alice",
    ))))
    .await;
    assert_eq!(me["subject"], "pem-alice", "{me}");
    let alice = bearer(&es(&claims("https://pem.example", audience, "pem-alice")));
    let s = alice.initialize().await;
    assert!(
        tool_names(&alice, &s)
            .await
            .contains(&"list_secure_notes".to_owned())
    );
    let me = whoami(&bearer(&hs(
        &claims("https://hmac.example", audience, "hmac-bob"),
        secret,
    )))
    .await;
    assert_eq!(me["subject"], "hmac-bob", "{me}");

    // Refused, even though anonymous callers are allowed: a presented
    // credential that fails is never downgraded to anonymous.
    let refused = [
        (
            "wrong audience",
            es(&claims(
                "https://pem.example",
                "https://other.example/mcp",
                "x",
            )),
        ),
        (
            "unknown issuer",
            es(&claims("https://evil.example", audience, "x")),
        ),
        (
            "the PEM issuer's name on an HMAC token",
            hs(&claims("https://pem.example", audience, "x"), secret),
        ),
        (
            "a different HMAC secret",
            hs(
                &claims("https://hmac.example", audience, "x"),
                "another-secret-of-sufficient-length-0123456789",
            ),
        ),
    ];
    for (what, token) in refused {
        let (status, www) = initialize_status(&bearer(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {www}");
        assert!(www.contains("invalid_token"), "{what}: {www}");
    }
}

/// A `verify_url` stand-in: 200 for the one key it knows, 401 otherwise; counts calls.
async fn verify_server(good: &'static str) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/v1/me",
        axum::routing::get(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                let key = headers
                    .get("x-upstream-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if key == good {
                    (axum::http::StatusCode::OK, "{\"user\":\"alice\"}")
                } else {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        "{\"error\":\"bad key\"}",
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!(
        "http://{}/v1/me",
        listener.local_addr().expect("local address")
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_40_character_key_is_format_checked_verified_once_and_refused_when_unknown() {
    // docs/AUTH.md "A user's own upstream key": format, description, header, verify_url.
    const GOOD: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd";
    const UNKNOWN: &str = "ZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZzZz";
    let (verify_url, calls) = verify_server(GOOD).await;
    let notes = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [[auth.upstream_key]]\nupstream = \"wandb\"\nformat = \"[A-Za-z0-9]{{40}}\"\n\
         format_description = \"exactly 40 alphanumeric characters\"\nheader = \"X-Upstream-Key\"\n\
         verify_url = {}\n\n{}",
        toml_str(&verify_url),
        demo_stdio_upstream("wandb", notes.path(), "isolation = \"session\""),
    );
    let gw = Gateway::start(&config).await;
    let url = gw.mcp("wandb");

    // The format is checked before anything is sent anywhere.
    let (status, www) = initialize_status(&raw_with(&url, "x-api-key", "too-short")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{www}");
    assert!(
        www.contains("Invalid API key format: expected exactly 40 alphanumeric characters"),
        "{www}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a malformed key reached verify_url"
    );

    // A good key: verified once, then trusted (cached) for later requests.
    for _ in 0..3 {
        let me = whoami(&raw_with(&url, "authorization", &format!("Bearer {GOOD}"))).await;
        let subject = me["subject"].as_str().expect("a subject");
        assert!(
            subject.starts_with("wandb:") && !subject.contains(GOOD),
            "{me}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "verify_url is asked once per key"
    );

    // A well-formed key the service does not know is refused.
    let (status, www) = initialize_status(&raw_with(&url, "x-api-key", UNKNOWN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{www}");
    assert!(www.contains("invalid_token"), "{www}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
