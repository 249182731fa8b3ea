//! Bodies the gateway refuses quickly, with the error shape of the endpoint:
//! an oversized `Content-Length` before the body is read, a deeply nested
//! message before it reaches an upstream, ids that are objects or arrays,
//! and oversized bodies on the authorization server's endpoints.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::raw::{Raw, messages};
use crate::harness::{Gateway, config, demo_stdio_upstream};

async fn demo_gateway() -> (Gateway, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&config(&demo_stdio_upstream("demo", data.path(), ""))).await;
    (gw, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_before_the_body_is_read() {
    let (gw, _data) = demo_gateway().await;
    let mut s = TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    // 100 MB announced, 1 KB sent: the answer must not wait for the rest.
    let host = gw.base.trim_start_matches("http://");
    let head = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: 100000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    s.write_all(&[b' '; 1024]).await.expect("write some body");
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("}") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no answer within 5 s to a 100 MB Content-Length (got {:?})",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("-32600") && text.contains("server.max_body_bytes"),
        "{text}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_message_and_object_ids_are_refused_at_once() {
    let (gw, _data) = demo_gateway().await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    // A 1 MB-deep array in the arguments (2 MB body, under max_body_bytes).
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":{}{}}}}}}}"#,
        "[".repeat(1 << 20),
        "]".repeat(1 << 20)
    );
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        raw.http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", crate::harness::raw::PROTOCOL)
            .body(deep)
            .send(),
    )
    .await
    .expect("an answer within 10 s to a deeply nested message")
    .expect("POST");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = messages(r).await;
    assert_eq!(body[0]["error"]["code"], -32600, "{body:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    for id in [json!({ "a": 1 }), json!([1]), json!(true), Value::Null] {
        let r = raw
            .post(
                Some(&session),
                &json!({ "jsonrpc": "2.0", "id": id, "method": "ping" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "id {id}");
        let body = messages(r).await;
        assert_eq!(body[0]["error"]["code"], -32600, "id {id}: {body:?}");
        assert!(body[0]["id"].is_null(), "{body:?}");
    }
    // Strings and numbers still pass, and the session still works.
    let pong = raw
        .call(
            &session,
            &json!({ "jsonrpc": "2.0", "id": "p-1", "method": "ping" }),
        )
        .await;
    assert_eq!(pong["id"], "p-1", "{pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authserver_endpoints_refuse_an_oversized_body_as_an_oauth_json_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n[authserver]\nenabled = true\n\n{}",
        demo_stdio_upstream("demo", data.path(), "")
    );
    let gw = Gateway::start(&cfg).await;
    let http = reqwest::Client::new();
    let big = "x".repeat(3 * 1024 * 1024);
    for (path, ctype) in [
        ("/token", "application/x-www-form-urlencoded"),
        ("/register", "application/json"),
        ("/revoke", "application/x-www-form-urlencoded"),
    ] {
        let r = http
            .post(format!("{}{path}", gw.base))
            .header("content-type", ctype)
            .body(format!("grant_type=refresh_token&refresh_token={big}"))
            .send()
            .await
            .expect("POST");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: the 413 is not JSON ({e}): {text}"));
        assert_eq!(v["error"], "invalid_request", "{path}: {v}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("larger"),
            "{path}: {v}"
        );
    }
}
