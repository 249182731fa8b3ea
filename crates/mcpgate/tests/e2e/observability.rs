//! Issue 15's observability against the real binary: `/metrics` on its own
//! listener counting HTTP and MCP requests, the access log, a refused
//! `/token` logged at warn with its client and reason, and the audit trail
//! (CLI events, tool calls with an argument digest, `verify` naming an
//! edited and a deleted record, `prune` keeping the chain verifiable).
//!
//! The Prometheus server and the OTLP receiver are in tests/python
//! (test_prometheus.py, test_traces.py).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::raw::{Raw, tool_call};
use crate::harness::{BIN, Gateway, config, demo_stdio_upstream, free_port};

pub(crate) async fn scrape(port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    r.text().await.expect("body")
}

/// The value of the sample whose line starts with `series`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_http_and_mcp_requests_on_their_own_listener() {
    let notes = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[server]\nlog_format = \"json\"\n\n{}",
        config(&demo_stdio_upstream("demo", notes.path(), "")).replace("[server]\n", "")
    );
    let mut gw = Gateway::start(&cfg).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let who = raw
        .call(&session, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert!(who.get("result").is_some(), "{who}");
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    raw.call(&session, &list).await;
    // Not an MCP endpoint of the gateway: the route label stays bounded.
    let nowhere = reqwest::get(format!("{}/no/such/{}", gw.base, "x".repeat(40)))
        .await
        .expect("GET");
    assert_eq!(nowhere.status(), 404);

    let text = scrape(port).await;
    assert!(
        sample(
            &text,
            "mcpgate_http_requests_total{route=\"/mcp/{name}\",status=\"200\"}"
        )
        .is_some_and(|v| v >= 3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcpgate_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0),
        "{text}"
    );
    for (method, n) in [
        ("initialize", 1.0),
        ("tools/call", 1.0),
        ("tools/list", 1.0),
    ] {
        let series = format!(
            "mcpgate_mcp_requests_total{{upstream=\"demo\",method=\"{method}\",outcome=\"ok\"}}"
        );
        assert_eq!(sample(&text, &series), Some(n), "{series} in\n{text}");
    }
    assert!(
        text.contains("mcpgate_mcp_request_duration_seconds_bucket{le=\"+Inf\",upstream=\"demo\",method=\"tools/call\"} 1")
            || text.contains("mcpgate_mcp_request_duration_seconds_count{upstream=\"demo\",method=\"tools/call\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("xxxxxxxx"),
        "a path reached a label:\n{text}"
    );

    // One JSON access log line per request, with what the gateway learnt.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log_tail(400);
    let call = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "mcpgate::access" && v["fields"]["tool"] == "whoami")
        .unwrap_or_else(|| panic!("no access line for the tool call:\n{log}"));
    let f = &call["fields"];
    assert_eq!(f["method"], "POST", "{call}");
    assert_eq!(f["path"], "/mcp/demo", "{call}");
    assert_eq!(f["status"], 200, "{call}");
    assert_eq!(f["upstream"], "demo", "{call}");
    assert_eq!(f["mcp_method"], "tools/call", "{call}");
    assert!(
        f["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{call}"
    );
    assert!(
        f["client"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:")),
        "{call}"
    );
    assert!(f["duration_ms"].as_f64().is_some(), "{call}");
    gw.stop().await;
}

#[tokio::test]
async fn metrics_listener_is_off_with_an_empty_address() {
    let port = free_port();
    let notes = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "[metrics]\nlisten = \"\"\n\n{}",
        config(&demo_stdio_upstream("demo", notes.path(), ""))
    );
    let mut gw = Gateway::start(&cfg).await;
    assert!(
        !gw.log_tail(100).contains("serving metrics"),
        "{}",
        gw.log_tail(100)
    );
    // Nothing of ours listens there (the port was free before the start).
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_token_request_is_logged_at_warn_with_its_client_and_reason() {
    let notes = tempfile::tempdir().expect("tempdir");
    let mut gw = Gateway::start(&crate::authserver::config(notes.path(), "")).await;
    let (status, body) = crate::authserver::token(
        &gw.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "no-such-client"),
            ("code", "made-up"),
            ("code_verifier", "x"),
        ],
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    let error = body["error"].as_str().expect("an OAuth error").to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log_tail(200);
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("refused /token"))
        .unwrap_or_else(|| panic!("no warn line for the refused /token:\n{log}"));
    assert!(line.contains("no-such-client"), "{line}");
    assert!(line.contains(&error), "{line}");
    assert!(
        !line.contains("made-up"),
        "the code reached the log: {line}"
    );
    gw.stop().await;
}

fn mcpgate(args: &[&str], data: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(data))
        .env_remove("MCPGATE_CONFIG")
        .output()
        .expect("run mcpgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn audit_json(data: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "list", "--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = mcpgate(&args, data);
    assert!(ok, "audit list: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn sqlite(db: &Path, sql: &str) {
    let script = "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_audit_trail_records_tool_calls_and_names_tampering() {
    let notes = tempfile::tempdir().expect("tempdir");
    let cfg = config(&demo_stdio_upstream("demo", notes.path(), ""));
    // The test edits the SQLite file behind the server's back.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    crate::harness::store::keep_sqlite(&data);
    let mut gw = Gateway::start_with_data(&cfg, "127.0.0.1:0", &data).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let args = json!({ "title": "audit", "content": "secret-ish words" });
    let created = raw
        .call(
            &session,
            &tool_call(json!(2), "create_secure_note", args.clone()),
        )
        .await;
    assert!(created.get("result").is_some(), "{created}");
    // Written by the server's writer, which a clean stop flushes.
    gw.stop().await;

    let (ok, _, err) = mcpgate(&["keys", "create", "--name", "ci-key"], &data);
    assert!(ok, "{err}");
    let (ok, _, err) = mcpgate(&["keys", "revoke", "ci-key"], &data);
    assert!(ok, "{err}");

    let all = audit_json(&data, &[]);
    let kinds: Vec<&str> = all.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["tool_called", "api_key_created", "api_key_revoked"],
        "{all:?}"
    );
    let call = &all[0];
    assert_eq!(call["upstream"], "demo", "{call}");
    assert_eq!(call["tool"], "create_secure_note", "{call}");
    assert_eq!(call["outcome"], "ok", "{call}");
    let digest: String = Sha256::digest(args.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        call["detail"]["arguments_sha256"],
        digest.as_str(),
        "{call}"
    );
    assert!(
        !call.to_string().contains("secret-ish"),
        "arguments reached the trail: {call}"
    );
    assert_eq!(all[1]["prev_hash"], call["hash"]);
    let only = audit_json(&data, &["--kind", "api_key_created"]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["subject"], "ci-key");

    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(ok, "{out}");
    assert!(out.contains("OK (3 records checked)"), "{out}");

    // Edited with sqlite3 (the append-only trigger dropped first, as an attacker would).
    let db = data.join("mcpgate.sqlite");
    sqlite(
        &db,
        "DROP TRIGGER audit_log_append_only; UPDATE audit_log SET tool = 'harmless' WHERE seq = 1;",
    );
    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(!ok, "verify must fail on an edited record: {out}");
    assert!(out.contains("record 1 was edited"), "{out}");

    // Deleted: the record after it no longer links.
    sqlite(&db, "DELETE FROM audit_log WHERE seq = 1;");
    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(!ok, "verify must fail on a deleted record: {out}");
    assert!(out.contains("record 1 was deleted"), "{out}");
}

#[tokio::test]
async fn pruning_keeps_the_chain_verifiable_and_is_on_the_record() {
    let data = tempfile::tempdir().expect("tempdir");
    let data = data.path().join("data");
    // The test edits the SQLite file.
    crate::harness::store::keep_sqlite(&data);
    for name in ["a", "b", "c"] {
        let (ok, _, err) = mcpgate(&["keys", "create", "--name", name], &data);
        assert!(ok, "{err}");
    }
    // The newest record deleted is noticed too.
    let db = data.join("mcpgate.sqlite");
    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(ok, "{out}");
    // Records are stamped to the second: "before now" needs the next second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ok, _, err) = mcpgate(&["audit", "prune", "--before", "0s"], &data);
    assert!(ok, "{err}");
    assert!(err.contains("Pruned 3 audit records"), "{err}");
    let left = audit_json(&data, &[]);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["kind"], "audit_pruned");
    assert_eq!(left[0]["detail"]["records"], 3);
    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(ok, "after prune: {out}");
    sqlite(&db, "DELETE FROM audit_log WHERE seq = 4;");
    let (ok, out, _) = mcpgate(&["audit", "verify"], &data);
    assert!(!ok, "{out}");
    assert!(out.contains("record 4 (the newest) was deleted"), "{out}");
    let (ok, _, err) = mcpgate(&["audit", "list", "--kind", "nonsense"], &data);
    assert!(!ok);
    assert!(err.contains("unknown kind"), "{err}");
}
