//! Sessions on a stdio upstream served by every replica (issue 14, item 5):
//! three `mcpgate serve` processes on one PostgreSQL database, sharing the
//! session key, in front of the reference server-everything as a stdio child.
//! A session opened through A lives with A's child; B and C forward its
//! requests (POST, the GET stream and its resumption, DELETE) to A's internal
//! listener. A forged request to that listener is refused; once A is gone its
//! sessions are 404 everywhere, so clients initialize again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::everything::entry;
use crate::harness::raw::{Raw, SseReader, request, tool_call, tool_text};
use crate::harness::{Gateway, children_of, toml_str};
use crate::replicas::PgDatabase;
use crate::session_replicas::{as_key, create_key_on, modern, modern_confirm};

/// The address a replica printed for its internal listener.
pub(crate) fn internal_address(gw: &Gateway) -> String {
    gw.stdout_lines()
        .iter()
        .find_map(|l| {
            l.strip_prefix("mcpgate: internal listener for other replicas on ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no internal listener line in {:?}", gw.stdout_lines()))
}

pub(crate) struct Replicas {
    pub(crate) _db: PgDatabase,
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) gws: Vec<Gateway>,
    pub(crate) alice: String,
    pub(crate) bob: String,
}

/// `n` replicas on one fresh database with the same session key file, each
/// serving `upstreams` (TOML); API keys for alice and bob on the shared store.
pub(crate) async fn replicas(tag: &str, n: usize, upstreams: &str) -> Replicas {
    replicas_with(tag, n, "", upstreams).await
}

/// Like [`replicas`], with `server` (TOML lines) added to `[server]`.
pub(crate) async fn replicas_with(tag: &str, n: usize, server: &str, upstreams: &str) -> Replicas {
    let db = PgDatabase::create(tag).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "[server]\nrequest_timeout = \"30s\"\nsession_key_file = {}\n{server}\n\n[store]\nurl = {}\n\n{upstreams}",
        toml_str(&dir.path().join("session.key").display().to_string()),
        toml_str(&db.url),
    );
    let master = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        aws_lc_rs::rand::generate::<[u8; 32]>(&aws_lc_rs::rand::SystemRandom::new())
            .expect("random")
            .expose(),
    );
    let env = [("MCPGATE_MASTER_KEY", master.as_str())];
    // The first one migrates the database before the others start.
    let mut gws = vec![Gateway::start_with_env(&cfg, &env).await];
    for _ in 1..n {
        gws.push(Gateway::start_with_env(&cfg, &env).await);
    }
    let keys_dir = dir.path().join("keys");
    let alice = create_key_on(&keys_dir, "alice", Some(&db.url));
    let bob = create_key_on(&keys_dir, "bob", Some(&db.url));
    Replicas {
        _db: db,
        _dir: dir,
        gws,
        alice,
        bob,
    }
}

fn everything_stdio() -> String {
    format!(
        "[[upstream]]\nname = \"everything\"\ncommand = [\"node\", {}, \"stdio\"]\n",
        toml_str(&entry().display().to_string())
    )
}

/// The next `notifications/message` on `stream`, with its event id.
async fn next_log(stream: &mut SseReader) -> (String, Value) {
    loop {
        let ev = stream
            .next(Duration::from_secs(15))
            .await
            .expect("the stream ended before a log message");
        if let Some(m) = ev.json()
            && m["method"] == "notifications/message"
        {
            return (ev.id.expect("an event id"), m);
        }
    }
}

async fn get_stream(raw: &Raw, sid: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = raw
        .http
        .get(&raw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_session_is_served_by_every_replica_through_its_owner() {
    let r = replicas("fwd", 3, &everything_stdio()).await;
    let (a, b, c) = (&r.gws[0], &r.gws[1], &r.gws[2]);
    let alice = |gw: &Gateway| as_key(&gw.mcp("everything"), &r.alice);
    let sid = alice(a).initialize().await;
    assert!(sid.starts_with("s1."), "{sid}");

    // Tools through B and C run in A's child.
    let echo = alice(b)
        .call(
            &sid,
            &tool_call(json!(2), "echo", json!({ "message": "via B" })),
        )
        .await;
    assert!(tool_text(&echo).contains("via B"), "{echo}");
    let sum = alice(c)
        .call(
            &sid,
            &tool_call(json!(3), "get-sum", json!({ "a": 2, "b": 40 })),
        )
        .await;
    assert!(tool_text(&sum).contains("42"), "{sum}");
    let tools = alice(c)
        .call(&sid, &request(json!(4), "tools/list", json!({})))
        .await;
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() > 3),
        "{tools}"
    );
    assert!(!children_of(a.pid()).is_empty(), "A runs the child");
    assert!(
        children_of(b.pid()).is_empty() && children_of(c.pid()).is_empty(),
        "B and C run none"
    );

    // Another subject is refused on every replica, before any forwarding.
    for gw in [a, b, c] {
        let bob = as_key(&gw.mcp("everything"), &r.bob);
        let resp = bob
            .post(
                Some(&sid),
                &tool_call(json!(5), "echo", json!({ "message": "x" })),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    // The GET stream through B is A's server stream: simulated logging (turned
    // on through C) arrives there, and resumes through C after its last id.
    let mut on_b = SseReader::new({
        let resp = get_stream(&alice(b), &sid, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp
    });
    let toggled = alice(c)
        .call(
            &sid,
            &tool_call(json!(6), "toggle-simulated-logging", json!({})),
        )
        .await;
    assert!(tool_text(&toggled).contains("Started"), "{toggled}");
    let (seen, log) = next_log(&mut on_b).await;
    assert!(log["params"]["level"].is_string(), "{log}");
    let resumed = get_stream(&alice(c), &sid, Some(&seen)).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let (after, _) = next_log(&mut SseReader::new(resumed)).await;
    assert_ne!(after, seen, "resumption starts after the last id seen");
    let _ = alice(c)
        .call(
            &sid,
            &tool_call(json!(7), "toggle-simulated-logging", json!({})),
        )
        .await;

    // DELETE through C ends it in A; every replica then answers 404.
    assert_eq!(alice(c).delete(&sid).await, StatusCode::OK);
    for gw in [a, b, c] {
        let resp = alice(gw)
            .post(
                Some(&sid),
                &tool_call(json!(8), "echo", json!({ "message": "x" })),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    assert!(
        b.log_tail(300).contains("no longer holds it")
            || a.log_tail(300).contains("no longer holds it"),
        "A: {}\nB: {}",
        a.log_tail(40),
        b.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_listener_refuses_what_no_replica_sent_and_a_gone_owner_is_404() {
    let mut r = replicas("fwdx", 2, &everything_stdio()).await;
    let sid = as_key(&r.gws[0].mcp("everything"), &r.alice)
        .initialize()
        .await;
    let internal = format!("http://{}/mcp/everything", internal_address(&r.gws[0]));
    let body = tool_call(json!(2), "echo", json!({ "message": "sneaky" })).to_string();
    // A client's own key, no credential, and a made-up pass: all refused there.
    for auth in [
        Some(format!("Bearer {}", r.alice)),
        None,
        Some("Bearer f1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
    ] {
        let mut req = reqwest::Client::new()
            .post(&internal)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.clone());
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("POST to the internal listener");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let text = resp.text().await.unwrap_or_default();
        assert!(!text.contains("sneaky"), "{text}");
    }
    assert!(
        r.gws[0]
            .log_tail(200)
            .contains("the internal listener refused a request"),
        "{}",
        r.gws[0].log_tail(40)
    );

    // A stops: B cannot reach the owner, and says 404 (initialize again).
    let alice_b = as_key(&r.gws[1].mcp("everything"), &r.alice);
    let ok = alice_b
        .call(
            &sid,
            &tool_call(json!(3), "echo", json!({ "message": "before" })),
        )
        .await;
    assert!(tool_text(&ok).contains("before"), "{ok}");
    r.gws[0].stop().await;
    let resp = alice_b
        .post(
            Some(&sid),
            &tool_call(json!(4), "echo", json!({ "message": "after" })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(
        r.gws[1]
            .log_tail(200)
            .contains("the replica that holds this session is gone"),
        "{}",
        r.gws[1].log_tail(40)
    );
    let again = alice_b.initialize().await;
    assert_ne!(again, sid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_required_follow_up_completes_on_whichever_replica_it_reaches() {
    let notes = tempfile::tempdir().expect("tempdir");
    let upstream = crate::harness::demo_stdio_upstream("local", notes.path(), "");
    let mut r = replicas("mrtr", 3, &upstream).await;
    let alice = |r: &Replicas, i: usize| as_key(&r.gws[i].mcp("local"), &r.alice);
    let answers =
        json!({ "mcpgate-input-1": { "action": "accept", "content": { "confirm": true } } });
    // Each call parks on one replica and its follow-up lands on the next.
    for (round, (first, then)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
        let id = 10 * round as u64;
        let asked = modern(&alice(&r, first), &modern_confirm(id + 1, json!({}))).await;
        assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
        let state = asked["result"]["requestState"]
            .as_str()
            .expect("requestState");
        let retry = modern_confirm(
            id + 2,
            json!({ "requestState": state, "inputResponses": answers.clone() }),
        );
        let done = modern(&alice(&r, then), &retry).await;
        assert_eq!(
            done["result"]["structuredContent"]["confirmed"], true,
            "parked on {first}, answered through {then}: {done}"
        );
    }
    // The replica holding a parked call stops: the follow-up elsewhere is
    // told the state is unknown, and the request sent again works.
    let asked = modern(&alice(&r, 0), &modern_confirm(100, json!({}))).await;
    let state = asked["result"]["requestState"]
        .as_str()
        .expect("requestState")
        .to_owned();
    r.gws[0].stop().await;
    let retry = modern_confirm(
        101,
        json!({ "requestState": state, "inputResponses": answers.clone() }),
    );
    let lost = modern(&alice(&r, 1), &retry).await;
    let msg = lost["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("unknown here"), "{lost}");
    let again = modern(&alice(&r, 1), &modern_confirm(102, json!({}))).await;
    assert_eq!(again["result"]["resultType"], "input_required", "{again}");
}
