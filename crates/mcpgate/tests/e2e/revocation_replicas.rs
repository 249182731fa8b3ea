//! Revocation on every replica (issue 14, item 7): two `mcpgate serve` on one
//! PostgreSQL database. While B keeps verifying an API key (so its
//! verified-credential cache holds it), the key is revoked with the CLI; B
//! refuses it well within a second, through `LISTEN/NOTIFY` rather than the
//! cache's expiry. Each round uses a fresh key; every round must be quick.
//! The same for an access token whose grant is revoked at A's `/revoke`.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::authserver::{Browser, register, token};
use crate::harness::{Gateway, free_port, gateway_bin};
use crate::replicas::{PgDatabase, add_user, new_code, random_master_key, replica_config};
use crate::session_forwarding::replicas;
use crate::session_replicas::as_key;

/// Well under the cache's 1 s: an announcement, not an expiry, made B refuse.
const WITHIN: Duration = Duration::from_millis(600);

async fn status(raw: &crate::harness::raw::Raw) -> StatusCode {
    // A GET without a session: authenticated callers get 400, others 401.
    raw.http
        .get(&raw.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_with_the_cli_is_refused_by_every_replica_at_once() {
    let notes = tempfile::tempdir().expect("tempdir");
    let upstream = crate::harness::demo_stdio_upstream("local", notes.path(), "");
    let r = replicas("revoke", 2, &upstream).await;
    let store = {
        let text = std::fs::read_to_string(r.gws[1].config_path()).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("url = "))
            .expect("store url")
            .trim_matches('"')
            .to_owned()
    };
    for round in 0..3 {
        let name = format!("k{round}");
        let out = Command::new(gateway_bin())
            .args(["keys", "create", "--name", &name, "--scopes", "mcp"])
            .args(["--subject", "carol", "--store-url", &store])
            .output()
            .expect("keys create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned();
        let on_a = as_key(&r.gws[0].mcp("local"), &key);
        let on_b = as_key(&r.gws[1].mcp("local"), &key);
        assert_eq!(
            status(&on_a).await,
            StatusCode::BAD_REQUEST,
            "accepted on A"
        );
        assert_eq!(
            status(&on_b).await,
            StatusCode::BAD_REQUEST,
            "accepted on B"
        );
        // B verifies it again and again: its cache holds it when the CLI revokes.
        let out = Command::new(gateway_bin())
            .args(["keys", "revoke", &name, "--store-url", &store])
            .output()
            .expect("keys revoke");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let revoked = Instant::now();
        loop {
            match status(&on_b).await {
                StatusCode::UNAUTHORIZED => break,
                StatusCode::BAD_REQUEST => {}
                other => panic!("unexpected {other}"),
            }
            assert!(
                revoked.elapsed() < WITHIN,
                "round {round}: B still accepts the key {:?} after the revocation",
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            status(&on_a).await,
            StatusCode::UNAUTHORIZED,
            "refused on A"
        );
    }
}

/// Polls `raw` until it refuses its credential; fails past [`WITHIN`].
async fn refused_within(raw: &crate::harness::raw::Raw, what: &str) {
    let revoked = Instant::now();
    loop {
        match status(raw).await {
            StatusCode::UNAUTHORIZED => return,
            StatusCode::BAD_REQUEST => {}
            other => panic!("{what}: unexpected {other}"),
        }
        assert!(
            revoked.elapsed() < WITHIN,
            "{what}: still accepted {:?} after the revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_at_one_replica_ends_its_access_token_on_the_other_at_once() {
    let db = PgDatabase::create("revgrant").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let master = random_master_key();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    add_user(&db.url, &tmp.path().join("cli"), "rita", "pw-rita-12345");
    let env = [("MCPGATE_MASTER_KEY", master.as_str())];
    let a = Gateway::start_listening_with_env(
        &replica_config(&public, &db.url, &tmp.path().join("notes-a")),
        &format!("127.0.0.1:{port}"),
        &env,
    )
    .await;
    let b = Gateway::start_listening_with_env(
        &replica_config(&public, &db.url, &tmp.path().join("notes-b")),
        "127.0.0.1:0",
        &env,
    )
    .await;
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&public, &[redirect]).await;
    let mut browser = Browser::new();
    let (code, verifier) = new_code(&mut browser, &public, &client_id, redirect).await;
    let (s, t) = token(
        &a.base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let access = t["access_token"].as_str().expect("access token");
    let refresh = t["refresh_token"].as_str().expect("refresh token");
    let on_b = as_key(&b.mcp("demo"), access);
    assert_eq!(
        status(&on_b).await,
        StatusCode::BAD_REQUEST,
        "accepted on B"
    );
    let revoked = reqwest::Client::new()
        .post(format!("{}/revoke", a.base))
        .form(&[("token", refresh), ("client_id", client_id.as_str())])
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    refused_within(&on_b, "the access token of a revoked grant on B").await;
}
