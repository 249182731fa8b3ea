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
    (status, www, error)
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
