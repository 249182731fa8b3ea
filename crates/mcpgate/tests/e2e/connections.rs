//! Connection limits of the real binary: sockets that send half a request
//! head (or nothing) are closed after `header_read_timeout`, idle keep-alive
//! connections after `idle_timeout` while SSE streams and long calls live on,
//! and under a low open-file limit a flood of idle sockets never locks out a
//! real request (it is answered, 200 or 503, never left hanging).

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::raw::{Raw, tool_call};
use crate::harness::{BIN, Gateway, Proc, demo_stdio_upstream, toml_str};

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes; returns how long that took, or `None` if it
/// stayed open for `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn limits_config(data: &std::path::Path, server_extra: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n{server_extra}\n[auth]\nmode = \"disabled\"\n\n{}",
        demo_stdio_upstream("demo", data, "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_silent_sockets_are_closed_after_header_read_timeout() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&limits_config(
        data.path(),
        "header_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    ))
    .await;
    let addr = host_port(&gw.base);
    let mut half = TcpStream::connect(&addr).await.expect("connect");
    half.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
        .await
        .expect("write half a head");
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let t = closed_within(&mut half, Duration::from_secs(6))
        .await
        .unwrap_or_else(|| {
            panic!(
                "a half-sent request head was still open after 6 s; log:\n{}",
                gw.log_tail(30)
            )
        });
    assert!(t >= Duration::from_millis(800), "closed too early: {t:?}");
    closed_within(&mut silent, Duration::from_secs(3))
        .await
        .expect("a socket that never sent anything was still open");
    // A complete request within the deadline is served.
    let r = reqwest::get(format!("{}/healthz", gw.base))
        .await
        .expect("GET /healthz");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_idle_keep_alive_but_not_streams_or_long_calls() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&limits_config(
        data.path(),
        "header_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    ))
    .await;
    // An idle keep-alive connection is closed once idle_timeout has passed.
    let addr = host_port(&gw.base);
    let mut ka = TcpStream::connect(&addr).await.expect("connect");
    ka.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), ka.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let t = closed_within(&mut ka, Duration::from_secs(8))
        .await
        .expect("an idle keep-alive connection stayed open past idle_timeout");
    assert!(t >= Duration::from_millis(1500), "closed too early: {t:?}");

    // A session's GET stream, silent for longer than idle_timeout, stays open,
    // and a call that takes longer than idle_timeout is answered.
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let stream = raw
        .http
        .get(&raw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", crate::harness::raw::PROTOCOL)
        .send()
        .await
        .expect("GET stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let mut body = stream.bytes_stream();
    let call = tokio::spawn({
        let raw = raw.clone();
        let session = session.clone();
        async move {
            raw.call(
                &session,
                &tool_call(
                    json!(2),
                    "slow_count",
                    json!({ "steps": 4, "delay_ms": 1000 }),
                ),
            )
            .await
        }
    });
    let watch_until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = watch_until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Err(_) => break,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!(
                "the GET stream ended within 5 s (idle_timeout = 2s): {other:?}; log:\n{}",
                gw.log_tail(30)
            ),
        }
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the long call is answered")
        .expect("join");
    assert_eq!(
        answer["result"]["structuredContent"]["completed"], 4,
        "{answer}"
    );
}

/// `mcpgate serve` under `ulimit -n nofile` (soft and hard), with default limits.
async fn start_with_fd_limit(nofile: u32, config: &str) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, config).expect("write the config");
    let script = format!(
        "ulimit -n {nofile} && exec {} serve --config {} --data-dir {} --listen 127.0.0.1:0",
        toml_str(BIN),
        toml_str(&path.display().to_string()),
        toml_str(&dir.path().join("data").display().to_string()),
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGATE_") {
            cmd.env_remove(k);
        }
    }
    let (proc, line) = Proc::spawn(
        "gateway",
        cmd,
        &dir.path().join("gateway.log"),
        "mcpgate: listening on ",
    )
    .await;
    let base = line
        .split("listening on ")
        .nth(1)
        .expect("an address")
        .trim()
        .trim_end_matches('/')
        .to_owned();
    (proc, base, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_under_a_low_fd_limit_do_not_lock_out_a_real_request() {
    let data = tempfile::tempdir().expect("tempdir");
    // Default connection limits: the cap derives from the open-file limit.
    let (gw, base, _dir) = start_with_fd_limit(256, &limits_config(data.path(), "")).await;
    let addr = host_port(&base);
    let mut idle = Vec::new();
    for i in 0..400 {
        match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => idle.push(s),
            other => panic!(
                "idle socket {i} of 400 could not connect within 3 s ({other:?}): the gateway stopped accepting; log:\n{}",
                gw.log_tail(30)
            ),
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .expect("client");
    let t = Instant::now();
    let r = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "with 400 idle sockets a real request got no answer within 8 s: {e:?}; log:\n{}",
                gw.log_tail(30)
            )
        });
    let status = r.status();
    assert!(
        status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}"
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let body: serde_json::Value = r.json().await.expect("a JSON 503");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("server.max_connections"), "{body}");
    }
    eprintln!(
        "answered {status} after {:?} with 400 idle sockets",
        t.elapsed()
    );
    drop(idle);
    // Once the flood is gone the gateway serves again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 200 after the idle sockets closed; log:\n{}",
            gw.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = gw.log_tail(200);
    assert!(
        log.matches("Too many open files").count() <= 5,
        "accept errors fill the log:\n{log}"
    );
}

/// A connection beyond `server.max_connections` gets its 503 as the answer
/// to the request it sends: an HTTP client that met the 503 before it had
/// written its request (the gateway used to answer at accept) reported a
/// broken connection ("unexpected message") instead of the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_connection_cap_read_a_503_not_a_broken_connection() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&limits_config(
        data.path(),
        "max_connections = 1\nheader_read_timeout = \"30s\"\nidle_timeout = \"60s\"\n",
    ))
    .await;
    let addr = host_port(&gw.base);
    // The one slot, held by a keep-alive connection that got its 200 (the
    // start-up probe's connection may take a moment to close and free it).
    let mut holder = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
            .await
            .expect("write");
        if read_head(&mut s).await.starts_with("http/1.1 200") {
            holder = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _holder = holder.expect("a connection that holds the one slot");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(8))
        .build()
        .expect("client");
    for i in 0..20 {
        let r = http
            .get(format!("{}/healthz", gw.base))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request {i} beyond the cap met a transport error instead of a 503: {e:?}; log:\n{}",
                    gw.log_tail(20)
                )
            });
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "request {i}");
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body: serde_json::Value = r.json().await.expect("a JSON 503");
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("server.max_connections = 1"), "{body}");
    }
}

/// Reads one answer's head (up to the blank line), lowercased.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert_eq!(
            n,
            1,
            "closed before an answer; got {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// A request head whose body (`len` bytes) comes in a later write, as HTTP
/// clients send it (httpx writes the head and the body separately).
fn post_head(addr: &str, len: usize, auth: Option<&str>) -> String {
    let auth = auth.map_or_else(String::new, |k| format!("authorization: Bearer {k}\r\n"));
    format!(
        "POST /mcp/demo HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n{auth}content-length: {len}\r\n\r\n"
    )
}

/// An answer given before the request body was read (a 401 from
/// authentication) says `connection: close`: the connection ends after it, and
/// a client that reused it would send its next request into a closed socket
/// ("server disconnected without sending a response", which the Python SDK's
/// sign-in met now and then). An answer to a request whose body was read keeps
/// the connection open for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_request_body_says_connection_close() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_demo_with_auth(data.path()).await;
    let key = crate::auth::demo_banner_key(&gw)
        .await
        .expect("the demo printed its API key");
    let addr = host_port(&gw.base);
    let body = serde_json::to_vec(&crate::harness::raw::initialize_request()).expect("json");

    // No credential: 401 before the body is read.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(post_head(&addr, body.len(), None).as_bytes())
        .await
        .expect("write the head");
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    // The body the client had sent anyway; then the server closes.
    let _ = s.write_all(&body).await;
    closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("the connection closed after the early answer");

    // With the key the body is read and answered: the connection stays open.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    s.write_all(post_head(&addr, body.len(), Some(&key)).as_bytes())
        .await
        .expect("write the head");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&body).await.expect("write the body");
    let head = read_head(&mut s).await;
    assert!(
        head.starts_with("http/1.1 200"),
        "{head}\n{}",
        gw.log_tail(20)
    );
    assert!(!head.contains("\r\nconnection: close\r\n"), "{head}");
}
