//! The per-user credential vault through the real gateway: users store their
//! own API key on the authserver's account page (format-checked, CSRF form),
//! two users share one HTTP upstream and each request carries only its
//! caller's key, a user without a key is told where to add one, the OAuth
//! façade (a token from our authserver, the user's own key upstream), and
//! `mcpgate vault rotate-key` between restarts (a wrong master key refused).
//!
//! A small axum proxy in front of the demo server records, per request, the
//! identity the gateway named and the key it sent.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::{
    Browser, add_user, authorize, hidden_fields, location, pkce, register, token, whoami,
};
use crate::harness::raw::{Raw, tool_call};
use crate::harness::{BIN, DemoHttp, Gateway, free_port, toml_str};

/// (subject header, X-Api-Key) per request the upstream received.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct Recorder {
    demo: String,
    http: reqwest::Client,
    seen: Seen,
}

async fn record(State(r): State<Arc<Recorder>>, req: Request) -> Response {
    let (subject, key) = {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        (h("x-mcpgate-subject"), h("x-api-key"))
    };
    r.seen.lock().expect("lock").push((subject, key));
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    let mut out = r.http.request(parts.method, &r.demo).body(body);
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "content-length" | "x-api-key") {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.expect("the demo answers");
    let mut answer = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            answer = answer.header(k, v);
        }
    }
    answer
        .body(Body::from_stream(resp.bytes_stream()))
        .expect("a response")
}

async fn start_recorder(demo: &DemoHttp) -> (Seen, String) {
    let seen = Seen::default();
    let rec = Arc::new(Recorder {
        demo: demo.url.clone(),
        http: reqwest::Client::new(),
        seen: seen.clone(),
    });
    let app = axum::Router::new()
        .route("/mcp", any(record))
        .with_state(rec);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (seen, format!("http://{addr}/mcp"))
}

pub(crate) fn vault_config(upstream: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n\
         [[upstream]]\nname = \"demo\"\nurl = {}\ntransport = \"streamable-http\"\n\
         [upstream.credentials]\nkind = \"vault\"\nlabel = \"Weather API key\"\nformat = \"wx-[a-z0-9]{{8}}\"\n\
         format_hint = \"it starts with wx- followed by 8 lowercase letters or digits\"\n\
         header = \"X-Api-Key\"\ntemplate = \"{{secret}}\"\n",
        toml_str(upstream)
    )
}

fn create_key(data: &Path, subject: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args(["keys", "create", "--name", &format!("{subject}-key")])
        .args(["--scopes", "*", "--subject", subject, "--data-dir"])
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .output()
        .expect("mcpgate keys create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

fn with_bearer(url: &str, token: &str) -> Raw {
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    Raw::with_client(http, url)
}

/// Signs `user` in on the login page and opens the account page.
pub(crate) async fn sign_in(base: &str, user: &str, password: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let (s, h, html) = b.get(&format!("{base}/account")).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    let (s, _, html) = b.get(&format!("{base}{}", location(&h))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let mut form = hidden_fields(&html);
    form.push(("username".into(), user.into()));
    form.push(("password".into(), password.into()));
    let (s, h, body) = b.post_form(&format!("{base}/login"), &form).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let (s, _, html) = b.get(&format!("{base}{}", location(&h))).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    (b, html)
}

/// Posts the account page's credential form.
pub(crate) async fn save(
    b: &mut Browser,
    base: &str,
    page: &str,
    action: &str,
    secret: &str,
) -> (StatusCode, String) {
    let csrf = hidden_fields(page)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .expect("csrf")
        .1;
    let form = vec![
        ("csrf".to_owned(), csrf),
        ("upstream".to_owned(), "demo".to_owned()),
        ("secret".to_owned(), secret.to_owned()),
        ("action".to_owned(), action.to_owned()),
    ];
    let (s, _, html) = b
        .post_form(&format!("{base}/account/credentials"), &form)
        .await;
    (s, html)
}

/// One `tools/call whoami` with a new session; the JSON-RPC response of the
/// call, or of the initialize when that failed.
async fn call_whoami(raw: &Raw) -> Value {
    let r = raw
        .post(None, &crate::harness::raw::initialize_request())
        .await;
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let msgs = crate::harness::raw::messages(r).await;
    let Some(session) = session else {
        return msgs.into_iter().next().unwrap_or(Value::Null);
    };
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    raw.post(Some(&session), &note).await;
    raw.call(&session, &tool_call(json!(2), "whoami", json!({})))
        .await
}

const ALICE_KEY: &str = "wx-alice001";
const BOB_KEY: &str = "wx-bob00002";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_only_their_own_key_and_the_oauth_facade_works() {
    let demo = DemoHttp::start().await;
    let (seen, upstream) = start_recorder(&demo).await;
    let gw = Gateway::start(&vault_config(&upstream)).await;
    let base = gw.base.clone();
    for (u, p) in [
        ("alice", "pw-alice-Long-1"),
        ("bob", "pw-bob-Long-2"),
        ("carol", "pw-carol-Long-3"),
    ] {
        add_user(gw.data_dir(), u, p, "notes:read notes:write");
    }

    // The account page offers the slot, refuses a malformed key with the hint
    // (and does not echo it), and saves a good one.
    let (mut alice_b, page) = sign_in(&base, "alice", "pw-alice-Long-1").await;
    assert!(
        page.contains("Credentials") && page.contains("Weather API key"),
        "{page}"
    );
    assert!(page.contains("Not stored yet"), "{page}");
    let (s, html) = save(&mut alice_b, &base, &page, "save", "sk-wrong-shape-123").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("starts with wx-"), "{html}");
    // A refusal is announced at once (docs/AUTHSERVER.md), not as a status note.
    assert!(
        html.contains(r#"<p class="error" role="alert" id="account-error">That does not look like a Weather API key:"#),
        "{html}"
    );
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="account-error hint-demo""#),
        "the refused field points at the message: {html}"
    );
    assert!(
        !html.contains("sk-wrong-shape-123"),
        "a refused value is not echoed"
    );
    let (s, html) = save(&mut alice_b, &base, &page, "save", ALICE_KEY).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("saved"), "{html}");
    assert!(
        html.contains(r#"role="status""#) && !html.contains(r#"role="alert""#),
        "{html}"
    );
    assert!(!html.contains(ALICE_KEY), "the stored key is never shown");
    // A forged form (wrong CSRF token) changes nothing.
    let forged = vec![
        ("csrf".to_owned(), "forged".to_owned()),
        ("upstream".to_owned(), "demo".to_owned()),
        ("secret".to_owned(), "wx-attacker1".to_owned()),
        ("action".to_owned(), "save".to_owned()),
    ];
    let (s, _, _) = alice_b
        .post_form(&format!("{base}/account/credentials"), &forged)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (mut bob_b, page) = sign_in(&base, "bob", "pw-bob-Long-2").await;
    let (s, html) = save(&mut bob_b, &base, &page, "save", BOB_KEY).await;
    assert_eq!(s, StatusCode::OK, "{html}");

    // Two users through the one shared upstream, concurrently.
    let mcp = gw.mcp("demo");
    let keys: Vec<(&str, String)> = ["alice", "bob"]
        .into_iter()
        .map(|u| (u, create_key(gw.data_dir(), u)))
        .collect();
    let calls = keys.iter().flat_map(|(u, k)| {
        let mcp = mcp.clone();
        (0..4).map(move |_| {
            let mcp = mcp.clone();
            async move {
                let resp = call_whoami(&with_bearer(&mcp, k)).await;
                assert_eq!(resp["result"]["structuredContent"]["subject"], *u, "{resp}");
            }
        })
    });
    futures_util::future::join_all(calls).await;
    let got = seen.lock().expect("lock").clone();
    assert!(got.len() >= 16, "{got:?}");
    for (subject, key) in &got {
        let expected = match subject.as_str() {
            "alice" => ALICE_KEY,
            "bob" => BOB_KEY,
            other => panic!("unexpected subject {other:?}"),
        };
        assert_eq!(key, expected, "{subject} received another key");
    }

    // A user without a key is told where to add it; the upstream sees nothing.
    let before = seen.lock().expect("lock").len();
    let carol = create_key(gw.data_dir(), "carol");
    let resp = call_whoami(&with_bearer(&mcp, &carol)).await;
    let msg = resp.to_string();
    assert!(
        resp["error"].is_object() || resp["result"]["isError"] == true,
        "{resp}"
    );
    assert!(
        msg.contains("Weather API key") && msg.contains(&format!("{base}/account")),
        "{msg}"
    );
    assert_eq!(
        seen.lock().expect("lock").len(),
        before,
        "no request without a key"
    );

    // The OAuth façade: a client gets a token from our authserver; the
    // upstream receives alice's own API key.
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
        ("alice", "pw-alice-Long-1"),
    )
    .await;
    let (s, tok) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
            ("resource", &format!("{base}/mcp/demo")),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    let access = tok["access_token"].as_str().expect("access token");
    assert!(
        tok["refresh_token"].is_string() && tok["expires_in"].is_number(),
        "{tok}"
    );
    seen.lock().expect("lock").clear();
    assert_eq!(whoami(&mcp, access).await.as_deref(), Ok("alice"));
    let got = seen.lock().expect("lock").clone();
    assert!(
        !got.is_empty() && got.iter().all(|(s, k)| s == "alice" && k == ALICE_KEY),
        "{got:?}"
    );

    // On the consent page, a user without a key is asked for it (checked),
    // and the upstream then receives it.
    let p = pkce();
    let mut cb = Browser::new();
    let url = format!(
        "{base}/authorize?{}",
        crate::authserver::form_encode(&[
            ("response_type".into(), "code".into()),
            ("client_id".into(), client_id.clone()),
            ("redirect_uri".into(), redirect.into()),
            ("scope".into(), "notes:read".into()),
            ("state".into(), "st-c".into()),
            ("code_challenge".into(), p.challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
            ("resource".into(), format!("{base}/mcp/demo")),
        ])
    );
    let (_, h, _) = cb.get(&url).await;
    let (_, _, html) = cb.get(&format!("{base}{}", location(&h))).await;
    let mut form = hidden_fields(&html);
    form.push(("username".into(), "carol".into()));
    form.push(("password".into(), "pw-carol-Long-3".into()));
    let (s, h, body) = cb.post_form(&format!("{base}/login"), &form).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let (s, _, consent) = cb.get(&format!("{base}{}", location(&h))).await;
    assert_eq!(s, StatusCode::OK, "{consent}");
    assert!(
        consent.contains("name=\"vault_secret\"") && consent.contains("Weather API key"),
        "{consent}"
    );
    let consent_form = |html: &str, secret: &str| {
        let mut form = hidden_fields(html);
        let mut seen = std::collections::BTreeSet::new();
        form.retain(|(k, _)| seen.insert(k.clone()));
        form.push(("vault_secret".into(), secret.into()));
        form.push(("decision".into(), "allow".into()));
        form
    };
    let (s, _, again) = cb
        .post_form(&format!("{base}/consent"), &consent_form(&consent, "nope"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    assert!(
        again.contains("starts with wx-") && !again.contains("value=\"nope\""),
        "{again}"
    );
    let (s, h, body) = cb
        .post_form(
            &format!("{base}/consent"),
            &consent_form(&again, "wx-carol003"),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let code = crate::authserver::query_of(&location(&h))["code"].clone();
    let (s, tok) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    seen.lock().expect("lock").clear();
    assert_eq!(
        whoami(&mcp, tok["access_token"].as_str().unwrap())
            .await
            .as_deref(),
        Ok("carol")
    );
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .all(|(s, k)| s == "carol" && k == "wx-carol003")
    );

    // Replacing and deleting take effect on the next request.
    let (_, _, page) = bob_b.get(&format!("{base}/account")).await;
    assert!(page.contains("Stored, last changed"), "{page}");
    let (s, _) = save(&mut bob_b, &base, &page, "save", "wx-bobnew03").await;
    assert_eq!(s, StatusCode::OK);
    seen.lock().expect("lock").clear();
    let bob_key = &keys[1].1;
    call_whoami(&with_bearer(&mcp, bob_key)).await;
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .all(|(_, k)| k == "wx-bobnew03")
    );
    let (s, html) = save(&mut bob_b, &base, &page, "delete", "").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("deleted"), "{html}");
    let resp = call_whoami(&with_bearer(&mcp, bob_key)).await;
    assert!(resp.to_string().contains("not stored one yet"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_between_restarts_and_a_wrong_key_is_refused() {
    let demo = DemoHttp::start().await;
    let (seen, upstream) = start_recorder(&demo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The test reads the SQLite file's bytes.
    crate::harness::store::keep_sqlite(&data);
    let listen = format!("127.0.0.1:{}", free_port());
    let config = vault_config(&upstream);
    let mut gw = Gateway::start_with_data(&config, &listen, &data).await;
    let base = gw.base.clone();
    add_user(&data, "alice", "pw-alice-Long-1", "notes:read");
    let (mut b, page) = sign_in(&base, "alice", "pw-alice-Long-1").await;
    let (s, _) = save(&mut b, &base, &page, "save", ALICE_KEY).await;
    assert_eq!(s, StatusCode::OK);
    let key = create_key(&data, "alice");
    gw.stop().await;

    let old_key = std::fs::read_to_string(data.join("master.key")).expect("master.key");
    let out = std::process::Command::new(BIN)
        .args(["vault", "rotate-key", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(&data))
        .output()
        .expect("mcpgate vault rotate-key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("re-sealed 1 vault secret(s)"), "{stdout}");
    assert!(!stdout.contains(ALICE_KEY));
    let new_key = std::fs::read_to_string(data.join("master.key")).expect("master.key");
    assert_ne!(old_key, new_key);
    assert!(!data.join("master.key.new").exists());

    // The old key no longer opens the data: the server refuses to start.
    let cfg_path = dir.path().join("old.toml");
    std::fs::write(&cfg_path, &config).expect("config");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg_path)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("DATABASE_URL")
            .envs(crate::harness::store::env_for(&data))
            .env("MCPGATE_MASTER_KEY", old_key.trim())
            .output(),
    )
    .await
    .expect("exits")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("master key") && stderr.contains("MCPGATE_MASTER_KEY"),
        "{stderr}"
    );

    // With the new key everything still works, nothing was lost.
    let _gw = Gateway::start_with_data(&config, &listen, &data).await;
    seen.lock().expect("lock").clear();
    let resp = call_whoami(&with_bearer(&format!("{base}/mcp/demo"), &key)).await;
    assert_eq!(
        resp["result"]["structuredContent"]["subject"], "alice",
        "{resp}"
    );
    assert!(
        seen.lock()
            .expect("lock")
            .iter()
            .all(|(_, k)| k == ALICE_KEY)
    );
    // The database holds no plaintext key.
    let mut bytes = std::fs::read(data.join("mcpgate.sqlite")).expect("db");
    bytes.extend(std::fs::read(data.join("mcpgate.sqlite-wal")).unwrap_or_default());
    assert!(
        !bytes
            .windows(ALICE_KEY.len())
            .any(|w| w == ALICE_KEY.as_bytes())
    );
}
