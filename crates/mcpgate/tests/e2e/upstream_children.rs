//! stdio children over their whole life: a client that gives up while its child
//! still starts leaves no process behind (checked in /proc), `max_children` and
//! `/readyz` count live processes, per-subject caps keep one caller from taking
//! every slot, and a bad line on a child's stdout is skipped, not fatal.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::raw::{Raw, initialize_request, messages, tool_call, tool_text};
use crate::harness::{Gateway, children_of, eventually, is_running};
use crate::upstream_timeouts::faulty_upstream;

/// Pids of every faulty child started so far (each writes its pid into `dir`).
fn started(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir(dir)
        .expect("read the pid dir")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn config_with(server: &str, auth: &str, upstreams: &str) -> String {
    format!("[server]\nrequest_timeout = \"10s\"\n{server}\n\n[auth]\n{auth}\n\n{upstreams}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_during_a_slow_start_leaves_no_child() {
    let pids = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "isolation = \"session\"\nmax_children = 1\nenv = {{ FAULTY_INIT_DELAY = \"3\", FAULTY_PID_DIR = {} }}",
        crate::harness::toml_str(&pids.path().display().to_string())
    );
    let gw = Gateway::start(&config_with(
        "",
        "mode = \"disabled\"",
        &faulty_upstream("slow", &extra),
    ))
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .expect("a client");
    let raw = Raw::with_client(impatient, &gw.mcp("slow"));
    for _ in 0..2 {
        let sent = raw
            .http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(initialize_request().to_string())
            .send()
            .await;
        assert!(
            sent.is_err(),
            "the client gave up before the child answered"
        );
        eventually(
            Duration::from_secs(5),
            "every started child is gone",
            || {
                // On a loaded machine the child may be killed before it wrote its
                // pid: the gateway's own children count then.
                let s = started(pids.path());
                s.iter().all(|p| !is_running(*p)) && children_of(gw.pid()).is_empty()
            },
        )
        .await;
    }
    let starts = gw.log_tail(200).matches("started upstream process").count();
    assert_eq!(starts, 2, "one child started for each abandoned initialize");
    // Well past the child's 3 s start: nothing came back to life, nothing is left.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        children_of(gw.pid()),
        Vec::<u32>::new(),
        "{}",
        gw.log_tail(20)
    );
    let ready = gw.readyz().await;
    assert_eq!(ready["upstreams"]["slow"]["children"], 0, "{ready}");

    // The one slot of max_children is free again, and /readyz counts the live child.
    let patient = Raw::new(&gw.mcp("slow"));
    let session = patient.initialize().await;
    let ready = gw.readyz().await;
    assert_eq!(ready["upstreams"]["slow"]["children"], 1, "{ready}");
    assert_eq!(children_of(gw.pid()).len(), 1);
    assert_eq!(patient.delete(&session).await, StatusCode::OK);
    eventually(
        Duration::from_secs(5),
        "the session's child is gone",
        || children_of(gw.pid()).is_empty(),
    )
    .await;
}

/// Initialize as `token`; the status and the JSON-RPC body.
async fn initialize_as(url: &str, token: &str) -> (StatusCode, Value, Option<String>) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize_request().to_string())
        .send()
        .await
        .expect("POST initialize");
    let status = resp.status();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = messages(resp).await.pop().unwrap_or_default();
    (status, body, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_subject_cannot_take_every_slot() {
    let alice = "alice-token-0123456789abcdefghijklmnop";
    let bob = "bob-token-0123456789abcdefghijklmnopqr";
    let auth = format!(
        "[[auth.static_tokens.tokens]]\ntoken = \"{alice}\"\nsubject = \"alice\"\nscopes = \"*\"\n\
         [[auth.static_tokens.tokens]]\ntoken = \"{bob}\"\nsubject = \"bob\"\nscopes = \"*\"\n"
    );
    let upstreams = format!(
        "{}\n{}",
        faulty_upstream("own", "isolation = \"session\""),
        faulty_upstream("shared", "isolation = \"shared\""),
    );
    let gw = Gateway::start(&config_with(
        "max_sessions_per_subject = 3\nmax_children_per_subject = 2",
        &auth,
        &upstreams,
    ))
    .await;

    // Children: alice gets two per-session children of "own", not a third.
    for _ in 0..2 {
        let (status, body, _) = initialize_as(&gw.mcp("own"), alice).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, _) = initialize_as(&gw.mcp("own"), alice).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let why = body["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("max_children_per_subject"), "{body}");
    assert_eq!(children_of(gw.pid()).len(), 2, "only live children count");

    // Sessions: a third session on the shared child is fine, a fourth is not.
    let (status, body, _) = initialize_as(&gw.mcp("shared"), alice).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = initialize_as(&gw.mcp("shared"), alice).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let why = body["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("max_sessions_per_subject"), "{body}");
    assert!(
        gw.log_tail(40).contains("max_sessions_per_subject"),
        "the refusal is logged"
    );

    // Bob is not affected by alice's use.
    let (status, body, session) = initialize_as(&gw.mcp("own"), bob).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(session.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_from_a_shared_child_is_skipped() {
    let gw = Gateway::start(&config_with(
        "",
        "mode = \"disabled\"",
        &faulty_upstream("shared", "isolation = \"shared\""),
    ))
    .await;
    let raw = Raw::new(&gw.mcp("shared"));
    let one = raw.initialize().await;
    let two = raw.initialize().await;
    let child = children_of(gw.pid());
    assert_eq!(child.len(), 1, "one shared child");

    // An invalid UTF-8 byte: the line is skipped, the answer after it arrives.
    let answer = raw
        .call(&one, &tool_call(json!(3), "bad_utf8", json!({})))
        .await;
    assert_eq!(tool_text(&answer), "after the bad line", "{answer}");

    // An answer over the line limit: the request gets an error at once, naming the limit.
    let started = std::time::Instant::now();
    let answer = raw
        .call(&one, &tool_call(json!(4), "too_long", json!({})))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "not by the timeout"
    );
    let why = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("message size limit"), "{answer}");

    // Both sessions keep working, on the same child.
    for (session, id) in [(&one, 5), (&two, 6)] {
        let text = format!("still here {id}");
        let answer = raw
            .call(
                session,
                &tool_call(json!(id), "echo", json!({ "text": text })),
            )
            .await;
        assert_eq!(tool_text(&answer), text, "{answer}");
    }
    assert_eq!(
        children_of(gw.pid()),
        child,
        "the same child, still running"
    );
    assert!(
        gw.log_tail(60).contains("skipped a stdout line"),
        "the skip is logged"
    );
}
