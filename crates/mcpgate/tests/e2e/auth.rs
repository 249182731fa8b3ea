//! The guard end to end: the real binary with authentication on, real rmcp
//! clients holding API keys, Basic passwords and signed JWTs, the CLI that
//! creates and revokes keys while the server runs, scope policy against the
//! demo and server-everything, and what HTTP upstreams learn about the caller.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::harness::client::{Client, TestClient, call, call_ok, text_of};
use crate::harness::raw::{Raw, SseReader, initialize_request, request, tool_call};
use crate::harness::{
    BIN, DemoHttp, Gateway, demo_stdio_upstream, eventually, free_port, toml_str,
};

/// Every tool of the demo server.
const DEMO_TOOLS: [&str; 9] = [
    "confirm_action",
    "create_secure_note",
    "echo",
    "get_api_usage",
    "health_check",
    "list_secure_notes",
    "slow_count",
    "summarize",
    "whoami",
];

/// What a test presents to the gateway.
#[derive(Clone, Copy)]
enum Cred<'a> {
    Bearer(&'a str),
    ApiKey(&'a str),
    Basic(&'a str, &'a str),
}

impl Cred<'_> {
    fn header(&self) -> (HeaderName, HeaderValue) {
        let (name, value) = match self {
            Cred::Bearer(t) => (reqwest::header::AUTHORIZATION, format!("Bearer {t}")),
            Cred::ApiKey(k) => (HeaderName::from_static("x-api-key"), (*k).to_owned()),
            Cred::Basic(u, p) => (
                reqwest::header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ),
            ),
        };
        (name, HeaderValue::from_str(&value).expect("a header value"))
    }
}

// ---- helpers ---------------------------------------------------------------

/// `mcpgate args…` with `stdin`; returns stdout (the command must succeed).
fn mcpgate(args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    // The store of the data directory the arguments name (PostgreSQL runs).
    let data = args
        .iter()
        .position(|a| *a == "--data-dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(Vec::new, |d| crate::harness::store::env_for(Path::new(d)));
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("MCPGATE_SERVER__DATA_DIR")
        .env_remove("DATABASE_URL")
        .envs(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcpgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for mcpgate");
    assert!(
        out.status.success(),
        "mcpgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// `mcpgate keys create`: the new key (alone on stdout).
pub(crate) fn create_key(data: &Path, name: &str, scopes: &str, subject: Option<&str>) -> String {
    let d = data.display().to_string();
    let mut args = vec![
        "keys",
        "create",
        "--name",
        name,
        "--scopes",
        scopes,
        "--data-dir",
        &d,
    ];
    if let Some(s) = subject {
        args.extend(["--subject", s]);
    }
    let out = mcpgate(&args, "");
    let key = out.trim().to_owned();
    assert!(
        key.starts_with("mcpg_") && !key.contains('\n'),
        "keys create printed {out:?}"
    );
    key
}

/// A reqwest client that sends `cred` on every request.
fn http_as(cred: Cred<'_>) -> reqwest::Client {
    let (name, value) = cred.header();
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a reqwest client")
}

fn raw_as(url: &str, cred: Cred<'_>) -> Raw {
    Raw::with_client(http_as(cred), url)
}

/// An rmcp client on `url` presenting `cred`, or the error it failed with.
async fn try_connect(url: &str, cred: Option<Cred<'_>>) -> Result<Client, String> {
    let mut cfg =
        StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
    match cred {
        Some(Cred::Bearer(t)) => cfg = cfg.auth_header(t),
        Some(c) => {
            let (name, value) = c.header();
            cfg = cfg.custom_headers(HashMap::from([(name, value)]));
        }
        None => {}
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), cfg);
    TestClient::default()
        .serve(transport)
        .await
        .map_err(|e| error_chain(&e))
}

async fn connect_as(url: &str, cred: Cred<'_>) -> Client {
    try_connect(url, Some(cred))
        .await
        .unwrap_or_else(|e| panic!("the rmcp client could not initialize through {url}: {e}"))
}

/// An error and all its sources, for matching on what a client was told.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(" <- ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

async fn tool_names(client: &Client) -> BTreeSet<String> {
    client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A tools/call the gateway must refuse at the HTTP level; the client's error.
async fn call_refused(client: &Client, tool: &str, args: Value) -> String {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    match client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
    {
        Ok(r) => panic!("{tool} should have been refused, got {r:?}"),
        Err(e) => error_chain(&e),
    }
}

/// An HTTP answer: status, `WWW-Authenticate`, and the JSON body (or Null).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    www: String,
    body: Value,
}

impl Answer {
    async fn of(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let www = resp
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("ASCII WWW-Authenticate").to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let text = resp.text().await.expect("read the body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, www, body }
    }

    fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or_default()
    }

    /// A guard refusal: `status`, a Bearer challenge, `{error, error_description}`.
    fn assert_refusal(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.www.starts_with("Bearer "), "{self:?}");
        assert_eq!(self.body["error"], error, "{self:?}");
        assert!(!self.description().is_empty(), "{self:?}");
    }
}

/// POSTs `body` to `url` with `headers` and no session.
async fn post_with(url: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Answer::of(req.send().await.expect("POST")).await
}

/// The `structuredContent` of a raw tools/call response.
fn structured(resp: &Value) -> &Value {
    let s = &resp["result"]["structuredContent"];
    assert!(s.is_object(), "no structured content: {resp}");
    s
}

/// Waits for the demo banner; the API key it printed, if any.
pub(crate) async fn demo_banner_key(gw: &Gateway) -> Option<String> {
    eventually(Duration::from_secs(10), "the demo banner", || {
        gw.stdout_lines()
            .iter()
            .any(|l| l.contains("Stop with Ctrl-C"))
    })
    .await;
    let lines = gw.stdout_lines();
    let at = lines.iter().position(|l| l.contains("Your demo API key"))?;
    let key = lines.get(at + 1)?.trim().to_owned();
    assert!(key.starts_with("mcpg_"), "{lines:#?}");
    Some(key)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

// ---- 1. serve --demo with its key ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_requires_the_key_it_prints_on_first_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut gw = Gateway::start_demo_with_auth(&data).await;
    let key = demo_banner_key(&gw)
        .await
        .expect("the first start prints the demo key");
    assert!(key.len() >= 5 + 32, "{key}");
    let url = gw.mcp("demo");

    // No credential: 401, a Bearer challenge and a JSON error a user can act on.
    let a = post_with(&url, &[], &initialize_request()).await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(a.description().contains("Authorization: Bearer"), "{a:?}");
    let err = try_connect(&url, None)
        .await
        .err()
        .expect("an rmcp client without a key must not initialize");
    assert!(err.contains("Auth required"), "{err}");

    // Bearer: the whole demo, as demo-user.
    let client = connect_as(&url, Cred::Bearer(&key)).await;
    assert_eq!(tool_names(&client).await, names(&DEMO_TOOLS));
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "demo-user", "{me}");
    let content = format!("e2e note {}", now());
    let note = call_ok(
        &client,
        "create_secure_note",
        json!({ "title": "auth", "content": content }),
    )
    .await;
    let id = note["id"].as_i64().expect("a note id");
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"][0]["id"], id, "{listed}");
    assert_eq!(listed["notes"][0]["content"], content.as_str(), "{listed}");
    client.cancel().await.expect("close");

    // X-API-Key, on the single-upstream alias /mcp: the same user, the same notes.
    let client = connect_as(&format!("{}/mcp", gw.base), Cred::ApiKey(&key)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "demo-user", "{me}");
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"][0]["content"], content.as_str(), "{listed}");
    client.cancel().await.expect("close");

    // A read-only key, created while the server runs: no create_* in the list,
    // and calling it is a 403 step-up answer naming notes:write.
    let reader = create_key(&data, "reader", "notes:read", None);
    let client = connect_as(&url, Cred::Bearer(&reader)).await;
    let mut expected = names(&DEMO_TOOLS);
    expected.remove("create_secure_note");
    assert_eq!(tool_names(&client).await, expected);
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "reader", "{me}");
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"], json!([]), "another user's notes: {listed}");
    let err = call_refused(
        &client,
        "create_secure_note",
        json!({ "title": "x", "content": "y" }),
    )
    .await;
    assert!(err.contains("Insufficient scope"), "{err}");
    client.cancel().await.expect("close");

    let raw = raw_as(&url, Cred::Bearer(&reader));
    let session = raw.initialize().await;
    let resp = raw
        .post(
            Some(&session),
            &tool_call(
                json!(7),
                "create_secure_note",
                json!({ "title": "x", "content": "y" }),
            ),
        )
        .await;
    let a = Answer::of(resp).await;
    a.assert_refusal(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(a.www.contains("error=\"insufficient_scope\""), "{a:?}");
    assert!(a.www.contains("scope=\"notes:write\""), "{a:?}");
    assert!(a.description().contains("notes:write"), "{a:?}");
    // Reading is allowed in the same session.
    let r = raw
        .call(
            &session,
            &tool_call(json!(8), "list_secure_notes", json!({})),
        )
        .await;
    assert_eq!(structured(&r)["notes"], json!([]), "{r}");

    // Restart: no new key is printed, the old one still works.
    assert!(gw.stop().await.success());
    let gw = Gateway::start_demo_with_auth(&data).await;
    assert_eq!(demo_banner_key(&gw).await, None);
    let out = gw.stdout_lines().join("\n");
    assert!(!out.contains("mcpg_"), "a key was printed again:\n{out}");
    assert!(out.contains("printed on the first start"), "{out}");
    let client = connect_as(&gw.mcp("demo"), Cred::Bearer(&key)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "demo-user", "{me}");
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"][0]["content"], content.as_str(), "{listed}");
    client.cancel().await.expect("close");
}

// ---- 2. sessions belong to their subject -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_subject_that_opened_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let all = "notes:read notes:write";
    let ka = create_key(&data, "a", all, Some("alice"));
    let ka2 = create_key(&data, "a2", all, Some("alice"));
    let kb = create_key(&data, "b", all, Some("bob"));
    let gw = Gateway::start_demo_with_auth(&data).await;
    let url = gw.mcp("demo");
    let a = raw_as(&url, Cred::Bearer(&ka));
    let b = raw_as(&url, Cred::Bearer(&kb));

    let session = a.initialize().await;
    let r = a
        .call(&session, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert_eq!(structured(&r)["subject"], "alice", "{r}");

    // Bob presenting Alice's session id: as if it did not exist.
    let resp = b
        .post(Some(&session), &tool_call(json!(3), "whoami", json!({})))
        .await;
    let a404 = Answer::of(resp).await;
    assert_eq!(a404.status, StatusCode::NOT_FOUND, "{a404:?}");
    assert!(!a404.body.to_string().contains("alice"), "{a404:?}");
    let resp = b
        .post(Some(&session), &request(json!(4), "tools/list", json!({})))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(b.delete(&session).await, StatusCode::NOT_FOUND);
    let resp = b
        .http
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // Bob's attempts did not end it; another key of the same subject may use it.
    let r = a
        .call(&session, &tool_call(json!(5), "whoami", json!({})))
        .await;
    assert_eq!(structured(&r)["subject"], "alice", "{r}");
    let a2 = raw_as(&url, Cred::ApiKey(&ka2));
    let r = a2
        .call(&session, &tool_call(json!(6), "whoami", json!({})))
        .await;
    assert_eq!(structured(&r)["subject"], "alice", "{r}");

    // The legacy HTTP+SSE endpoint: the stream needs a credential, and its
    // message endpoint is Alice's alone.
    let sse_url = format!("{url}/sse");
    let anonymous = reqwest::Client::new()
        .get(&sse_url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    Answer::of(anonymous)
        .await
        .assert_refusal(StatusCode::UNAUTHORIZED, "unauthorized");
    let stream = a
        .http
        .get(&sse_url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(stream.status(), StatusCode::OK);
    let mut events = SseReader::new(stream);
    let endpoint = events
        .next(Duration::from_secs(10))
        .await
        .expect("an endpoint event")
        .data;
    assert!(endpoint.starts_with("/mcp/demo/messages?"), "{endpoint}");
    let messages = format!("{}{endpoint}", gw.base);
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2024-11-05", "capabilities": {},
                    "clientInfo": { "name": "mcpgate-e2e-sse", "version": "0" } }
    });
    let post = |http: &reqwest::Client| {
        http.post(&messages)
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
    };
    let r = post(&reqwest::Client::new()).await.expect("POST");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = post(&b.http).await.expect("POST");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(&a.http).await.expect("POST");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer = loop {
        let ev = events
            .next(Duration::from_secs(10))
            .await
            .expect("the initialize answer on the stream");
        if let Some(v) = ev.json()
            && v["id"] == 1
        {
            break v;
        }
    };
    assert_eq!(
        answer["result"]["protocolVersion"], "2024-11-05",
        "{answer}"
    );
}

// ---- 3. revocation in a running server -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_within_a_second() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = create_key(&data, "ci", "notes:read notes:write", None);
    let gw = Gateway::start_demo_with_auth(&data).await;
    let raw = raw_as(&gw.mcp("demo"), Cred::Bearer(&key));
    let session = raw.initialize().await;
    let list = request(json!(2), "tools/list", json!({}));
    for _ in 0..3 {
        raw.call(&session, &list).await; // the verified key is cached now
    }

    let d = data.display().to_string();
    tokio::task::spawn_blocking(move || mcpgate(&["keys", "revoke", "ci", "--data-dir", &d], ""))
        .await
        .expect("keys revoke");
    let revoked = Instant::now();
    let (latency, refusal) = loop {
        let resp = raw.post(Some(&session), &list).await;
        let sent = revoked.elapsed();
        if resp.status() == StatusCode::UNAUTHORIZED {
            break (sent, Answer::of(resp).await);
        }
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            sent < Duration::from_secs(5),
            "the revoked key still works {sent:?} after `keys revoke`"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("revocation latency: {latency:?}");
    assert!(
        latency <= Duration::from_millis(1500),
        "the first refusal came {latency:?} after the revocation"
    );
    refusal.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        refusal
            .description()
            .contains("API key \"ci\" was revoked at"),
        "{refusal:?}"
    );

    // More than a second later it stays refused, and cannot open a new session.
    let wait = Duration::from_millis(1100).saturating_sub(revoked.elapsed());
    tokio::time::sleep(wait).await;
    let a = Answer::of(raw.post(Some(&session), &list).await).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert!(a.description().contains("was revoked at"), "{a:?}");
    let a = Answer::of(raw.post(None, &initialize_request()).await).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert!(a.description().contains("was revoked at"), "{a:?}");
}

// ---- 4. where credentials may come from; Basic users ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_query_twice_or_as_basic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let key = create_key(&data, "k", "notes:read notes:write", None);
    let gw = Gateway::start_demo_with_auth(&data).await;
    let url = gw.mcp("demo");
    let init = initialize_request();

    // A token in the URL: 400 saying where it goes, with or without a header too.
    for param in ["access_token", "api_key", "token"] {
        let a = post_with(&format!("{url}?{param}={key}"), &[], &init).await;
        a.assert_refusal(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(a.description().contains(param), "{a:?}");
        assert!(a.description().contains("Authorization: Bearer"), "{a:?}");
        assert!(!a.description().contains(&key), "the key is echoed: {a:?}");
    }
    let bearer = format!("Bearer {key}");
    let a = post_with(
        &format!("{url}?access_token={key}"),
        &[("authorization", &bearer)],
        &init,
    )
    .await;
    a.assert_refusal(StatusCode::BAD_REQUEST, "invalid_request");

    // Two credentials: 400.
    let a = post_with(
        &url,
        &[("authorization", &bearer), ("x-api-key", &key)],
        &init,
    )
    .await;
    a.assert_refusal(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(a.description().contains("one credential"), "{a:?}");
    let a = post_with(
        &url,
        &[("authorization", &bearer), ("authorization", &bearer)],
        &init,
    )
    .await;
    a.assert_refusal(StatusCode::BAD_REQUEST, "invalid_request");

    // A Basic user added while the server runs.
    let d = data.display().to_string();
    let password = "correct horse battery staple";
    mcpgate(
        &[
            "users",
            "add",
            "bob",
            "--password-stdin",
            "--scopes",
            "notes:read",
            "--data-dir",
            &d,
        ],
        &format!("{password}\n"),
    );
    let client = connect_as(&url, Cred::Basic("bob", password)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "bob", "{me}");
    let mut expected = names(&DEMO_TOOLS);
    expected.remove("create_secure_note");
    assert_eq!(tool_names(&client).await, expected);
    client.cancel().await.expect("close");

    for (user, pass) in [("bob", "Tr0ub4dor&3"), ("nobody", password)] {
        let a = Answer::of(
            raw_as(&url, Cred::Basic(user, pass))
                .post(None, &init)
                .await,
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{user}: {a:?}");
        assert!(a.www.starts_with("Bearer "), "{a:?}");
        assert!(!a.description().is_empty(), "{a:?}");
        assert!(
            !a.body.to_string().contains(pass),
            "the password is echoed: {a:?}"
        );
    }
    let err = try_connect(&url, Some(Cred::Basic("bob", "Tr0ub4dor&3")))
        .await
        .err()
        .expect("a wrong password must not initialize");
    assert!(err.contains("Auth required"), "{err}");
}

// ---- 5. JWT from an issuer with a JWKS --------------------------------------

/// An ES256 key, its JWKS, and a JWKS server on loopback.
struct Issuer {
    url: String,
    kid: String,
    key: EncodingKey,
    _server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    async fn start() -> Issuer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
        let der = pair.to_pkcs8v1().expect("PKCS#8");
        let key = EncodingKey::from_ec_der(der.as_ref());
        let kid = "e2e-key-1".to_owned();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("a JWK");
        jwk.common.key_id = Some(kid.clone());
        let jwks = serde_json::to_value(JwkSet { keys: vec![jwk] }).expect("a JWKS");
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the JWKS server");
        });
        Issuer {
            url,
            kid,
            key,
            _server: server,
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.key).expect("sign")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_from_a_jwks_issuer_end_to_end() {
    let issuer = Issuer::start().await;
    let notes = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let resource = format!("{base}/mcp/notes");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [[auth.jwt]]\nname = \"e2e-idp\"\nissuer = {iss}\naudience = {aud}\n\
         jwks_uri = {jwks}\nallow_http = true\nalgorithms = [\"ES256\"]\n\n{up}",
        iss = toml_str(&issuer.url),
        aud = toml_str(&resource),
        jwks = toml_str(&format!("{}/jwks.json", issuer.url)),
        up = demo_stdio_upstream(
            "notes",
            notes.path(),
            "isolation = \"session\"\n\
             tool_scopes = { \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }",
        ),
    );
    let gw = Gateway::start_listening(&config, &format!("127.0.0.1:{port}")).await;
    assert_eq!(gw.base, base);
    let url = gw.mcp("notes");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp/notes");

    // RFC 9728 metadata names the issuer; the challenge points at it.
    let meta: Value = reqwest::get(&metadata_url)
        .await
        .expect("GET metadata")
        .json()
        .await
        .expect("JSON metadata");
    assert_eq!(meta["resource"], resource.as_str(), "{meta}");
    assert_eq!(meta["authorization_servers"], json!([issuer.url]), "{meta}");
    let root: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .expect("GET root metadata")
        .json()
        .await
        .expect("JSON");
    assert_eq!(root["authorization_servers"], json!([issuer.url]), "{root}");
    let a = post_with(&url, &[], &initialize_request()).await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        a.www
            .contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{a:?}"
    );

    let claims = |aud: &str, scope: &str, exp: u64| {
        json!({
            "iss": issuer.url, "aud": aud, "sub": "jwt-alice", "client_id": "e2e-client",
            "scope": scope, "iat": now() - 10, "exp": exp,
        })
    };
    let token = issuer.sign(&claims(&resource, "notes:read notes:write", now() + 300));
    let client = connect_as(&url, Cred::Bearer(&token)).await;
    assert_eq!(tool_names(&client).await, names(&DEMO_TOOLS));
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "jwt-alice", "{me}");
    let note = call_ok(
        &client,
        "create_secure_note",
        json!({ "title": "jwt", "content": "signed by the e2e issuer" }),
    )
    .await;
    let listed = call_ok(&client, "list_secure_notes", json!({})).await;
    assert_eq!(listed["notes"][0]["id"], note["id"], "{listed}");
    client.cancel().await.expect("close");

    // `X/` is the same resource as `X`.
    let token = issuer.sign(&claims(&format!("{resource}/"), "notes:read", now() + 300));
    let client = connect_as(&url, Cred::Bearer(&token)).await;
    let names_seen = tool_names(&client).await;
    assert!(!names_seen.contains("create_secure_note"), "{names_seen:?}");
    let err = call_refused(
        &client,
        "create_secure_note",
        json!({ "title": "x", "content": "y" }),
    )
    .await;
    assert!(err.contains("Insufficient scope"), "{err}");
    client.cancel().await.expect("close");
    let raw = raw_as(&url, Cred::Bearer(&token));
    let session = raw.initialize().await;
    let a = Answer::of(
        raw.post(
            Some(&session),
            &tool_call(
                json!(2),
                "create_secure_note",
                json!({ "title": "x", "content": "y" }),
            ),
        )
        .await,
    )
    .await;
    a.assert_refusal(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(a.www.contains("scope=\"notes:write\""), "{a:?}");
    assert!(
        a.www
            .contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{a:?}"
    );

    // Expired (beyond the 60 s leeway): 401 saying when.
    let expired = issuer.sign(&claims(&resource, "notes:read", now() - 600));
    let a = Answer::of(
        raw_as(&url, Cred::Bearer(&expired))
            .post(None, &initialize_request())
            .await,
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(a.description().starts_with("Token expired at "), "{a:?}");
    assert!(a.www.contains("resource_metadata="), "{a:?}");
    assert!(
        try_connect(&url, Some(Cred::Bearer(&expired)))
            .await
            .is_err()
    );

    // Another resource's token: 401 naming the audience problem.
    let other = issuer.sign(&claims(
        &format!("{base}/mcp/other"),
        "notes:read",
        now() + 300,
    ));
    let a = Answer::of(
        raw_as(&url, Cred::Bearer(&other))
            .post(None, &initialize_request())
            .await,
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        a.description().contains("Token audience does not include"),
        "{a:?}"
    );
    assert!(try_connect(&url, Some(Cred::Bearer(&other))).await.is_err());
}

// ---- 6. tools/list filtering against server-everything ----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_scopes_filter_server_everything() {
    let entry = crate::everything::entry();
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [[upstream]]\nname = \"everything\"\ncommand = [\"node\", {}, \"stdio\"]\n\
         tool_scopes = {{ \"get-sum\" = \"math\" }}\n",
        toml_str(&entry.display().to_string())
    );
    let gw = Gateway::start(&config).await;
    let url = gw.mcp("everything");
    let plain = create_key(gw.data_dir(), "plain", "notes:read", None);
    let admin = create_key(gw.data_dir(), "admin", "*", None);

    let client = connect_as(&url, Cred::Bearer(&plain)).await;
    let seen = tool_names(&client).await;
    assert!(seen.contains("echo"), "{seen:?}");
    assert!(!seen.contains("get-sum"), "get-sum is listed: {seen:?}");
    let echoed = call(&client, "echo", json!({ "message": "scoped" })).await;
    assert_eq!(text_of(&echoed), "Echo: scoped");
    let err = call_refused(&client, "get-sum", json!({ "a": 2, "b": 40 })).await;
    assert!(err.contains("Insufficient scope"), "{err}");
    client.cancel().await.expect("close");
    let raw = raw_as(&url, Cred::Bearer(&plain));
    let session = raw.initialize().await;
    let a = Answer::of(
        raw.post(
            Some(&session),
            &tool_call(json!(2), "get-sum", json!({ "a": 2, "b": 40 })),
        )
        .await,
    )
    .await;
    a.assert_refusal(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(a.www.contains("scope=\"math\""), "{a:?}");

    let client = connect_as(&url, Cred::Bearer(&admin)).await;
    let seen = tool_names(&client).await;
    assert!(
        seen.contains("get-sum") && seen.contains("echo"),
        "{seen:?}"
    );
    let r = call(&client, "get-sum", json!({ "a": 2, "b": 40 })).await;
    assert_eq!(text_of(&r), "The sum of 2 and 40 is 42.");
    client.cancel().await.expect("close");
}

// ---- 7. what an HTTP upstream learns about the caller ----------------------

/// A reverse proxy in front of an upstream that records every request's headers.
#[derive(Clone)]
struct Recorder {
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Recorder {
    /// A recording proxy on loopback in front of `demo`; its MCP URL.
    async fn start(demo: &DemoHttp) -> (Recorder, String) {
        let rec = Recorder {
            target: demo.url.trim_end_matches("/mcp").to_owned(),
            http: reqwest::Client::new(),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the proxy");
        });
        (rec, url)
    }

    fn seen(&self) -> Vec<HeaderMap> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn forward(State(rec): State<Recorder>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    rec.seen.lock().expect("lock").push(parts.headers.clone());
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("read the body");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = rec
        .http
        .request(parts.method, format!("{}{path}", rec.target))
        .body(body);
    for (k, v) in &parts.headers {
        if k != reqwest::header::HOST && k != reqwest::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.expect("the upstream answers");
    let mut answer = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != reqwest::header::CONTENT_LENGTH && k != reqwest::header::TRANSFER_ENCODING {
            answer = answer.header(k, v);
        }
    }
    answer
        .body(Body::from_stream(resp.bytes_stream()))
        .expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstreams_get_a_signed_identity_never_the_client_token() {
    let demo = DemoHttp::start().await;
    let (rec, proxy) = Recorder::start(&demo).await;

    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [[upstream]]\nname = \"notes\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&proxy)
    );
    let gw = Gateway::start(&config).await;
    let key = create_key(
        gw.data_dir(),
        "alice-key",
        "notes:read notes:write",
        Some("alice"),
    );

    // The client also tries to claim another identity with the gateway's own headers.
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(gw.mcp("notes"))
        .reinit_on_expired_session(false)
        .auth_header(key.clone());
    cfg = cfg.custom_headers(HashMap::from([
        (
            HeaderName::from_static("x-mcpgate-subject"),
            HeaderValue::from_static("mallory"),
        ),
        (
            HeaderName::from_static("x-mcpgate-identity"),
            HeaderValue::from_static("forged.identity.token"),
        ),
    ]));
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), cfg);
    let client = TestClient::default()
        .serve(transport)
        .await
        .expect("the rmcp client initializes");
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "alice", "{me}");
    assert_eq!(me["source"], "header", "{me}");
    client.cancel().await.expect("close");

    let seen = rec.seen();
    assert!(!seen.is_empty(), "the upstream saw no request");
    let jwks: JwkSet = reqwest::get(format!(
        "{}/.well-known/mcpgate/identity-jwks.json",
        gw.base
    ))
    .await
    .expect("GET identity JWKS")
    .json()
    .await
    .expect("a JWKS");
    let mut verified = 0;
    for headers in &seen {
        // The client's credential never reaches the upstream, in any header.
        assert!(
            headers.get(reqwest::header::AUTHORIZATION).is_none(),
            "{headers:?}"
        );
        for (name, value) in headers {
            let v = value.to_str().unwrap_or_default();
            assert!(
                !v.contains(&key),
                "the client's key reached the upstream in {name}"
            );
            assert!(
                !v.contains("mallory"),
                "a client-sent header reached the upstream: {name}"
            );
        }
        let Some(token) = headers.get("x-mcpgate-identity") else {
            continue;
        };
        let token = token.to_str().expect("ASCII");
        assert_eq!(
            headers.get("x-mcpgate-subject").map(|v| v.to_str().ok()),
            Some(Some("alice"))
        );
        let header = jsonwebtoken::decode_header(token).expect("a JWS header");
        assert_eq!(header.alg, Algorithm::ES256);
        let kid = header.kid.expect("a kid");
        let jwk = jwks.find(&kid).expect("the kid is in the gateway's JWKS");
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[gw.base.as_str()]);
        validation.set_audience(&["notes"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_jwk(jwk).expect("a decoding key"),
            &validation,
        )
        .unwrap_or_else(|e| panic!("the identity token does not verify: {e}"))
        .claims;
        assert_eq!(claims["sub"], "alice", "{claims}");
        assert_eq!(claims["scope"], "notes:read notes:write", "{claims}");
        assert!(
            claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
            "{claims}"
        );
        let ttl = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
        assert!(ttl > 0 && ttl <= 60, "{claims}");
        verified += 1;
    }
    assert!(
        verified > 0,
        "no request to the upstream carried x-mcpgate-identity: {seen:?}"
    );
}

// ---- 8. static tokens from the configuration and a file ---------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_tokens_from_config_and_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inline = "static-inline-token-0123456789abcdefghijkl";
    let from_file = "static-file-token-0123456789abcdefghijklmn";
    let file = tmp.path().join("tokens");
    std::fs::write(
        &file,
        format!("# subject svc-file, read only\n{from_file}:svc-file:notes:read\n"),
    )
    .expect("write the tokens file");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [auth.static_tokens]\ntokens_file = {file}\n\
         [[auth.static_tokens.tokens]]\ntoken = {inline}\nsubject = \"svc-inline\"\n\
         scopes = \"notes:read notes:write\"\n\n{up}",
        file = toml_str(&file.display().to_string()),
        inline = toml_str(inline),
        up = demo_stdio_upstream(
            "notes",
            &tmp.path().join("notes"),
            "isolation = \"session\"\ntool_scopes = { \"create_*\" = \"notes:write\" }",
        ),
    );
    let gw = Gateway::start(&config).await;
    let url = gw.mcp("notes");

    let client = connect_as(&url, Cred::Bearer(inline)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "svc-inline", "{me}");
    assert_eq!(tool_names(&client).await, names(&DEMO_TOOLS));
    client.cancel().await.expect("close");

    let client = connect_as(&url, Cred::ApiKey(from_file)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "svc-file", "{me}");
    let seen = tool_names(&client).await;
    assert!(!seen.contains("create_secure_note"), "{seen:?}");
    client.cancel().await.expect("close");

    // A near miss is not accepted.
    let near = format!("{}X", &inline[..inline.len() - 1]);
    let a = post_with(
        &url,
        &[("authorization", &format!("Bearer {near}"))],
        &initialize_request(),
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(a.description().contains("not recognized"), "{a:?}");

    // Short tokens are refused at start unless allowed.
    let bad = format!(
        "[auth.static_tokens]\n[[auth.static_tokens.tokens]]\ntoken = \"short-token\"\nsubject = \"x\"\n\n{}",
        demo_stdio_upstream("notes", &tmp.path().join("notes"), "")
    );
    let path = tmp.path().join("short.toml");
    std::fs::write(&path, bad).expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(tmp.path().join("data2"))
        .output()
        .expect("run serve");
    assert!(!out.status.success(), "started with a short static token");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("32"), "{err}");
}

// ---- 9. RFC 7662 introspection ------------------------------------------------

/// One call to the introspection endpoint: its `Authorization` header and form body.
type IntrospectionCall = (Option<String>, String);

/// An introspection endpoint: `active-*` tokens are active, others not; it can fail on demand.
#[derive(Clone, Default)]
struct Idp {
    calls: Arc<Mutex<Vec<IntrospectionCall>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

async fn introspect(State(idp): State<Idp>, req: Request) -> Response {
    let auth = req
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), 1 << 16)
        .await
        .expect("a body");
    let form = String::from_utf8(body.to_vec()).expect("UTF-8 form");
    idp.calls.lock().expect("lock").push((auth, form.clone()));
    if idp.failing.load(std::sync::atomic::Ordering::SeqCst) {
        return Response::builder()
            .status(500)
            .body(Body::from("idp broken"))
            .expect("a response");
    }
    let token = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or_default();
    let answer = if token.starts_with("active-") {
        json!({ "active": true, "sub": "intro-user", "scope": "notes:read",
                "client_id": "intro-client", "exp": now() + 300 })
    } else {
        json!({ "active": false })
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(answer.to_string()))
        .expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspected_opaque_tokens() {
    let idp = Idp::default();
    let app = axum::Router::new()
        .route("/introspect", axum::routing::post(introspect))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}/introspect", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("the IdP");
    });
    let notes = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n\
         [auth.introspection]\nendpoint = {}\nclient_id = \"mcpgate\"\n\
         client_secret = \"introspection-secret-e2e\"\n\n{}",
        toml_str(&endpoint),
        demo_stdio_upstream(
            "notes",
            notes.path(),
            "isolation = \"session\"\ntool_scopes = { \"create_*\" = \"notes:write\" }",
        ),
    );
    let gw = Gateway::start(&config).await;
    let url = gw.mcp("notes");

    let client = connect_as(&url, Cred::Bearer("active-opaque-1")).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "intro-user", "{me}");
    let seen = tool_names(&client).await;
    assert!(!seen.contains("create_secure_note"), "{seen:?}");
    client.cancel().await.expect("close");
    let calls = idp.calls.lock().expect("lock").clone();
    // Cached: one call for the whole session; mcpgate authenticated itself.
    assert_eq!(calls.len(), 1, "{calls:?}");
    let basic =
        base64::engine::general_purpose::STANDARD.encode("mcpgate:introspection-secret-e2e");
    assert_eq!(
        calls[0].0.as_deref(),
        Some(format!("Basic {basic}").as_str())
    );
    assert!(calls[0].1.contains("token=active-opaque-1"), "{calls:?}");

    let a = post_with(
        &url,
        &[("authorization", "Bearer revoked-opaque")],
        &initialize_request(),
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(a.description().contains("not active"), "{a:?}");

    // The identity provider fails: 503 with Retry-After, never "allow".
    idp.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", "Bearer active-opaque-2")
        .body(initialize_request().to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "{:?}",
        resp.headers()
    );
    let a = Answer::of(resp).await;
    assert!(a.description().contains("try again"), "{a:?}");
}

// ---- 10. a user's own upstream key -----------------------------------------------

const UPSTREAM_KEY: &str = "[[auth.upstream_key]]\nupstream = \"wandb\"\nformat = \"[A-Za-z0-9]{40}\"\n\
     format_description = \"exactly 40 alphanumeric characters\"\nheader = \"X-Upstream-Key\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_own_upstream_key_reaches_only_its_upstream() {
    let demo = DemoHttp::start().await;
    let (rec, proxy) = Recorder::start(&demo).await;
    let notes = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n{UPSTREAM_KEY}\n\
         [[upstream]]\nname = \"wandb\"\nurl = {}\ntransport = \"streamable-http\"\n\n{}",
        toml_str(&proxy),
        demo_stdio_upstream("notes", notes.path(), "isolation = \"session\""),
    );
    let gw = Gateway::start(&config).await;
    let user_key = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd";
    assert_eq!(user_key.len(), 40);

    let client = connect_as(&gw.mcp("wandb"), Cred::Bearer(user_key)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    let subject = me["subject"].as_str().expect("a subject").to_owned();
    assert!(subject.starts_with("wandb:"), "{me}");
    assert!(!subject.contains(user_key), "{me}");
    client.cancel().await.expect("close");
    let seen = rec.seen();
    let delivered: Vec<_> = seen
        .iter()
        .filter_map(|h| h.get("x-upstream-key"))
        .collect();
    assert!(
        !delivered.is_empty(),
        "the key never reached its upstream: {seen:?}"
    );
    assert!(delivered.iter().all(|v| *v == user_key), "{delivered:?}");
    assert!(
        seen.iter()
            .all(|h| h.get(reqwest::header::AUTHORIZATION).is_none()),
        "{seen:?}"
    );

    // Not on another upstream; a malformed key is named as such.
    let a = post_with(
        &gw.mcp("notes"),
        &[("authorization", &format!("Bearer {user_key}"))],
        &initialize_request(),
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        a.description().contains("for upstream wandb, not notes"),
        "{a:?}"
    );
    let a = post_with(
        &gw.mcp("wandb"),
        &[("x-api-key", "too-short")],
        &initialize_request(),
    )
    .await;
    a.assert_refusal(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(
        a.description(),
        "Invalid API key format: expected exactly 40 alphanumeric characters",
        "{a:?}"
    );

    // mcpgate's own API keys still work next to it.
    let key = create_key(gw.data_dir(), "k", "*", Some("carol"));
    let client = connect_as(&gw.mcp("notes"), Cred::Bearer(&key)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "carol", "{me}");
    client.cancel().await.expect("close");
}

// ---- 11. JWT next to a user's-own-key upstream -------------------------------

/// `[[auth.upstream_key]]` for one upstream must not stop JWTs (tried later in
/// the default order) from working on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_still_works_when_an_upstream_key_is_configured() {
    let issuer = Issuer::start().await;
    let demo = DemoHttp::start().await;
    let notes = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp/notes");
    let config = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n{UPSTREAM_KEY}\n\
         [[auth.jwt]]\nissuer = {iss}\naudience = {aud}\njwks_uri = {jwks}\nallow_http = true\n\n\
         [[upstream]]\nname = \"wandb\"\nurl = {demo}\ntransport = \"streamable-http\"\n\n{up}",
        iss = toml_str(&issuer.url),
        aud = toml_str(&resource),
        jwks = toml_str(&format!("{}/jwks.json", issuer.url)),
        demo = toml_str(&demo.url),
        up = demo_stdio_upstream("notes", notes.path(), "isolation = \"session\""),
    );
    let gw = Gateway::start_listening(&config, &format!("127.0.0.1:{port}")).await;
    let token = issuer.sign(&json!({
        "iss": issuer.url, "aud": resource, "sub": "jwt-bob", "scope": "notes:read",
        "iat": now() - 10, "exp": now() + 300,
    }));
    let a = post_with(
        &gw.mcp("notes"),
        &[("authorization", &format!("Bearer {token}"))],
        &initialize_request(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "a valid JWT for {resource} was refused: {a:?}"
    );
    let client = connect_as(&gw.mcp("notes"), Cred::Bearer(&token)).await;
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "jwt-bob", "{me}");
    client.cancel().await.expect("close");
}
