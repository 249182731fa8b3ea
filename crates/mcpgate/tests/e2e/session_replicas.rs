//! Sessions any replica can serve (issue 14, item 4): two `mcpgate serve`
//! processes with the same configuration and session key file, each on its own
//! SQLite store, in front of one HTTP upstream that keeps sessions (the demo's
//! rmcp Streamable HTTP server). A session opened on one continues on the
//! other; what a replica cannot vouch for is 404.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;

use crate::harness::raw::{Raw, tool_call, tool_text};
use crate::harness::{DemoHttp, Gateway, demo_stdio_upstream, gateway_bin, toml_str};

/// `mcpgate keys create` for `subject` in `data`: the key.
fn create_key(data: &Path, subject: &str) -> String {
    create_key_on(data, subject, None)
}

/// `mcpgate keys create` for `subject`: on `store` when given (a shared
/// database), else on the store of `data`. The key.
pub(crate) fn create_key_on(data: &Path, subject: &str, store: Option<&str>) -> String {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["keys", "create", "--name", subject, "--scopes", "mcp"])
        .args(["--subject", subject, "--data-dir"])
        .arg(data)
        .env_remove("MCPGATE_SERVER__DATA_DIR");
    match store {
        Some(url) => cmd.args(["--store-url", url]),
        None => cmd
            .env_remove("DATABASE_URL")
            .envs(crate::harness::store::env_for(data)),
    };
    let out = cmd.output().expect("mcpgate keys create");
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// A raw client of `url` that presents `key`.
pub(crate) fn as_key(url: &str, key: &str) -> Raw {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).expect("header"),
    );
    let http = reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client");
    Raw::with_client(http, url)
}

/// The configuration both replicas run: one HTTP upstream, a shared key file.
fn config(upstream: &str, key_file: &Path, extra: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\nsession_key_file = {}\n{extra}\n\
         [[upstream]]\nname = \"notes\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&key_file.display().to_string()),
        toml_str(upstream)
    )
}

struct Pair {
    _demo: DemoHttp,
    dir: tempfile::TempDir,
    a: Gateway,
    b: Gateway,
    alice: String,
    bob: String,
}

/// Two replicas with the same API keys (one data directory, copied) and session key.
async fn pair() -> Pair {
    let demo = DemoHttp::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data_a = dir.path().join("a");
    let alice = create_key(&data_a, "alice");
    let bob = create_key(&data_a, "bob");
    // On PostgreSQL runs nothing else creates it (the copy shares the database).
    std::fs::create_dir_all(&data_a).expect("data dir");
    let data_b = dir.path().join("b");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&data_a)
        .arg(&data_b)
        .status()
        .expect("cp");
    assert!(cp.success());
    crate::harness::store::copied(&data_a, &data_b);
    let stdio = demo_stdio_upstream("local", &dir.path().join("demo-stdio"), "");
    let cfg = format!(
        "{}\n{stdio}",
        config(&demo.url, &dir.path().join("session.key"), "")
    );
    let a = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data_a).await;
    let b = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data_b).await;
    Pair {
        _demo: demo,
        dir,
        a,
        b,
        alice,
        bob,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_replica_continues_on_the_other_until_deleted() {
    let p = pair().await;
    let alice_a = as_key(&p.a.mcp("notes"), &p.alice);
    let alice_b = as_key(&p.b.mcp("notes"), &p.alice);
    let bob_a = as_key(&p.a.mcp("notes"), &p.bob);
    let bob_b = as_key(&p.b.mcp("notes"), &p.bob);

    let sid = alice_a.initialize().await;
    assert!(sid.starts_with("s1."), "a sealed id: {sid}");
    assert!(
        sid.bytes().all(|c| (0x21..=0x7e).contains(&c)),
        "visible ASCII: {sid}"
    );
    assert!(!sid.contains("alice") && !sid.contains("notes"), "{sid}");

    // B never saw the session: it continues it on its own upstream connection.
    let me = alice_b
        .call(&sid, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");
    let echo = alice_b
        .call(
            &sid,
            &tool_call(json!(3), "echo", json!({ "text": "over B" })),
        )
        .await;
    assert!(tool_text(&echo).contains("over B"), "{echo}");
    // And A still serves it from its own table.
    let echo = alice_a
        .call(
            &sid,
            &tool_call(json!(4), "echo", json!({ "text": "over A" })),
        )
        .await;
    assert!(tool_text(&echo).contains("over A"), "{echo}");
    assert!(
        p.b.log_tail(200)
            .contains("continuing a session another replica opened"),
        "{}",
        p.b.log_tail(50)
    );

    // Another user's session is 404 on both replicas, held or not.
    for (who, raw) in [("bob on A", &bob_a), ("bob on B", &bob_b)] {
        let r = raw
            .post(Some(&sid), &tool_call(json!(5), "whoami", json!({})))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{who}");
    }
    let bob_c = as_key(&p.a.mcp("notes"), &p.bob);
    assert_eq!(bob_c.delete(&sid).await, StatusCode::NOT_FOUND);

    // DELETE on B ends the session upstream: A's next request gets 404 too.
    assert_eq!(alice_b.delete(&sid).await, StatusCode::OK);
    for (who, raw) in [("A", &alice_a), ("B", &alice_b)] {
        let r = raw
            .post(Some(&sid), &tool_call(json!(6), "whoami", json!({})))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "after DELETE on B, {who}"
        );
    }
    // A new session works as before.
    let again = alice_a.initialize().await;
    assert_ne!(again, sid);
    let me = alice_b
        .call(&again, &tool_call(json!(7), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_foreign_session_ids_are_404_and_a_rotated_key_still_opens_old_ids() {
    let p = pair().await;
    let alice_a = as_key(&p.a.mcp("notes"), &p.alice);
    let sid = alice_a.initialize().await;

    // Forged: not sealed, or sealed-looking but not authentic, or altered.
    let mut altered = sid.clone().into_bytes();
    let i = altered.len() - 3;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    for forged in [
        "0123456789abcdef0123456789abcdef".to_owned(),
        format!("s1.{}", "A".repeat(80)),
        altered,
    ] {
        let r = alice_a
            .post(Some(&forged), &tool_call(json!(2), "whoami", json!({})))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{forged}");
    }
    assert!(
        p.a.log_tail(200).contains("an unknown Mcp-Session-Id: 404"),
        "{}",
        p.a.log_tail(50)
    );

    // A third replica rotated to a new key, with the old one as previous: it
    // opens the old ids, and the two replicas on the old key refuse its ids.
    let old = std::fs::read_to_string(p.dir.path().join("session.key")).expect("key file");
    let new = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let data_c = p.dir.path().join("c");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(p.dir.path().join("b"))
        .arg(&data_c)
        .status()
        .expect("cp");
    assert!(cp.success());
    crate::harness::store::copied(&p.dir.path().join("b"), &data_c);
    let demo_url = {
        // The upstream URL is the one in A's configuration.
        let text = std::fs::read_to_string(p.a.config_path()).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("url = "))
            .expect("url")
            .trim_matches('"')
            .to_owned()
    };
    let cfg = format!(
        "[server]\nrequest_timeout = \"30s\"\nsession_key = {}\nsession_key_previous = {}\n\n\
         [[upstream]]\nname = \"notes\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(new),
        toml_str(old.trim()),
        toml_str(&demo_url)
    );
    let c = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data_c).await;
    let alice_c = as_key(&c.mcp("notes"), &p.alice);
    let me = alice_c
        .call(&sid, &tool_call(json!(3), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");

    let sid_c = alice_c.initialize().await;
    let alice_b = as_key(&p.b.mcp("notes"), &p.alice);
    let r = alice_b
        .post(Some(&sid_c), &tool_call(json!(4), "whoami", json!({})))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "an id under a foreign key"
    );
    assert!(
        p.b.log_tail(200).contains("unknown session key"),
        "{}",
        p.b.log_tail(50)
    );
    // The key never shows in a log.
    for log in [p.a.log_tail(400), p.b.log_tail(400), c.log_tail(400)] {
        assert!(!log.contains(old.trim()) && !log.contains(new));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_session_is_served_through_the_replica_that_runs_its_child() {
    let p = pair().await;
    let alice_a = as_key(&p.a.mcp("local"), &p.alice);
    let alice_b = as_key(&p.b.mcp("local"), &p.alice);
    let sid = alice_a.initialize().await;
    assert!(sid.starts_with("s1."), "{sid}");
    // B has no child for it: it forwards to A, whose child answers for alice.
    let me = alice_b
        .call(&sid, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");
    assert!(
        crate::harness::children_of(p.b.pid()).is_empty(),
        "B started no child"
    );
    // A still serves it, and an HTTP-upstream route does not take it.
    let me = alice_a
        .call(&sid, &tool_call(json!(3), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");
    let notes_b = as_key(&p.b.mcp("notes"), &p.alice);
    let r = notes_b
        .post(Some(&sid), &tool_call(json!(4), "whoami", json!({})))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Opens the GET stream of `sid` on `raw`, after `last` if given.
async fn get_after(raw: &Raw, sid: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = raw
        .http
        .get(&raw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", crate::harness::raw::PROTOCOL);
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_of_another_replica_is_never_read_as_a_position_here() {
    let p = pair().await;
    let alice_a = as_key(&p.a.mcp("notes"), &p.alice);
    let alice_b = as_key(&p.b.mcp("notes"), &p.alice);
    let sid = alice_a.initialize().await;
    // A's server stream starts with a priming event: an id to resume from.
    let resp = get_after(&alice_a, &sid, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = crate::harness::raw::SseReader::new(resp);
    let primed = stream
        .next(std::time::Duration::from_secs(5))
        .await
        .expect("a priming event");
    let id = primed.id.expect("the priming event has an id");
    drop(stream);
    // B continues the session but holds none of A's streams: its answer is the
    // session's server stream, with no position taken from A's id.
    let resp = get_after(&alice_b, &sid, Some(&id)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_b = crate::harness::raw::SseReader::new(resp);
    let first = on_b
        .next(std::time::Duration::from_secs(5))
        .await
        .expect("B's own priming event");
    assert_ne!(first.id.as_deref(), Some(id.as_str()));
    assert!(
        p.b.log_tail(200)
            .contains("Last-Event-ID names a stream this replica does not hold"),
        "{}",
        p.b.log_tail(40)
    );
    // On A, which holds it, the same id resumes the stream.
    let resp = get_after(&alice_a, &sid, Some(&id)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        !p.a.log_tail(200)
            .contains("Last-Event-ID names a stream this replica does not hold"),
        "{}",
        p.a.log_tail(40)
    );
}

/// A 2026-07-28 `tools/call confirm_action` that may be asked for elicitation.
pub(crate) fn modern_confirm(id: u64, extra: serde_json::Value) -> serde_json::Value {
    let mut call = tool_call(json!(id), "confirm_action", json!({ "action": "ship it" }));
    call["params"]["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": { "elicitation": {} },
        "io.modelcontextprotocol/clientInfo": { "name": "t", "version": "0" },
    });
    if let Some(obj) = extra.as_object() {
        for (k, v) in obj {
            call["params"][k] = v.clone();
        }
    }
    call
}

/// POSTs a 2026-07-28 request; returns its one JSON-RPC answer.
pub(crate) async fn modern(raw: &Raw, body: &serde_json::Value) -> serde_json::Value {
    let resp = raw
        .http
        .post(&raw.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "confirm_action")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    crate::harness::raw::messages(resp)
        .await
        .into_iter()
        .rfind(|m| m.get("id") == body.get("id"))
        .unwrap_or_else(|| panic!("no answer to {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_request_state_is_bound_to_its_caller_and_completes_on_another_replica() {
    let p = pair().await;
    let alice_a = as_key(&p.a.mcp("local"), &p.alice);
    let alice_b = as_key(&p.b.mcp("local"), &p.alice);
    let bob_a = as_key(&p.a.mcp("local"), &p.bob);

    let first = modern(&alice_a, &modern_confirm(1, json!({}))).await;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let state = first["result"]["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    assert!(
        state.starts_with("r1.") && !state.contains("alice"),
        "{state}"
    );
    let answers =
        json!({ "mcpgate-input-1": { "action": "accept", "content": { "confirm": true } } });
    let retry = |id, state: &str| {
        modern_confirm(
            id,
            json!({ "requestState": state, "inputResponses": answers.clone() }),
        )
    };

    // Refusals, each with a message saying what to do; none consumes the call.
    let bob_b = as_key(&p.b.mcp("local"), &p.bob);
    let r = modern(&bob_b, &retry(2, &state)).await;
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("another caller"), "another subject on B: {r}");
    let r = modern(&bob_a, &retry(3, &state)).await;
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("another caller"), "another subject: {r}");
    let mut altered = state.clone().into_bytes();
    let i = altered.len() - 4;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let r = modern(&alice_a, &retry(4, &altered)).await;
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("not issued by this gateway"), "altered: {r}");
    assert!(
        p.a.log_tail(200).contains("refused a requestState"),
        "{}",
        p.a.log_tail(50)
    );

    // The caller's own retry on the other replica is forwarded to the one
    // that parked the call, and completes it; the state is then spent.
    let done = modern(&alice_b, &retry(5, &state)).await;
    assert_eq!(
        done["result"]["structuredContent"]["confirmed"], true,
        "{done}"
    );
    let r = modern(&alice_a, &retry(6, &state)).await;
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("unknown here"), "spent: {r}");
}
