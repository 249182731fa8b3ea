//! DPoP (RFC 9449) through the binary: the authorization server binds tokens
//! to a proof's key (with nonces on), the gateway takes them on an upstream
//! with `dpop = "required"` only with a proof that matches the request, and
//! each way a proof can be wrong is refused with its status and error code.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_dpop::ProofKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::{Browser, add_user, authorize, pkce, register};
use crate::harness::raw::initialize_request;
use crate::harness::{BIN, Gateway, toml_str};

fn config(notes: &std::path::Path) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\ndpop_nonce = true\n\n\
         [[upstream]]\nname = \"demo\"\ncommand = [{}, \"demo-server\", \"--data-dir\", {}]\ndpop = \"required\"\n\n\
         [[upstream]]\nname = \"open\"\ncommand = [{}, \"demo-server\", \"--data-dir\", {}]\ndpop = \"off\"\n",
        toml_str(BIN),
        toml_str(&notes.display().to_string()),
        toml_str(BIN),
        toml_str(&notes.display().to_string()),
    )
}

/// POST /token with `form` and, when given, a proof; (status, nonce header, body).
async fn token(
    base: &str,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await.expect("token request");
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().expect("nonce").to_owned());
    (r.status(), nonce, r.json().await.expect("token JSON"))
}

/// An `initialize` at `mcp` with `authorization` and, when given, a proof:
/// (status, WWW-Authenticate values, body's `error`).
async fn call(
    mcp: &str,
    authorization: &str,
    proof: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let (status, www, error, _) = call_nonce(mcp, authorization, proof).await;
    (status, www, error)
}

/// [`call`], and the `DPoP-Nonce` of the answer.
async fn call_nonce(
    mcp: &str,
    authorization: &str,
    proof: Option<&str>,
) -> (StatusCode, Vec<String>, String, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(mcp)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", authorization)
        .body(initialize_request().to_string());
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await.expect("mcp request");
    let status = r.status();
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().expect("nonce").to_owned());
    let www = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    let text = r.text().await.unwrap_or_default();
    let error = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, www, error, nonce)
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_from_sign_in_to_the_gateway() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "alice", "correct horse", "notes:read notes:write");
    let api_key = crate::auth::create_key(&data, "ci", "notes:read", None);
    let gw =
        Gateway::start_with_data(&config(&tmp.path().join("notes")), "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");

    // Both metadata documents say what is taken.
    let asm: Value = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
        .await
        .expect("AS metadata")
        .json()
        .await
        .expect("json");
    assert!(
        asm["dpop_signing_alg_values_supported"]
            .as_array()
            .expect("algs")
            .contains(&json!("ES256")),
        "{asm}"
    );
    let prm: Value = reqwest::get(format!(
        "{base}/.well-known/oauth-protected-resource/mcp/demo"
    ))
    .await
    .expect("PRM")
    .json()
    .await
    .expect("json");
    assert_eq!(
        prm["dpop_bound_access_tokens_required"],
        json!(true),
        "{prm}"
    );
    assert!(prm["dpop_signing_alg_values_supported"].is_array(), "{prm}");
    let open: Value = reqwest::get(format!(
        "{base}/.well-known/oauth-protected-resource/mcp/open"
    ))
    .await
    .expect("PRM")
    .json()
    .await
    .expect("json");
    assert!(
        open.get("dpop_signing_alg_values_supported").is_none(),
        "{open}"
    );

    // Browser clients may send the proof and read the nonce.
    let pre = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/token"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "dpop")
        .send()
        .await
        .expect("preflight");
    let allowed = pre
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().expect("ascii").to_owned());
    assert!(
        allowed.as_deref().is_some_and(|a| a.contains("dpop")),
        "{:?}",
        pre.headers()
    );

    // Sign in; the code is redeemed with a proof, after the nonce round trip.
    let redirect = "http://127.0.0.1:9/cb";
    let client_id = register(&base, &[redirect]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("alice", "correct horse"),
    )
    .await;
    let key = ProofKey::generate().expect("key");
    let token_url = format!("{base}/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id.as_str()),
        ("code_verifier", p.verifier.as_str()),
    ];
    let first = key.proof("POST", &token_url, None, None).expect("proof");
    let (s, nonce, body) = token(&base, &form, Some(&first)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")),
        "{body}"
    );
    let nonce = nonce.expect("DPoP-Nonce with use_dpop_nonce");
    let with_nonce = key
        .proof("POST", &token_url, None, Some(&nonce))
        .expect("proof");
    let (s, _, t) = token(&base, &form, Some(&with_nonce)).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "DPoP", "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(
        claims(&access)["cnf"]["jkt"],
        key.jkt(),
        "the token is bound to the key"
    );

    // The refresh token is bound too: no proof, another key, a replayed proof.
    let rform = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (s, _, e) = token(&base, &rform, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "{e}"
    );
    let other = ProofKey::generate().expect("key");
    let (s, _, e) = token(
        &base,
        &rform,
        Some(
            &other
                .proof("POST", &token_url, None, Some(&nonce))
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{e}"
    );
    let (s, _, e) = token(&base, &rform, Some(&with_nonce)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "replayed: {e}"
    );
    let (s, _, t2) = token(
        &base,
        &rform,
        Some(
            &key.proof("POST", &token_url, None, Some(&nonce))
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t2}");
    assert_eq!(t2["token_type"], "DPoP", "{t2}");
    let access = t2["access_token"].as_str().expect("access").to_owned();

    // The gateway: the right proof passes, once.
    let dpop = format!("DPoP {access}");
    let good = key.proof("POST", &mcp, Some(&access), None).expect("proof");
    let (s, _, e) = call(&mcp, &dpop, Some(&good)).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let refused = |what: &'static str, got: (StatusCode, Vec<String>, String), code: &str| {
        assert_eq!(
            (got.0, got.2.as_str()),
            (StatusCode::UNAUTHORIZED, code),
            "{what}: {:?}",
            got.1
        );
        assert!(
            got.1
                .iter()
                .any(|w| w.starts_with("DPoP ") && w.contains(code)),
            "{what}: {:?}",
            got.1
        );
    };
    refused(
        "replayed jti",
        call(&mcp, &dpop, Some(&good)).await,
        "invalid_dpop_proof",
    );
    refused(
        "no proof",
        call(&mcp, &dpop, None).await,
        "invalid_dpop_proof",
    );
    let wrong_htm = key.proof("GET", &mcp, Some(&access), None).expect("proof");
    refused(
        "wrong htm",
        call(&mcp, &dpop, Some(&wrong_htm)).await,
        "invalid_dpop_proof",
    );
    let wrong_htu = key
        .proof("POST", &format!("{base}/mcp/open"), Some(&access), None)
        .expect("proof");
    refused(
        "wrong htu",
        call(&mcp, &dpop, Some(&wrong_htu)).await,
        "invalid_dpop_proof",
    );
    let wrong_ath = key
        .proof("POST", &mcp, Some("another token"), None)
        .expect("proof");
    refused(
        "wrong ath",
        call(&mcp, &dpop, Some(&wrong_ath)).await,
        "invalid_dpop_proof",
    );
    let stale = key
        .sign(&json!({"jti": "stale-1", "htm": "POST", "htu": mcp, "iat": now() - 120, "ath": mcpgate_dpop::ath(&access)}))
        .expect("proof");
    refused(
        "stale iat",
        call(&mcp, &dpop, Some(&stale)).await,
        "invalid_dpop_proof",
    );
    let other_key = other
        .proof("POST", &mcp, Some(&access), None)
        .expect("proof");
    refused(
        "other key",
        call(&mcp, &dpop, Some(&other_key)).await,
        "invalid_dpop_proof",
    );
    // A bound token as Bearer, here and where DPoP is off.
    let bearer = format!("Bearer {access}");
    let fresh = key.proof("POST", &mcp, Some(&access), None).expect("proof");
    refused(
        "bound token as Bearer",
        call(&mcp, &bearer, Some(&fresh)).await,
        "invalid_token",
    );
    refused(
        "bound token as Bearer, dpop off",
        call(&gw.mcp("open"), &bearer, None).await,
        "invalid_token",
    );
    let open_proof = key
        .proof("POST", &gw.mcp("open"), Some(&access), None)
        .expect("proof");
    refused(
        "DPoP where it is off",
        call(&gw.mcp("open"), &dpop, Some(&open_proof)).await,
        "invalid_token",
    );
    let (s, _, e) = call(
        &mcp,
        &dpop,
        Some(&key.proof("POST", &mcp, Some(&access), None).expect("proof")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "a fresh proof passes again: {e}");

    // An unbound token: the sign-in challenge names DPoP, and a required upstream refuses it.
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("alice", "correct horse"),
    )
    .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id.as_str()),
        ("code_verifier", p.verifier.as_str()),
    ];
    let (s, _, t) = token(&base, &form, None).await;
    assert_eq!(
        (s, t["token_type"].as_str()),
        (StatusCode::OK, Some("Bearer")),
        "{t}"
    );
    assert!(
        claims(t["access_token"].as_str().expect("access"))
            .get("cnf")
            .is_none()
    );
    let plain = format!("Bearer {}", t["access_token"].as_str().expect("access"));
    refused(
        "unbound token where DPoP is required",
        call(&mcp, &plain, None).await,
        "invalid_token",
    );
    let (s, www, _) = call(&mcp, "Bearer not-a-token", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(www.iter().any(|w| w.starts_with("DPoP algs=")), "{www:?}");
    // `required` is about access tokens: an API key passes as configured.
    let (s, _, e) = call(&mcp, &format!("Bearer {api_key}"), None).await;
    assert_eq!(s, StatusCode::OK, "an API key where DPoP is required: {e}");
}

/// An upstream with `dpop_nonce = true`: the nonce round trip at the gateway
/// (RFC 9449 §9), with the authorization server's nonces (one master key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_asks_for_its_nonce() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "alice", "correct horse", "notes:read");
    let cfg = config(&tmp.path().join("notes")).replacen(
        "dpop = \"required\"\n",
        "dpop = \"required\"\ndpop_nonce = true\n",
        1,
    );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let redirect = "http://127.0.0.1:9/cb";
    let client_id = register(&base, &[redirect]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("alice", "correct horse"),
    )
    .await;
    let key = ProofKey::generate().expect("key");
    let token_url = format!("{base}/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id.as_str()),
        ("code_verifier", p.verifier.as_str()),
    ];
    let first = key.proof("POST", &token_url, None, None).expect("proof");
    let (_, nonce, _) = token(&base, &form, Some(&first)).await;
    let nonce = nonce.expect("DPoP-Nonce from /token");
    let proof = key
        .proof("POST", &token_url, None, Some(&nonce))
        .expect("proof");
    let (s, _, t) = token(&base, &form, Some(&proof)).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let dpop = format!("DPoP {access}");
    let nonce_mcp = gw.mcp("demo");
    let refused = |what: &'static str, got: (StatusCode, Vec<String>, String), code: &str| {
        assert_eq!(
            (got.0, got.2.as_str()),
            (StatusCode::UNAUTHORIZED, code),
            "{what}: {:?}",
            got.1
        );
    };
    let (s, www, e, n) = call_nonce(
        &nonce_mcp,
        &dpop,
        Some(
            &key.proof("POST", &nonce_mcp, Some(&access), None)
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce"),
        "{www:?}"
    );
    assert!(
        www.iter()
            .any(|w| w.starts_with("DPoP error=\"use_dpop_nonce\"")),
        "{www:?}"
    );
    let gateway_nonce = n.expect("DPoP-Nonce with use_dpop_nonce");
    // The gateway's nonces are the authorization server's (one master key):
    // the one `/token` handed out is good here too.
    let (s, _, e) = call(
        &nonce_mcp,
        &dpop,
        Some(
            &key.proof("POST", &nonce_mcp, Some(&access), Some(&nonce))
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a proof with the token endpoint's nonce: {e}"
    );
    let with_nonce = key
        .proof("POST", &nonce_mcp, Some(&access), Some(&gateway_nonce))
        .expect("proof");
    let (s, _, e) = call(&nonce_mcp, &dpop, Some(&with_nonce)).await;
    assert_eq!(s, StatusCode::OK, "a proof with the nonce: {e}");
    refused(
        "a replayed proof with the nonce",
        call(&nonce_mcp, &dpop, Some(&with_nonce)).await,
        "invalid_dpop_proof",
    );
    let (s, _, e) = call(
        &nonce_mcp,
        &dpop,
        Some(
            &key.proof("POST", &nonce_mcp, Some(&access), Some("bm90LWEtbm9uY2U"))
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce"),
        "a made-up nonce"
    );
}

/// Two replicas on one PostgreSQL database, sharing the master key, with an
/// upstream that requires DPoP and its nonce. A nonce one replica hands out
/// is good at the other, and a proof accepted by one is refused by the
/// other: the gateway's replay check is the store's, across replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_accepted_once_across_replicas() {
    use crate::replicas::{PgDatabase, add_user, new_code, random_master_key, replica_config};
    let db = PgDatabase::create("dpop").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let master = random_master_key();
    let port = crate::harness::free_port();
    let public = format!("http://127.0.0.1:{port}");
    add_user(&db.url, &tmp.path().join("cli"), "rita", "pw-rita-12345");
    let env = [("MCPGATE_MASTER_KEY", master.as_str())];
    let config = |i: usize| {
        format!(
            "{}dpop = \"required\"\ndpop_nonce = true\n",
            replica_config(&public, &db.url, &tmp.path().join(format!("notes{i}")))
        )
    };
    let a = Gateway::start_listening_with_env(&config(0), &format!("127.0.0.1:{port}"), &env).await;
    let b = Gateway::start_listening_with_env(&config(1), "127.0.0.1:0", &env).await;

    // A DPoP-bound token from A's token endpoint.
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&public, &[redirect]).await;
    let mut browser = Browser::new();
    let (code, verifier) = new_code(&mut browser, &public, &client_id, redirect).await;
    let key = ProofKey::generate().expect("key");
    let token_url = format!("{public}/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let proof = key.proof("POST", &token_url, None, None).expect("proof");
    let (s, _, t) = token(&public, &form, Some(&proof)).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let dpop = format!("DPoP {access}");

    // The proofs name the public URL, whichever replica gets them.
    let htu = format!("{public}/mcp/demo");
    let (at_a, at_b) = (a.mcp("demo"), b.mcp("demo"));
    let (s, _, e, nonce) = call_nonce(
        &at_b,
        &dpop,
        Some(&key.proof("POST", &htu, Some(&access), None).expect("proof")),
    )
    .await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "use_dpop_nonce")
    );
    let nonce = nonce.expect("DPoP-Nonce from B");
    let proof = key
        .proof("POST", &htu, Some(&access), Some(&nonce))
        .expect("proof");
    let (s, _, e) = call(&at_a, &dpop, Some(&proof)).await;
    assert_eq!(s, StatusCode::OK, "B's nonce at A: {e}");
    let (s, www, e) = call(&at_b, &dpop, Some(&proof)).await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
        "the proof A accepted, replayed to B: {www:?}"
    );
    assert!(www.iter().any(|w| w.contains("used before")), "{www:?}");
    let (s, _, e) = call(&at_a, &dpop, Some(&proof)).await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
        "and to A again"
    );
    // A fresh proof passes at B, once.
    let fresh = key
        .proof("POST", &htu, Some(&access), Some(&nonce))
        .expect("proof");
    let (s, _, e) = call(&at_b, &dpop, Some(&fresh)).await;
    assert_eq!(s, StatusCode::OK, "a fresh proof at B: {e}");
    let (s, _, e) = call(&at_a, &dpop, Some(&fresh)).await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
        "B's proof replayed to A"
    );
}
