//! A session a client ends on one replica is ended on all of them (issue 14):
//! three `mcpgate serve` on one PostgreSQL database, sharing the session key,
//! in front of one Streamable HTTP upstream, with a small
//! `server.max_sessions_per_subject`. Sessions opened on one replica,
//! continued on the next and deleted on the third, many more of them than the
//! cap, are all served: adopting one does not count against the cap, and the
//! DELETE, announced over PostgreSQL, frees its place on the replica that
//! opened it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::raw::{tool_call, tool_text};
use crate::harness::{DemoHttp, Gateway, toml_str};
use crate::session_forwarding::replicas_with;
use crate::session_replicas::as_key;

/// The log line a replica writes when it forgets a session ended elsewhere.
const FORGOT: &str = "a session ended on another replica: forgetting it";

/// How many times `gw` logged that it forgot a session ended elsewhere.
fn forgotten(gw: &Gateway) -> usize {
    gw.log_tail(100_000).matches(FORGOT).count()
}

/// Waits (up to 10 s) until `gw` forgot `n` sessions ended elsewhere.
async fn until_forgotten(gw: &Gateway, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while forgotten(gw) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica forgot {} sessions ended elsewhere, not {n}:\n{}",
            forgotten(gw),
            gw.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_deleted_on_other_replicas_free_their_place_under_the_cap() {
    const CAP: usize = 3;
    let demo = DemoHttp::start().await;
    let upstream = format!(
        "[[upstream]]\nname = \"notes\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&demo.url)
    );
    let r = replicas_with(
        "session_ends",
        3,
        &format!("max_sessions_per_subject = {CAP}"),
        &upstream,
    )
    .await;
    let alice = |i: usize| as_key(&r.gws[i % 3].mcp("notes"), &r.alice);

    // Opened on one, continued on the next, deleted on the third: four
    // times the cap, every replica in every role.
    let mut expected = [0; 3];
    for round in 0..4 * CAP {
        let sid = alice(round).initialize().await;
        let me = alice(round + 1)
            .call(&sid, &tool_call(json!(2), "whoami", json!({})))
            .await;
        assert!(tool_text(&me).contains("alice"), "round {round}: {me}");
        assert_eq!(
            alice(round + 2).delete(&sid).await,
            StatusCode::OK,
            "round {round}: DELETE on a replica that never saw the session"
        );
        // The opener and the replica that continued it forget it (the one
        // that ended it has nothing to forget).
        for i in [round % 3, (round + 1) % 3] {
            expected[i] += 1;
            until_forgotten(&r.gws[i], expected[i]).await;
        }
    }
    for (i, gw) in r.gws.iter().enumerate() {
        // Each replica opened 4 and continued 4 of the sessions others ended.
        assert_eq!(forgotten(gw), 2 * 4, "replica {i}:\n{}", gw.log_tail(40));
    }

    // A session ended on a replica that never saw it is ended on its opener:
    // the opener let it go rather than keep it, and the id is 404 there.
    let sid = alice(0).initialize().await;
    let me = alice(0)
        .call(&sid, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert!(tool_text(&me).contains("alice"), "{me}");
    assert_eq!(alice(2).delete(&sid).await, StatusCode::OK);
    until_forgotten(&r.gws[0], 2 * 4 + 1).await;
    let after = alice(0)
        .post(Some(&sid), &tool_call(json!(3), "whoami", json!({})))
        .await;
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
    // The cap still holds where sessions are opened.
    for _ in 0..CAP {
        alice(1).initialize().await;
    }
    let refused = alice(1)
        .post(None, &crate::harness::raw::initialize_request())
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // A DELETE is not refused by the cap, even on the replica at it, for a
    // session it did not open.
    let other = alice(0).initialize().await;
    assert_eq!(alice(1).delete(&other).await, StatusCode::OK);
}
