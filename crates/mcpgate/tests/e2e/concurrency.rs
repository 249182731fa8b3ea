//! Many clients on one shared stdio child: every client uses the same
//! JSON-RPC id, so only the gateway's id remapping keeps answers apart.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::raw::{Raw, tool_call, tool_text};
use crate::harness::{Gateway, config, demo_stdio_upstream};

const CLIENTS: usize = 1_000;
const AT_ONCE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_sessions_share_one_child_without_crossed_answers() {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&config(&demo_stdio_upstream(
        "demo",
        data.path(),
        "isolation = \"shared\"",
    )))
    .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(AT_ONCE)
        .build()
        .expect("client");
    let raw = Raw::with_client(http, &gw.mcp("demo"));

    let started = Instant::now();
    let results: Vec<(usize, String, String)> = futures_util::stream::iter(0..CLIENTS)
        .map(|n| {
            let raw = raw.clone();
            async move {
                let session = raw.initialize().await;
                let text = format!("client {n} says {}", n * 7919);
                // Every client uses id 1: the child must never see two of them at once.
                let answer = raw
                    .call(
                        &session,
                        &tool_call(json!(1), "echo", json!({ "text": text })),
                    )
                    .await;
                assert_eq!(answer["id"], 1, "{answer}");
                let got = tool_text(&answer).to_owned();
                assert_eq!(raw.delete(&session).await, StatusCode::OK);
                (n, text, got)
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let elapsed = started.elapsed();

    assert_eq!(results.len(), CLIENTS);
    let crossed: Vec<_> = results
        .iter()
        .filter(|(_, want, got)| want != got)
        .collect();
    assert!(
        crossed.is_empty(),
        "{} of {CLIENTS} clients got someone else's answer, e.g. {:?}",
        crossed.len(),
        &crossed[..crossed.len().min(5)]
    );
    let distinct: HashSet<&str> = results.iter().map(|(_, _, got)| got.as_str()).collect();
    assert_eq!(distinct.len(), CLIENTS);
    assert!(
        elapsed < Duration::from_secs(60),
        "{CLIENTS} sessions took {elapsed:?}"
    );
    eprintln!("{CLIENTS} sessions ({AT_ONCE} at a time) in {elapsed:?}");

    let ready = gw.readyz().await;
    assert_eq!(
        ready["upstreams"]["demo"]["children"], 1,
        "one shared child: {ready}"
    );
    assert_eq!(
        ready["upstreams"]["demo"]["sessions"], 0,
        "all deleted: {ready}"
    );
}
