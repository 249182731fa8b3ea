//! The SSRF-guarded fetcher end to end: a dynamically registered
//! `private_key_jwt` client whose `jwks_uri` names a loopback address makes
//! the server connect nowhere, and says nothing about what listens there; a
//! JWKS that never ends is cut off at the size cap within the deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::authserver::{config, token};
use crate::authserver_more::{assertion, client_key};
use crate::harness::Gateway;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A loopback listener that counts accepted connections and answers each
/// with `head` followed by `body` repeated (`endless`: forever).
async fn listener(
    head: &'static str,
    body: &'static str,
    endless: bool,
) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let count = accepts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    if s.write_all(body.as_bytes()).await.is_err() || !endless {
                        return;
                    }
                }
            });
        }
    });
    (port, accepts)
}

/// Registers a client-credentials client authenticating with `private_key_jwt` and `jwks_uri`.
async fn register_jwt_client(base: &str, jwks_uri: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "jwks_uri client",
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "jwks_uri": jwks_uri,
        }))
        .send()
        .await
        .expect("register");
    let s = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["client_id"].as_str().expect("client_id").to_owned()
}

async fn client_credentials(base: &str, client_id: &str, der: &[u8]) -> (StatusCode, Value) {
    let a = assertion(der, client_id, &format!("{base}/token"));
    token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_jwks_uri_is_never_connected_to() {
    let (port, accepts) = listener(
        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\n",
        "not here!",
        false,
    )
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_with_data(
        &config(&tmp.path().join("notes"), ""),
        "127.0.0.1:0",
        &tmp.path().join("data"),
    )
    .await;
    let base = gw.base.clone();
    let (der, _) = client_key();
    for jwks_uri in [
        format!("https://127.0.0.1:{port}/jwks"),
        format!("https://localhost:{port}/jwks"),
        format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
    ] {
        let client_id = register_jwt_client(&base, &jwks_uri).await;
        let (s, e) = client_credentials(&base, &client_id, &der).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{jwks_uri}: {e}"
        );
        let said = e["error_description"].as_str().unwrap_or_default();
        assert!(
            !said.contains("404") && !said.contains("HTTP") && !said.contains("not here"),
            "{jwks_uri}: the error reveals the remote's answer: {said}"
        );
    }
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        0,
        "the server connected to a loopback jwks_uri"
    );
    let log = gw.log_tail(200);
    assert!(log.contains("outbound fetch refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_jwks_is_cut_off_at_the_cap() {
    let (port, accepts) = listener(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"keys\":[",
        "{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},",
        true,
    )
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_with_data(
        &config(
            &tmp.path().join("notes"),
            &format!("[authserver.cimd]\nallow_hosts = [\"127.0.0.1:{port}\"]\n"),
        ),
        "127.0.0.1:0",
        &tmp.path().join("data"),
    )
    .await;
    let base = gw.base.clone();
    let (der, _) = client_key();
    let client_id = register_jwt_client(&base, &format!("http://127.0.0.1:{port}/jwks")).await;
    let started = Instant::now();
    let (s, e) = client_credentials(&base, &client_id, &der).await;
    let took = started.elapsed();
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{e}"
    );
    let said = e["error_description"].as_str().unwrap_or_default();
    assert!(said.contains("larger than"), "{said}");
    // Cut off while streaming, long before the 5 s deadline.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_private_deny_keeps_configured_jwks_off_loopback() {
    let (port, accepts) = listener(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n",
        "{\"keys\":[]}",
        false,
    )
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let issuer = "https://idp.example";
    let cfg = config(&tmp.path().join("notes"), "")
        .replacen("[server]\n", "[server]\noutbound_private = \"deny\"\n", 1)
        .replacen(
            "mode = \"required\"\n",
            &format!(
                "mode = \"required\"\n\n[[auth.jwt]]\nissuer = \"{issuer}\"\naudience = \"api\"\n\
                 jwks_uri = \"http://localhost:{port}/jwks\"\nalgorithms = [\"ES256\"]\n"
            ),
            1,
        );
    let gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &tmp.path().join("data")).await;
    // A JWT-shaped token naming the issuer: the verifier must fetch the issuer's keys.
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})),
        b64(json!({"iss": issuer, "aud": "api", "sub": "x", "exp": 4_000_000_000u64})),
    );
    let r = reqwest::Client::new()
        .post(gw.mcp("demo"))
        .bearer_auth(&jwt)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .expect("POST");
    assert!(!r.status().is_success(), "{}", r.status());
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        0,
        "the JWKS on loopback was fetched"
    );
    let log = gw.log_tail(200);
    assert!(log.contains("outbound fetch refused"), "{log}");
}
