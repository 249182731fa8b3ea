//! Issue 15 item 6, reload without restart, against the real binary: SIGHUP
//! re-reads the file; upstreams come and go, scopes, JWT issuers and allowed
//! origins change for the next request; sessions (and calls in flight) of
//! unchanged upstreams, stdio and HTTP, carry on, those of a removed or
//! changed upstream answer 404; keys that need a restart are named; a bad
//! file changes nothing and every problem is logged; `mcpgate reload` finds
//! the server through its pid file; `/metrics` counts the outcomes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::harness::raw::{Raw, SseReader, initialize_request, messages, tool_call, tool_text};
use crate::harness::{
    BIN, DemoHttp, Gateway, children_of, config, demo_stdio_upstream, eventually, free_port,
    signal, toml_str,
};

/// The gateway's whole log so far.
fn log(gw: &Gateway) -> String {
    gw.log_tail(usize::MAX)
}

/// Waits for the outcome line of a reload started after the log had
/// `before` lines; returns what the log gained since.
async fn outcome(gw: &Gateway, before: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = log(gw);
        let new: Vec<&str> = text.lines().skip(before).collect();
        if new.iter().any(|l| {
            l.contains("configuration reloaded") || l.contains("configuration reload failed")
        }) {
            return new.join("\n");
        }
        assert!(
            Instant::now() < deadline,
            "no reload outcome in the log:\n{}",
            new.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `config` over the gateway's file, sends SIGHUP, and returns the
/// log lines of the reload.
async fn reload(gw: &Gateway, config: &str) -> String {
    let before = log(gw).lines().count();
    std::fs::write(gw.config_path(), config).expect("write the config");
    signal(gw.pid(), Signal::SIGHUP);
    outcome(gw, before).await
}

async fn echo(raw: &Raw, session: &str, text: &str) -> String {
    let r = raw
        .call(
            session,
            &tool_call(json!(50), "echo", json!({ "text": text })),
        )
        .await;
    tool_text(&r).to_owned()
}

async fn echo_status(raw: &Raw, session: &str) -> StatusCode {
    raw.post(
        Some(session),
        &tool_call(json!(51), "echo", json!({ "text": "x" })),
    )
    .await
    .status()
}

/// The next message on a legacy stream answering request `id`.
async fn answer_on(sse: &mut SseReader, id: u64) -> Value {
    loop {
        let ev = sse
            .next(Duration::from_secs(15))
            .await
            .expect("an answer on the legacy stream");
        if let Some(v) = ev.json()
            && v["id"] == id
        {
            return v;
        }
    }
}

/// Opens a legacy HTTP+SSE session on `upstream` and initializes it; returns
/// its message URL and its stream.
async fn legacy_session(gw: &Gateway, upstream: &str) -> (String, SseReader) {
    let stream = reqwest::Client::new()
        .get(format!("{}/sse", gw.mcp(upstream)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(stream.status(), StatusCode::OK);
    let mut sse = SseReader::new(stream);
    let endpoint = sse
        .next(Duration::from_secs(10))
        .await
        .expect("an endpoint event")
        .data;
    let url = format!("{}{endpoint}", gw.base);
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2024-11-05", "capabilities": {},
                    "clientInfo": { "name": "mcpgate-e2e-reload", "version": "0" } }
    });
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await
        .expect("POST initialize");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer = answer_on(&mut sse, 1).await;
    assert_eq!(
        answer["result"]["protocolVersion"], "2024-11-05",
        "{answer}"
    );
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body(note.to_string())
        .send()
        .await
        .expect("POST initialized");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    (url, sse)
}

fn bearer(token: &str) -> reqwest::Client {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_come_and_go_and_the_others_keep_their_sessions() {
    let data = tempfile::tempdir().expect("tempdir");
    let remote = DemoHttp::start().await;
    let keep = demo_stdio_upstream("keep", &data.path().join("keep"), "");
    let http = format!(
        "[[upstream]]\nname = \"remote\"\nurl = {}\n\n",
        toml_str(&remote.url)
    );
    let gone = demo_stdio_upstream("gone", &data.path().join("gone"), "");
    let added = demo_stdio_upstream("added", &data.path().join("added"), "");
    let gw = Gateway::start(&config(&format!("{keep}{http}{gone}"))).await;
    let (k, r, g) = (
        Raw::new(&gw.mcp("keep")),
        Raw::new(&gw.mcp("remote")),
        Raw::new(&gw.mcp("gone")),
    );
    let (ks, rs, gs) = (
        k.initialize().await,
        r.initialize().await,
        g.initialize().await,
    );
    assert!(echo(&k, &ks, "one").await.contains("one"));
    // A legacy HTTP+SSE client too: its stream stays open across the reload.
    let (messages_url, mut sse) = legacy_session(&gw, "keep").await;
    let before = children_of(gw.pid());
    assert_eq!(before.len(), 3, "a child per stdio session: {before:?}");
    // A call whose answer streams across the reload.
    let slow = {
        let (k, ks) = (k.clone(), ks.clone());
        tokio::spawn(async move {
            let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": "slow_count", "arguments": { "steps": 8, "delay_ms": 150 },
                "_meta": { "progressToken": "p" } } });
            messages(k.post(Some(&ks), &body).await).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let next = config(&format!("{keep}{http}{added}"))
        .replace("request_timeout = \"30s\"", "request_timeout = \"31s\"");
    let out = reload(&gw, &next).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    assert!(
        out.contains(r#"added=["added"]"#)
            && out.contains(r#"removed=["gone"]"#)
            && out.contains("changed=[]")
            && out.contains("sessions_ended=1"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("WARN")
            && l.contains("server.request_timeout")
            && l.contains("needs a restart")),
        "{out}"
    );

    let msgs: Vec<Value> = slow.await.expect("the slow call");
    let last = msgs.last().expect("an answer");
    assert_eq!(last["id"], 7, "{msgs:?}");
    assert!(
        last["result"].to_string().contains("\"completed\":8"),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count()
            >= 4,
        "progress kept flowing: {msgs:?}"
    );
    // The unchanged upstreams' sessions carry on, on the same child.
    assert!(echo(&k, &ks, "two").await.contains("two"));
    assert!(echo(&r, &rs, "two").await.contains("two"));
    let pid = gw.pid();
    eventually(
        Duration::from_secs(10),
        "the removed upstream's child exits",
        || {
            let now = children_of(pid);
            now.len() == 2 && now.iter().all(|p| before.contains(p))
        },
    )
    .await;
    // The legacy stream opened before the reload carries the next answer.
    let call = tool_call(json!(9), "echo", json!({ "text": "legacy" }));
    let r = reqwest::Client::new()
        .post(&messages_url)
        .header("content-type", "application/json")
        .body(call.to_string())
        .send()
        .await
        .expect("POST a legacy message");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let answer = answer_on(&mut sse, 9).await;
    assert!(tool_text(&answer).contains("legacy"), "{answer}");
    assert!(echo(&k, &ks, "three").await.contains("three"));
    // The removed one: its session and its endpoint are gone.
    assert_eq!(echo_status(&g, &gs).await, StatusCode::NOT_FOUND);
    assert_eq!(
        g.post(None, &initialize_request()).await.status(),
        StatusCode::NOT_FOUND
    );
    // The added one serves.
    let a = Raw::new(&gw.mcp("added"));
    let s = a.initialize().await;
    assert!(echo(&a, &s, "new").await.contains("new"));
}

const TOKEN: &str = "st-reload-0123456789abcdef0123456789abcdef";
const SECRET: &str = "reload-hmac-secret-of-at-least-32-bytes!";
const ISSUER: &str = "[[auth.jwt]]\nissuer = \"https://idp.reload.example\"\naudience = \"api://reload\"\nhmac_secret_env = \"RELOAD_HMAC\"\nalgorithms = [\"HS256\"]\n\n";

fn auth_config(data: &Path, echo_scope: &str, svc_env: &str, auth_extra: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\napi_keys = false\nusers = false\n\n\
         [auth.static_tokens]\ntokens = [{{ token = \"{TOKEN}\", subject = \"ci\", scopes = \"notes:read\" }}]\n\n\
         {}{}{}",
        auth_extra,
        demo_stdio_upstream(
            "notes",
            &data.join("notes"),
            &format!("tool_scopes = {{ \"echo\" = \"{echo_scope}\" }}")
        ),
        demo_stdio_upstream(
            "svc",
            &data.join("svc"),
            &format!("env = {{ RELOAD_MARK = \"{svc_env}\" }}")
        ),
    )
}

fn jwt() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({
            "iss": "https://idp.reload.example", "aud": "api://reload", "sub": "jwt-dana",
            "scope": "notes:read", "iat": now - 10, "exp": now + 300,
        }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_issuers_and_changed_upstreams_apply_to_the_next_request() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_with_env(
        &auth_config(data.path(), "admin", "1", ""),
        &[("RELOAD_HMAC", SECRET)],
    )
    .await;
    let notes = Raw::with_client(bearer(TOKEN), &gw.mcp("notes"));
    let ns = notes.initialize().await;
    assert_eq!(echo_status(&notes, &ns).await, StatusCode::FORBIDDEN);
    let svc = Raw::with_client(bearer(TOKEN), &gw.mcp("svc"));
    let ss = svc.initialize().await;
    assert!(echo(&svc, &ss, "a").await.contains('a'));
    let by_jwt = Raw::with_client(bearer(&jwt()), &gw.mcp("notes"));
    assert_eq!(
        by_jwt.post(None, &initialize_request()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let out = reload(&gw, &auth_config(data.path(), "notes:read", "2", ISSUER)).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    assert!(
        out.contains(r#"policy_changed=["notes"]"#)
            && out.contains(r#"changed=["svc"]"#)
            && out.contains("added=[]")
            && out.contains("removed=[]"),
        "{out}"
    );
    assert!(!out.contains("needs a restart"), "{out}");

    // A scope change keeps the session: the same one may call echo now.
    assert!(echo(&notes, &ns, "allowed").await.contains("allowed"));
    // The changed upstream's session ended; a new one works.
    assert_eq!(echo_status(&svc, &ss).await, StatusCode::NOT_FOUND);
    let ss2 = svc.initialize().await;
    assert!(echo(&svc, &ss2, "b").await.contains('b'));
    // The new issuer's tokens are accepted.
    let js = by_jwt.initialize().await;
    assert!(echo(&by_jwt, &js, "jwt").await.contains("jwt"));

    // A file that loads but that serve would refuse, for two reasons: both
    // are logged, and nothing changes.
    let refused = format!(
        "{ISSUER}[[auth.jwt]]\nissuer = \"https://other.reload.example\"\naudience = \"x\"\n\
         hmac_secret_env = \"RELOAD_UNSET_SECRET\"\n\n\
         [[auth.upstream_key]]\nupstream = \"nowhere\"\nformat = \"k-[0-9]+\"\n\
         format_description = \"k- and digits\"\nheader = \"X-Key\"\n\n"
    );
    let out = reload(&gw, &auth_config(data.path(), "admin", "3", &refused)).await;
    assert!(out.contains("problems=2"), "{out}");
    for problem in [
        "RELOAD_UNSET_SECRET",
        "upstream \"nowhere\" is not configured",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("ERROR") && l.contains(problem)),
            "{problem} not logged: {out}"
        );
    }
    assert!(echo(&notes, &ns, "kept").await.contains("kept"));
    assert!(echo(&svc, &ss2, "kept").await.contains("kept"));

    // And back: the issuer removed, its tokens refused again.
    let out = reload(&gw, &auth_config(data.path(), "notes:read", "2", "")).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    assert_eq!(
        by_jwt.post(None, &initialize_request()).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn status_from(url: &str, origin: &str) -> StatusCode {
    reqwest::Client::new()
        .post(url)
        .header("origin", origin)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize_request().to_string())
        .send()
        .await
        .expect("POST")
        .status()
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_change_and_a_bad_file_changes_nothing() {
    const APP: &str = "http://app.reload.example";
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let up = demo_stdio_upstream("notes", &data.path().join("notes"), "");
    let cfg = |server_extra: &str, rest: &str| {
        format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[server]\nrequest_timeout = \"30s\"\n{server_extra}\n\
             [auth]\nmode = \"disabled\"\n{rest}\n{up}"
        )
    };
    let gw = Gateway::start(&cfg("", "")).await;
    let url = gw.mcp("notes");
    assert_eq!(status_from(&url, APP).await, StatusCode::FORBIDDEN);

    let good = cfg(&format!("allowed_origins = [{}]\n", toml_str(APP)), "");
    let out = reload(&gw, &good).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    assert_eq!(status_from(&url, APP).await, StatusCode::OK);
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(APP)
    );
    let raw = Raw::new(&url);
    let session = raw.initialize().await;

    // Three problems: an unknown key, a bad value, an upstream with both
    // command and url. Each is logged; nothing changes.
    let bad = format!(
        "{}[[upstream]]\nname = \"both\"\ncommand = [\"x\"]\nurl = \"http://127.0.0.1:9/mcp\"\n",
        cfg(
            "allowed_origins = []\nbogus_reload_key = 1\n",
            "groups_claim = 7\n"
        )
    );
    let out = reload(&gw, &bad).await;
    assert!(out.contains("configuration reload failed"), "{out}");
    assert!(out.contains("problems=3"), "{out}");
    for problem in [
        "bogus_reload_key",
        "groups_claim",
        "set either command (stdio) or url",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("ERROR") && l.contains(problem)),
            "{problem} not logged: {out}"
        );
    }
    assert!(!out.contains("configuration reloaded"), "{out}");
    assert_eq!(status_from(&url, APP).await, StatusCode::OK);
    assert!(echo(&raw, &session, "still").await.contains("still"));
    assert_eq!(
        Raw::new(&gw.mcp("both"))
            .post(None, &initialize_request())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let metrics = scrape(port).await;
    for series in [
        "mcpgate_config_reloads_total{outcome=\"ok\"} 1",
        "mcpgate_config_reloads_total{outcome=\"failed\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in:\n{metrics}"
        );
    }
}

fn reload_cmd(gw: &Gateway) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("reload")
        .arg("-c")
        .arg(gw.config_path())
        .arg("--data-dir")
        .arg(gw.data_dir());
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run mcpgate reload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_command_finds_the_server_through_its_pid_file() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().expect("tempdir");
    let first = demo_stdio_upstream("first", &data.path().join("first"), "");
    let second = demo_stdio_upstream("second", &data.path().join("second"), "");
    let mut gw = Gateway::start(&config(&first)).await;
    let pid_file = gw.data_dir().join("mcpgate.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file").trim(),
        gw.pid().to_string()
    );
    let mode = std::fs::metadata(&pid_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    std::fs::write(gw.config_path(), config(&format!("{first}{second}"))).expect("write");
    let before = log(&gw).lines().count();
    let out = reload_cmd(&gw);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains(&format!("pid {}", gw.pid())), "{stdout}");
    let logged = outcome(&gw, before).await;
    assert!(logged.contains(r#"added=["second"]"#), "{logged}");
    let raw = Raw::new(&gw.mcp("second"));
    let s = raw.initialize().await;
    assert!(echo(&raw, &s, "hi").await.contains("hi"));

    // A file with a problem is refused before the server is signalled.
    std::fs::write(gw.config_path(), "[server]\nlisten = 5\n").expect("write");
    let before = log(&gw).lines().count();
    let out = reload_cmd(&gw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("server.listen") && stderr.contains("not asked to reload"),
        "{stderr}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = log(&gw);
    assert!(
        !text
            .lines()
            .skip(before)
            .any(|l| l.contains("reloading the configuration")),
        "{text}"
    );

    // Without a running server.
    std::fs::write(gw.config_path(), config(&first)).expect("write");
    assert!(gw.stop().await.success());
    assert!(!pid_file.exists(), "a clean shutdown removes the pid file");
    let out = reload_cmd(&gw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    // A stale one: no such process.
    std::fs::write(&pid_file, "4194305\n").expect("write");
    let out = reload_cmd(&gw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("which is not running"), "{stderr}");
    // A reused id: a process that is not mcpgate serve.
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("write");
    let out = reload_cmd(&gw);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not `mcpgate serve`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_server_added_by_a_reload_serves_and_one_removed_is_gone() {
    let remote = DemoHttp::start().await;
    let http = format!(
        "[[upstream]]\nname = \"remote\"\nurl = {}\n\n",
        toml_str(&remote.url)
    );
    let gw = Gateway::start(&config(&http)).await;
    let v = Raw::new(&gw.mcp("work"));
    assert_eq!(
        v.post(None, &initialize_request()).await.status(),
        StatusCode::NOT_FOUND
    );

    let with_virtual =
        format!("{http}[[virtual_server]]\nname = \"work\"\nupstreams = [\"remote\"]\n");
    let out = reload(&gw, &config(&with_virtual)).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    let s = v.initialize().await;
    let r = v
        .call(
            &s,
            &tool_call(json!(2), "remote_echo", json!({ "text": "through work" })),
        )
        .await;
    assert!(tool_text(&r).contains("through work"), "{r}");

    let out = reload(&gw, &config(&http)).await;
    assert!(out.contains("configuration reloaded"), "{out}");
    assert_eq!(
        v.post(None, &initialize_request()).await.status(),
        StatusCode::NOT_FOUND
    );
}
