//! A full disk never turns into lost or half-done writes: the gateway runs
//! with its data directory on a tiny tmpfs, which the test fills, uses (refresh
//! grants and registrations), frees, and restarts the gateway on. Every 2xx
//! answer's write must survive the restart; every 5xx must be a 503 with
//! `Retry-After` whose write did not happen (a refused refresh leaves the old
//! refresh token valid); and after the space is back everything works at once
//! (no connection stuck in a failed transaction, no "database is locked").
//!
//! Needs root for `mount -t tmpfs` (CI runs as root); otherwise it says why and
//! skips.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::authserver::{Browser, add_user, authorize, config, pkce, register, token};
use crate::harness::{BIN, Gateway, free_port};

/// The tmpfs: big enough for the database and its WAL, small enough to fill fast.
const TMPFS_SIZE: &str = "8m";

/// Bytes left free after filling: room for a few transactions' WAL frames.
const SLACK: u64 = 48 << 10;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs on a new directory under `parent`, or says why it cannot.
    fn mount(parent: &Path) -> Result<Tmpfs, String> {
        let dir = parent.join("small-disk");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed (needs root): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    /// Writes a file until the filesystem is full (to the last block).
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("create the filler");
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `POST /register` for a public client named `name`: the status, the
/// `Retry-After` header and the body.
async fn try_register(base: &str, name: &str) -> (StatusCode, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": name,
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("register");
    let s = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (s, retry, r.json().await.unwrap_or(Value::Null))
}

/// A refresh grant: the status, `Retry-After` and the body.
async fn try_refresh(
    base: &str,
    client_id: &str,
    refresh: &str,
) -> (StatusCode, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id),
        ])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("token request");
    let s = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (s, retry, r.json().await.unwrap_or(Value::Null))
}

/// A 5xx must be 503 `temporarily_unavailable` with `Retry-After`.
fn assert_unavailable(what: &str, s: StatusCode, retry: &Option<String>, body: &Value) {
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry.is_some(), "{what}: a 503 without Retry-After");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing_acknowledged_and_half_does_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = match Tmpfs::mount(tmp.path()) {
        Ok(d) => d,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_loses_nothing_acknowledged_and_half_does_nothing: {why}"
            );
            return;
        }
    };
    let data = disk.dir.join("data");
    crate::harness::store::keep_sqlite(&data);
    add_user(&data, "alice", "correct horse", "notes:read notes:write");
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = config(&tmp.path().join("notes"), "");
    let mut gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    let base = gw.base.clone();

    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&base, &[redirect]).await;
    let p = pkce();
    let mut b = Browser::new();
    let code = authorize(
        &mut b,
        &base,
        &client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("alice", "correct horse"),
    )
    .await;
    let (s, t) = token(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let mut refresh = t["refresh_token"].as_str().expect("refresh").to_owned();

    // Codes to exchange while the disk is full (each a fresh grant).
    let mut codes = Vec::new();
    for _ in 0..3 {
        let p = pkce();
        let code = authorize(
            &mut b,
            &base,
            &client_id,
            redirect,
            &p.challenge,
            "notes:read",
            ("alice", "correct horse"),
        )
        .await;
        codes.push((code, p.verifier));
    }

    // Nearly full, then full: every answer is a success whose write is kept,
    // or a 503. The slack lets the first few writes through, so that the
    // failures come in the middle of a sequence of successes, as on a real disk.
    let filler = disk.fill();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .expect("open the filler");
    let len = f.metadata().expect("metadata").len();
    f.set_len(len.saturating_sub(SLACK)).expect("leave slack");
    drop(f);
    let mut exchanged = Vec::new();
    let mut retry_codes = Vec::new();
    for (code, verifier) in codes {
        let (s, body) = exchange(&base, &client_id, redirect, &code, &verifier).await;
        if s == StatusCode::OK {
            exchanged.push(body["refresh_token"].as_str().expect("refresh").to_owned());
        } else {
            assert_eq!(
                s,
                StatusCode::SERVICE_UNAVAILABLE,
                "code exchange on a full disk: {body}"
            );
            assert_eq!(body["error"], "temporarily_unavailable", "{body}");
            retry_codes.push((code, verifier));
        }
    }
    let mut refused = 0;
    let mut registered: Vec<(String, String)> = Vec::new();
    let mut names_kept = Vec::new();
    for i in 0..6 {
        let (s, retry, body) = try_refresh(&base, &client_id, &refresh).await;
        if s == StatusCode::OK {
            refresh = body["refresh_token"].as_str().expect("rotated").to_owned();
        } else {
            assert_unavailable("refresh on a full disk", s, &retry, &body);
            refused += 1;
        }
        let name = format!("disk-full-{i}");
        let (s, retry, body) = try_register(&base, &name).await;
        if s == StatusCode::CREATED {
            registered.push((
                body["registration_client_uri"]
                    .as_str()
                    .expect("uri")
                    .to_owned(),
                body["registration_access_token"]
                    .as_str()
                    .expect("token")
                    .to_owned(),
            ));
            names_kept.push(name);
        } else {
            assert_unavailable("registration on a full disk", s, &retry, &body);
            refused += 1;
        }
    }
    eprintln!(
        "full disk: {} of 3 code exchanges, and {refused} of 12 refreshes and registrations, refused with 503",
        retry_codes.len()
    );
    assert!(
        refused + retry_codes.len() > 0,
        "the full disk refused nothing: the test did not fill it; gateway log:\n{}",
        gw.log_tail(20)
    );
    assert!(
        gw.log_tail(200).contains("storage unavailable"),
        "the refusals are logged: {}",
        gw.log_tail(40)
    );

    // Space is back: everything works at once. Past the refresh grace window,
    // the refresh token current before a 503 must still be unrotated and valid.
    std::fs::remove_file(&filler).expect("free the disk");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A code refused with 503 was not spent: the retry gets its tokens.
    for (code, verifier) in retry_codes {
        let (s, body) = exchange(&base, &client_id, redirect, &code, &verifier).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "retrying a code refused on a full disk: {body}"
        );
        exchanged.push(body["refresh_token"].as_str().expect("refresh").to_owned());
    }
    for i in 0..8 {
        let (s, _, body) = try_refresh(&base, &client_id, &refresh).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "refresh {i} after freeing the disk: {body}"
        );
        refresh = body["refresh_token"].as_str().expect("rotated").to_owned();
        let name = format!("after-{i}");
        let (s, _, body) = try_register(&base, &name).await;
        assert_eq!(
            s,
            StatusCode::CREATED,
            "registration {i} after freeing the disk: {body}; gateway log:\n{}",
            gw.log_tail(20)
        );
        registered.push((
            body["registration_client_uri"]
                .as_str()
                .expect("uri")
                .to_owned(),
            body["registration_access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        ));
        names_kept.push(name);
    }

    // After a restart, every acknowledged write is there, and nothing refused is.
    gw.stop().await;
    let gw = Gateway::start_with_data(&cfg, &listen, &data).await;
    let http = reqwest::Client::new();
    for (uri, rat) in &registered {
        let r = http
            .get(uri)
            .bearer_auth(rat)
            .send()
            .await
            .expect("read client");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{uri} was acknowledged but is gone"
        );
    }
    let out = Command::new(BIN)
        .args(["clients", "list", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .envs(crate::harness::store::env_for(&data))
        .output()
        .expect("mcpgate clients list");
    let listed = String::from_utf8_lossy(&out.stdout);
    let kept = listed
        .lines()
        .filter(|l| l.contains("disk-full-") || l.contains("after-"))
        .count();
    assert_eq!(
        kept,
        names_kept.len(),
        "refused registrations must not exist, acknowledged ones must:\n{listed}"
    );
    let (s, _, body) = try_refresh(&gw.base, &client_id, &refresh).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the last refresh token acknowledged survives the restart: {body}"
    );
    for r in &exchanged {
        let (s, _, body) = try_refresh(&gw.base, &client_id, r).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "a refresh token from a code exchange survives the restart: {body}"
        );
    }
}

/// `authorization_code` at `/token`: the status and the body.
async fn exchange(
    base: &str,
    client_id: &str,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("token request");
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}
