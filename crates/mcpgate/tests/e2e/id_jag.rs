//! The jwt-bearer grant (RFC 7523) of the authorization server with
//! assertions of `[[authserver.trusted_issuer]]`s, through the real binary:
//!
//! - Enterprise-managed authorization (SEP-990): an enterprise IdP, mocked at
//!   the HTTP level (a JWKS and an RFC 8693 token exchange issuing ID-JAGs),
//!   `mcpgate login --id-jag` through it, then `mcpgate call` to a tool
//!   through the gateway as the user; and each way an ID-JAG can be wrong,
//!   refused with its error and a log line.
//! - Workload identity (SEP-1933): a Kubernetes-style service-account token
//!   from a file, mapped to a client by its subject, checked against the
//!   issuer's PEM key; `mcpgate call` / `token --workload-token-file`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::add_user;
use crate::authserver_more::client_key;
use crate::harness::{BIN, Gateway, toml_str};

const IDP_CLIENT: &str = "idp-agent";
const IDP_SECRET: &str = "idp-secret-for-the-test-0123456789";
/// The ID token the IdP issued to alice (the IdP only checks it is one of its own).
const ALICE_ID_TOKEN: &str = "alice-id-token-from-the-corporate-sign-in";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn jti() -> String {
    URL_SAFE_NO_PAD.encode(mcpgate_store::random::bytes::<16>())
}

/// Signs `claims` with `der` (ES256, kid `test-1`) under `typ`.
fn sign(der: &[u8], typ: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("test-1".into());
    header.typ = Some(typ.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(der),
    )
    .expect("sign")
}

/// A form as received: its pairs in order.
type Form = Vec<(String, String)>;

/// The mock enterprise IdP: its key, and the token exchanges it answered.
#[derive(Clone)]
struct Idp {
    der: Arc<Vec<u8>>,
    jwks: Value,
    issuer: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Form>>>,
}

async fn jwks(State(idp): State<Idp>) -> Response {
    axum::Json(idp.jwks.clone()).into_response()
}

/// RFC 8693 token exchange: the client authenticates with Basic, the subject
/// token is alice's ID token, the ID-JAG names the AS client `agent-cli`.
async fn exchange(State(idp): State<Idp>, headers: HeaderMap, body: String) -> Response {
    let form: Form = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    idp.seen.lock().expect("lock").push(form.clone());
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{IDP_CLIENT}:{IDP_SECRET}"))
    );
    let refuse = |status: AxStatus, error: &str| {
        (status, axum::Json(json!({"error": error}))).into_response()
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return refuse(AxStatus::UNAUTHORIZED, "invalid_client");
    }
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || get("requested_token_type") != "urn:ietf:params:oauth:token-type:id-jag"
        || get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token"
    {
        return refuse(AxStatus::BAD_REQUEST, "invalid_request");
    }
    if get("subject_token") != ALICE_ID_TOKEN {
        return refuse(AxStatus::BAD_REQUEST, "invalid_grant");
    }
    let iss = idp.issuer.lock().expect("lock").clone();
    let claims = json!({
        "iss": iss, "sub": "alice", "aud": get("audience"),
        "client_id": "agent-cli", "resource": get("resource"),
        "scope": "notes:read", "jti": jti(), "iat": now(), "exp": now() + 300,
    });
    axum::Json(json!({
        "access_token": sign(&idp.der, "oauth-id-jag+jwt", &claims),
        "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
        "token_type": "N_A",
        "expires_in": 300,
    }))
    .into_response()
}

async fn start_idp() -> (Idp, String) {
    let (der, jwks_doc) = client_key();
    let idp = Idp {
        der: Arc::new(der),
        jwks: jwks_doc,
        issuer: Arc::new(Mutex::new(String::new())),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let app = axum::Router::new()
        .route("/jwks", get(jwks))
        .route("/token", post(exchange))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    *idp.issuer.lock().expect("lock") = base.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (idp, base)
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .env_remove("MCPGATE_CONFIG")
        .env_remove("MCPGATE_MASTER_KEY")
        .output()
        .expect("run mcpgate");
    assert!(
        out.status.success(),
        "mcpgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `mcpgate` as a client with its own token store: (success, stdout, stderr).
async fn client(home: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = std::process::Command::new(BIN);
    c.args(args)
        .env("MCPGATE_HOME", home)
        .env("MCPGATE_TOKEN_STORE", "file")
        .env_remove("MCPGATE_CLIENT_SECRET")
        .env_remove("MCPGATE_IDP_CLIENT_SECRET")
        .env_remove("MCPGATE_MCP_CONFIG")
        .env("BROWSER", "false")
        .envs(env.iter().copied());
    let out = tokio::task::spawn_blocking(move || c.output().expect("run mcpgate"))
        .await
        .expect("join");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mcpgate bridge ARGS` over stdio: initialize, then `whoami` twice; the
/// two answers.
fn bridge_whoami_twice(home: &Path, args: &[String]) -> Vec<String> {
    use std::io::{BufRead as _, BufReader, Write as _};
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env("MCPGATE_HOME", home)
        .env("MCPGATE_TOKEN_STORE", "file")
        .env_remove("MCPGATE_CLIENT_SECRET")
        .env_remove("MCPGATE_MCP_CONFIG")
        .env("BROWSER", "false")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the bridge");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().expect("an answer").expect("read");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    writeln!(stdin, "{init}").expect("write");
    let first = next();
    assert!(first.contains("\"result\""), "{first}");
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .expect("write");
    let mut answers = Vec::new();
    for id in [2, 3] {
        writeln!(
            stdin,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"whoami","arguments":{{}}}}}}"#
        )
        .expect("write");
        answers.push(next());
    }
    drop(stdin);
    let _ = child.wait();
    answers
}

fn demo_upstream(notes: &Path) -> String {
    format!(
        "[[upstream]]\nname = \"demo\"\ncommand = [{}, \"demo-server\", \"--data-dir\", {}]\n",
        toml_str(BIN),
        toml_str(&notes.display().to_string()),
    )
}

/// POST /token with the jwt-bearer grant as `client` (Basic); (status, body).
async fn redeem(
    base: &str,
    client: (&str, &str),
    assertion: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let r = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&form)
        .send()
        .await
        .expect("token request");
    (r.status(), r.json().await.expect("token JSON"))
}

fn expect_refusal(got: (StatusCode, Value), error: &str, says: &str) {
    let (status, body) = got;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let d = body["error_description"].as_str().unwrap_or_default();
    assert!(d.contains(says), "wanted {says:?} in {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_jag_from_the_enterprise_idp_signs_in_and_each_bad_grant_is_refused() {
    let (idp, idp_base) = start_idp().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    add_user(&data, "alice", "pw-alice-123", "notes:read notes:write");
    let secret = cli(
        &data,
        &[
            "clients",
            "add",
            "agent cli",
            "--confidential",
            "--client-id",
            "agent-cli",
            "--grant-type",
            "jwt-bearer",
        ],
    );
    let other_secret = cli(
        &data,
        &[
            "clients",
            "add",
            "other app",
            "--confidential",
            "--client-id",
            "other-app",
            "--grant-type",
            "jwt-bearer",
        ],
    );
    let config = format!(
        "[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n\
         [[authserver.trusted_issuer]]\nname = \"corp\"\nissuer = {iss}\njwks_uri = {jwks}\n\
         allowed_clients = [\"agent-cli\", \"other-app\"]\nallowed_scopes = [\"notes:read\"]\n\n\
         [[authserver.trusted_issuer]]\nname = \"corp-email\"\nissuer = {iss2}\njwks_uri = {jwks}\n\
         user_claim = \"email\"\nuser_match = \"email\"\ncreate_users = true\nuser_scopes = [\"notes:read\"]\n\n{up}",
        iss = toml_str(&idp_base),
        iss2 = toml_str(&format!("{idp_base}/email")),
        jwks = toml_str(&format!("{idp_base}/jwks")),
        up = demo_upstream(&tmp.path().join("notes")),
    );
    let gw = Gateway::start_with_data(&config, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");

    let asm: Value = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert!(
        asm["grant_types_supported"]
            .as_array()
            .expect("grants")
            .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")),
        "{asm}"
    );

    // The happy path: login through the IdP's token exchange, then a tool call as alice.
    let home = tmp.path().join("client");
    let id_token = tmp.path().join("id_token");
    std::fs::write(&id_token, format!("{ALICE_ID_TOKEN}\n")).expect("write");
    let id_token_arg = id_token.display().to_string();
    let env = [
        ("MCPGATE_CLIENT_SECRET", secret.as_str()),
        ("MCPGATE_IDP_CLIENT_SECRET", IDP_SECRET),
    ];
    let (ok, _, err) = client(
        &home,
        &[
            "login",
            &mcp,
            "--id-jag",
            "--idp-token-endpoint",
            &format!("{idp_base}/token"),
            "--idp-client-id",
            IDP_CLIENT,
            "--id-token-file",
            &id_token_arg,
            "--client-id",
            "agent-cli",
        ],
        &env,
    )
    .await;
    assert!(ok, "login --id-jag: {err}\n{}", gw.log_tail(30));
    assert!(err.contains("scopes: notes:read"), "{err}");
    {
        let seen = idp.seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        let f = |k: &str| seen[0].iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(f("audience").as_deref(), Some(base.as_str()));
        assert_eq!(f("resource").as_deref(), Some(mcp.as_str()));
    }
    let (ok, out, err) = client(
        &home,
        &[
            "call",
            &mcp,
            "tools/call",
            r#"{"name":"whoami","arguments":{}}"#,
        ],
        &[],
    )
    .await;
    assert!(ok, "call: {err}");
    assert!(out.contains("alice"), "{out}");
    let (ok, out, _) = client(&home, &["status", "--json"], &[]).await;
    assert!(ok);
    let st: Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(st[0]["grant"], "jwt_bearer", "{st}");
    assert_eq!(st[0]["has_refresh_token"], false, "{st}");
    // No refresh token: `token` with the same flags, once the access token is
    // due, exchanges the ID token at the IdP again for a new ID-JAG.
    let (ok, t1, err) = client(&home, &["token", &mcp], &[]).await;
    assert!(ok, "{err}");
    let (ok, t2, err) = client(
        &home,
        &[
            "token",
            &mcp,
            "--refresh-margin",
            "7200",
            "--id-jag",
            "--idp-token-endpoint",
            &format!("{idp_base}/token"),
            "--idp-client-id",
            IDP_CLIENT,
            "--id-token-file",
            &id_token_arg,
            "--client-id",
            "agent-cli",
        ],
        &env,
    )
    .await;
    assert!(ok, "token --id-jag: {err}");
    assert_ne!(t1.trim(), t2.trim());
    assert_eq!(idp.seen.lock().expect("lock").len(), 2);

    // Each bad ID-JAG, presented by agent-cli.
    let me = ("agent-cli", secret.as_str());
    let good = |over: Value| {
        let mut c = json!({
            "iss": idp_base, "sub": "alice", "aud": base, "client_id": "agent-cli",
            "resource": mcp, "scope": "notes:read", "jti": jti(),
            "iat": now(), "exp": now() + 300,
        });
        for (k, v) in over.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let jag = |claims: Value| sign(&idp.der, "oauth-id-jag+jwt", &claims);
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"iss": "https://evil.example"}))),
            &[],
        )
        .await,
        "invalid_grant",
        "not a trusted issuer",
    );
    let (forger, _) = client_key();
    expect_refusal(
        redeem(
            &base,
            me,
            &sign(&forger, "oauth-id-jag+jwt", &good(json!({}))),
            &[],
        )
        .await,
        "invalid_grant",
        "signature does not verify",
    );
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"aud": "https://other-as.example"}))),
            &[],
        )
        .await,
        "invalid_grant",
        "audience",
    );
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"client_id": "other-app"}))),
            &[],
        )
        .await,
        "invalid_grant",
        "issued to client \"other-app\"",
    );
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"exp": now() - 3600, "iat": now() - 4000}))),
            &[],
        )
        .await,
        "invalid_grant",
        "expired",
    );
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"resource": "https://elsewhere.example/mcp"}))),
            &[],
        )
        .await,
        "invalid_grant",
        "resource is not served here",
    );
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({"scope": "notes:read notes:write"}))),
            &[],
        )
        .await,
        "invalid_scope",
        "notes:write",
    );
    expect_refusal(
        redeem(&base, me, &sign(&idp.der, "JWT", &good(json!({}))), &[]).await,
        "invalid_grant",
        "typ header",
    );
    expect_refusal(
        redeem(&base, me, &jag(good(json!({"jti": null}))), &[]).await,
        "invalid_grant",
        "jti",
    );
    expect_refusal(
        redeem(&base, me, &jag(good(json!({"sub": "mallory"}))), &[]).await,
        "invalid_grant",
        "no local user",
    );
    // Another client of the allow-list cannot redeem agent-cli's grant.
    expect_refusal(
        redeem(
            &base,
            ("other-app", &other_secret),
            &jag(good(json!({}))),
            &[],
        )
        .await,
        "invalid_grant",
        "not to the client presenting it",
    );
    // One use per jti.
    let once = jag(good(json!({})));
    let (s, body) = redeem(&base, me, &once, &[]).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "notes:read", "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    expect_refusal(
        redeem(&base, me, &once, &[]).await,
        "invalid_grant",
        "redeemed before",
    );
    // A parameter that contradicts the ID-JAG.
    expect_refusal(
        redeem(
            &base,
            me,
            &jag(good(json!({}))),
            &[("resource", "https://elsewhere.example/mcp")],
        )
        .await,
        "invalid_grant",
        "differs from the assertion's resource",
    );
    // Users by email, created at their first ID-JAG with `user_scopes`, found again after.
    let by_email = |extra: Value| {
        let mut c = good(
            json!({"iss": format!("{idp_base}/email"), "sub": "00u1dana",
            "email": "dana@corp.example", "scope": "notes:read notes:write"}),
        );
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        jag(c)
    };
    let sub_of = |body: &Value| -> Value {
        let t = body["access_token"].as_str().expect("token");
        let p = t.split('.').nth(1).expect("payload");
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("claims")
            ["sub"]
            .clone()
    };
    for _ in 0..2 {
        let (s, body) = redeem(&base, me, &by_email(json!({})), &[]).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(sub_of(&body), "dana@corp.example", "{body}");
        // notes:write is the ID-JAG's, not the created user's.
        assert_eq!(body["scope"], "notes:read", "{body}");
    }
    let users = cli(&data, &["users", "list"]);
    assert_eq!(users.matches("dana@corp.example").count(), 1, "{users}");
    // Every refusal left its reason in the log (never the assertion).
    let log = gw.log_tail(400);
    assert!(log.contains("refused a jwt-bearer grant"), "{log}");
    assert!(log.contains("was redeemed before"), "{log}");
    assert!(!log.contains(&once), "the assertion was logged");
}

/// The SubjectPublicKeyInfo PEM of a P-256 JWK (the issuer's `public_key_file`).
fn pem_of(jwks: &Value) -> String {
    let k = &jwks["keys"][0];
    let mut der = hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.push(4);
    for c in ["x", "y"] {
        der.extend(
            URL_SAFE_NO_PAD
                .decode(k[c].as_str().expect("coordinate"))
                .expect("b64"),
        );
    }
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_token_from_a_file_acts_as_its_mapped_client() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let (der, jwks_doc) = client_key();
    let key_file = tmp.path().join("sa.pub.pem");
    std::fs::write(&key_file, pem_of(&jwks_doc)).expect("write key");
    // A public client: the workload token is its credential.
    cli(
        &data,
        &[
            "clients",
            "add",
            "k8s agent",
            "--client-id",
            "k8s-agent",
            "--grant-type",
            "jwt-bearer",
        ],
    );
    cli(
        &data,
        &[
            "clients",
            "add",
            "ci bot",
            "--client-id",
            "ci-bot",
            "--grant-type",
            "jwt-bearer",
        ],
    );
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let config = format!(
        "[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n\
         [[authserver.trusted_issuer]]\nname = \"cluster\"\nkind = \"workload\"\nissuer = {iss}\n\
         public_key_file = {key}\n\n\
         [[authserver.trusted_issuer.workload]]\nsubject = \"system:serviceaccount:agents:*\"\n\
         client = \"k8s-agent\"\nscopes = [\"notes:read\"]\n\n{up}",
        iss = toml_str(issuer),
        key = toml_str(&key_file.display().to_string()),
        up = demo_upstream(&tmp.path().join("notes")),
    );
    let gw = Gateway::start_with_data(&config, "127.0.0.1:0", &data).await;
    let base = gw.base.clone();
    let mcp = gw.mcp("demo");
    let sa_token = |sub: &str| {
        sign(
            &der,
            "JWT",
            &json!({
                "iss": issuer, "sub": sub, "aud": [base.as_str()],
                "iat": now(), "exp": now() + 3600,
                "kubernetes.io": {"namespace": "agents"},
            }),
        )
    };
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, sa_token("system:serviceaccount:agents:runner")).expect("write");
    let token_arg = token_file.display().to_string();
    let home = tmp.path().join("client");
    let flags = [
        "--workload-token-file",
        token_arg.as_str(),
        "--client-id",
        "k8s-agent",
    ];
    let mut args = vec![
        "call",
        mcp.as_str(),
        "tools/call",
        r#"{"name":"whoami","arguments":{}}"#,
    ];
    args.extend_from_slice(&flags);
    let (ok, out, err) = client(&home, &args, &[]).await;
    assert!(ok, "call --workload-token-file: {err}\n{}", gw.log_tail(30));
    assert!(out.contains("k8s-agent"), "{out}");
    // Renewed with the same (reusable) workload token: a new access token.
    let (ok, t1, err) = client(&home, &["token", &mcp], &[]).await;
    assert!(ok, "{err}");
    let mut args = vec!["token", mcp.as_str(), "--refresh-margin", "7200"];
    args.extend_from_slice(&flags);
    let (ok, t2, err) = client(&home, &args, &[]).await;
    assert!(ok, "{err}");
    assert_ne!(t1.trim(), t2.trim());

    // The stdio bridge signs in with the workload token on its own (a fresh
    // token store) and, with every token due (the margin), renews each one
    // with the token file again: there is no refresh token to use.
    let bridge_home = tmp.path().join("bridge-client");
    let mut args = vec![
        "bridge".to_owned(),
        mcp.clone(),
        "--refresh-margin".to_owned(),
        "7200".to_owned(),
    ];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    let answers = tokio::task::spawn_blocking(move || bridge_whoami_twice(&bridge_home, &args))
        .await
        .expect("join");
    for a in &answers {
        assert!(a.contains("k8s-agent"), "{a}\n{}", gw.log_tail(30));
    }

    // Public clients name themselves with client_id instead of Basic.
    let redeem_public =
        |client_id: &'static str, assertion: String, extra: Vec<(&'static str, &'static str)>| {
            let base = base.clone();
            async move {
                let mut form = vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    ("assertion", assertion),
                    ("client_id", client_id.to_owned()),
                ];
                form.extend(extra.into_iter().map(|(k, v)| (k, v.to_owned())));
                let r = reqwest::Client::new()
                    .post(format!("{base}/token"))
                    .form(&form)
                    .send()
                    .await
                    .expect("token request");
                (r.status(), r.json::<Value>().await.expect("json"))
            }
        };
    expect_refusal(
        redeem_public(
            "k8s-agent",
            sa_token("system:serviceaccount:default:web"),
            vec![],
        )
        .await,
        "invalid_grant",
        "matches no workload rule",
    );
    expect_refusal(
        redeem_public(
            "ci-bot",
            sa_token("system:serviceaccount:agents:runner"),
            vec![],
        )
        .await,
        "invalid_grant",
        "acts as client \"k8s-agent\"",
    );
    expect_refusal(
        redeem_public(
            "k8s-agent",
            sa_token("system:serviceaccount:agents:runner"),
            vec![("scope", "notes:write")],
        )
        .await,
        "invalid_scope",
        "notes:write",
    );
    let (forger, _) = client_key();
    let forged = sign(
        &forger,
        "JWT",
        &json!({"iss": issuer, "sub": "system:serviceaccount:agents:runner", "aud": base, "iat": now(), "exp": now() + 60}),
    );
    expect_refusal(
        redeem_public("k8s-agent", forged, vec![]).await,
        "invalid_grant",
        "signature does not verify",
    );
    assert!(gw.log_tail(200).contains("refused a jwt-bearer grant"));
}
