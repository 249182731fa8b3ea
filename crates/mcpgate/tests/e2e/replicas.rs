//! Replicas on one PostgreSQL database (issue 14, store items 1 and 3): three
//! `mcpgate serve` processes started at the same instant on a fresh database
//! (they migrate it once), sharing the master key, each with its own data
//! directory. 200 times, one authorization code is sent to all three token
//! endpoints at once, and, with `refresh_grace = "0s"`, one refresh token is:
//! exactly one request wins each time, the others get `invalid_grant`. The
//! same rounds against one process on SQLite hold too. And a single SQLite
//! node moves to PostgreSQL with `mcpgate store copy`.
//!
//! PostgreSQL: `MCPGATE_TEST_POSTGRES_URL` (a server URL whose user may create
//! databases), else `postgres://postgres@127.0.0.1:5432/postgres`;
//! `scripts/test` provides one. The test creates its own database and drops it.

use std::path::Path;
use std::time::Instant;

use reqwest::StatusCode;
use sqlx::Connection as _;

use crate::authserver::{Browser, add_user_with, authorize, pkce, register, token};
use crate::harness::{BIN, Gateway, demo_stdio_upstream, free_port};

/// How many times each race is run.
const ROUNDS: usize = 200;

/// The PostgreSQL server the tests may create databases on.
pub(crate) fn postgres_server() -> String {
    std::env::var("MCPGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of the test's own on [`postgres_server`], dropped on drop.
pub(crate) struct PgDatabase {
    server: String,
    name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl PgDatabase {
    pub(crate) async fn create(tag: &str) -> PgDatabase {
        let server = postgres_server();
        let name = format!(
            "mcpgate_e2e_{tag}_{}_{}",
            std::process::id(),
            Instant::now().elapsed().subsec_nanos()
        );
        let mut c = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at MCPGATE_TEST_POSTGRES_URL or 127.0.0.1:5432 ({e}); scripts/test starts one"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create the test database");
        let _ = c.close().await;
        let (base, query) = server.split_once('?').unwrap_or((&server, ""));
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        PgDatabase { server, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `mcpgate users add NAME --store-url URL` (the password on stdin).
pub(crate) fn add_user(store_url: &str, data: &Path, name: &str, password: &str) {
    add_user_with(
        data,
        name,
        password,
        "notes:read",
        &["--store-url", store_url],
    );
}

/// A replica's configuration: the shared public URL (one issuer), the store,
/// no grace for rotated refresh tokens.
pub(crate) fn replica_config(public: &str, store_url: &str, notes: &Path) -> String {
    format!(
        "[server]\npublic_url = \"{public}\"\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n\n\
         [authserver]\nenabled = true\nrefresh_grace = \"0s\"\n\n[store]\nurl = {}\n\n{}",
        crate::harness::toml_str(store_url),
        demo_stdio_upstream("demo", notes, "")
    )
}

/// A fresh master key, base64, as `MCPGATE_MASTER_KEY` takes it: the replicas share it.
pub(crate) fn random_master_key() -> String {
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        aws_lc_rs::rand::generate::<[u8; 32]>(&aws_lc_rs::rand::SystemRandom::new())
            .expect("random")
            .expose(),
    )
}

/// Signs in on `issuer` (the first time) and allows: a fresh code and its verifier.
pub(crate) async fn new_code(
    b: &mut Browser,
    issuer: &str,
    client_id: &str,
    redirect: &str,
) -> (String, String) {
    let p = pkce();
    let code = authorize(
        b,
        issuer,
        client_id,
        redirect,
        &p.challenge,
        "notes:read",
        ("rita", "pw-rita-12345"),
    )
    .await;
    (code, p.verifier)
}

/// Sends `form` to the token endpoint of every one of `bases` at once; how
/// many answered 200, after checking every other answer is `invalid_grant`.
async fn race(bases: &[String], form: &[(&str, &str)], what: &str) -> usize {
    let calls = bases.iter().map(|b| token(b, form));
    let answers = futures_util::future::join_all(calls).await;
    let mut won = 0;
    for (s, body) in answers {
        if s == StatusCode::OK {
            assert!(body["access_token"].is_string(), "{what}: {body}");
            won += 1;
        } else {
            assert_eq!(
                (s, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant")),
                "{what}: {body}"
            );
        }
    }
    won
}

/// The two races, [`ROUNDS`] times each: a code, then a refresh token, sent
/// to every one of `bases` at once (the authorization itself goes to `issuer`).
async fn code_and_refresh_races(issuer: &str, bases: &[String]) {
    let redirect = "http://127.0.0.1/cb";
    let client_id = register(issuer, &[redirect]).await;
    let mut b = Browser::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let (code, verifier) = new_code(&mut b, issuer, &client_id, redirect).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
        ];
        let won = race(bases, &form, &format!("code, round {round}")).await;
        assert_eq!(won, 1, "code, round {round}: {won} redemptions succeeded");

        // A grant of its own (the code race revoked the last one, as a replay must).
        let (code, verifier) = new_code(&mut b, issuer, &client_id, redirect).await;
        let (s, t) = token(
            &bases[round % bases.len()],
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
        let rt = t["refresh_token"].as_str().expect("refresh token");
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id.as_str()),
        ];
        let won = race(bases, &form, &format!("refresh, round {round}")).await;
        assert_eq!(won, 1, "refresh, round {round}: {won} refreshes succeeded");
    }
    eprintln!(
        "{ROUNDS} code races and {ROUNDS} refresh races over {} endpoint(s): {:.1} s",
        bases.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_on_postgres_honour_a_code_and_a_refresh_token_once() {
    let db = PgDatabase::create("replicas").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let master = random_master_key();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    add_user(&db.url, &tmp.path().join("cli"), "rita", "pw-rita-12345");
    let env = [("MCPGATE_MASTER_KEY", master.as_str())];
    let configs: Vec<String> = (0..3)
        .map(|i| replica_config(&public, &db.url, &tmp.path().join(format!("notes{i}"))))
        .collect();
    // Started at the same instant: they migrate the fresh schema once.
    let listen = format!("127.0.0.1:{port}");
    let (a, b, c) = tokio::join!(
        Gateway::start_listening_with_env(&configs[0], &listen, &env),
        Gateway::start_listening_with_env(&configs[1], "127.0.0.1:0", &env),
        Gateway::start_listening_with_env(&configs[2], "127.0.0.1:0", &env),
    );
    let bases = vec![a.base.clone(), b.base.clone(), c.base.clone()];
    assert_eq!(bases[0], public);
    code_and_refresh_races(&public, &bases).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    let applied = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mcpgate-store/migrations/postgres"
    ))
    .expect("migrations")
    .count();
    assert_eq!(
        usize::try_from(migrations).expect("count"),
        applied,
        "each migration applied once"
    );
    let _ = conn.close().await;
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_process_on_sqlite_honours_a_code_and_a_refresh_token_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let data = tmp.path().join("data");
    let store = format!("sqlite://{}/mcpgate.sqlite", data.display());
    add_user(&store, &data, "rita", "pw-rita-12345");
    let config = replica_config(&public, &store, &tmp.path().join("notes"));
    let gw = Gateway::start_with_data(&config, &format!("127.0.0.1:{port}"), &data).await;
    let bases = vec![gw.base.clone(), gw.base.clone(), gw.base.clone()];
    code_and_refresh_races(&public, &bases).await;
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').next().expect("a JWT header"))
        .expect("base64url");
    let v: serde_json::Value = serde_json::from_slice(&header).expect("JSON");
    v["kid"].as_str().expect("kid").to_owned()
}

/// Signs in on a fresh browser and exchanges the code at `base`: the token response.
async fn sign_in_and_exchange(base: &str, client_id: &str, redirect: &str) -> serde_json::Value {
    let mut b = Browser::new();
    let (code, verifier) = new_code(&mut b, base, client_id, redirect).await;
    let (s, t) = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    t
}

/// A single node on SQLite moves to PostgreSQL with `mcpgate store copy`:
/// the user, the registered client, the refresh token and the sealed signing
/// key (it still signs: the same `kid`) all work on the PostgreSQL-backed
/// server; a second copy into the now non-empty database is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_sqlite_installation_to_postgres() {
    let db = PgDatabase::create("copy").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let data = tmp.path().join("data");
    let sqlite = format!("sqlite://{}/mcpgate.sqlite", data.display());
    add_user(&sqlite, &data, "rita", "pw-rita-12345");
    let notes = tmp.path().join("notes");
    let redirect = "http://127.0.0.1/cb";

    let mut gw =
        Gateway::start_with_data(&replica_config(&public, &sqlite, &notes), &listen, &data).await;
    let client_id = register(&public, &[redirect]).await;
    let before = sign_in_and_exchange(&public, &client_id, redirect).await;
    let kid = kid_of(before["access_token"].as_str().expect("access token"));
    gw.stop().await;

    let copy = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .args([
                "store",
                "copy",
                "--from",
                &sqlite,
                "--to",
                &db.url,
                "--data-dir",
            ])
            .arg(&data)
            .args(extra)
            .env_remove("MCPGATE_MASTER_KEY")
            .output()
            .expect("mcpgate store copy")
    };
    let out = copy(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("sealed values open with the master key"),
        "{err}"
    );
    let out = copy(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not empty"),
        "{err}"
    );

    let gw =
        Gateway::start_with_data(&replica_config(&public, &db.url, &notes), &listen, &data).await;
    // The refresh token issued on SQLite rotates on PostgreSQL.
    let rt = before["refresh_token"].as_str().expect("refresh token");
    let (s, t) = token(
        &public,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id.as_str()),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    // The user signs in, the client is known, the same key signs.
    let after = sign_in_and_exchange(&public, &client_id, redirect).await;
    assert_eq!(
        kid_of(after["access_token"].as_str().expect("access token")),
        kid
    );
    drop(gw);
}

/// `mcpgate signing-keys rotate --store-url URL` with the shared master key:
/// the new `kid`.
fn rotate_signing_key(store_url: &str, data: &Path, master: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args([
            "signing-keys",
            "rotate",
            "--store-url",
            store_url,
            "--data-dir",
        ])
        .arg(data)
        .env_remove("MCPGATE_CONFIG")
        .env("MCPGATE_MASTER_KEY", master)
        .output()
        .expect("mcpgate signing-keys rotate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What `base`'s MCP endpoint answers an `initialize` carrying `access_token`.
async fn initialize_status(base: &str, access_token: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/mcp/demo"))
        .bearer_auth(access_token)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "replicas", "version": "0"}}
        }))
        .send()
        .await
        .expect("initialize")
        .status()
}

/// A key one replica signs with and another has not read yet: A starts and
/// makes the first key; the key is rotated in the store (as `signing-keys
/// rotate` on any host does); B starts and signs with the new key. A has not
/// re-read its ring (maintenance runs once a minute), yet it accepts B's
/// token at once — an unknown `kid` under its own issuer makes it look in the
/// store — and B accepts A's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_accepts_a_token_signed_with_a_key_it_has_not_read_yet() {
    let db = PgDatabase::create("kidmiss").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let master = random_master_key();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    add_user(&db.url, &tmp.path().join("cli"), "rita", "pw-rita-12345");
    let env = [("MCPGATE_MASTER_KEY", master.as_str())];
    let config = |i: usize| replica_config(&public, &db.url, &tmp.path().join(format!("notes{i}")));
    let a = Gateway::start_listening_with_env(&config(0), &format!("127.0.0.1:{port}"), &env).await;
    let rotated = rotate_signing_key(&db.url, &tmp.path().join("cli"), &master);
    let b = Gateway::start_listening_with_env(&config(1), "127.0.0.1:0", &env).await;

    let redirect = "http://127.0.0.1/cb";
    let client_id = register(&public, &[redirect]).await;
    let mut browser = Browser::new();
    let mut tokens = Vec::new();
    for base in [&a.base, &b.base] {
        let (code, verifier) = new_code(&mut browser, &public, &client_id, redirect).await;
        let (s, t) = token(
            base,
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
        tokens.push(t["access_token"].as_str().expect("access token").to_owned());
    }
    let (from_a, from_b) = (&tokens[0], &tokens[1]);
    assert_ne!(
        kid_of(from_a),
        kid_of(from_b),
        "A still signs with its first key"
    );
    assert!(
        rotated.contains(&kid_of(from_b)),
        "B signs with the rotated key: {rotated}"
    );
    for (who, base) in [("A", &a.base), ("B", &b.base)] {
        for (whose, t) in [("A's", from_a), ("B's", from_b)] {
            assert_eq!(
                initialize_status(base, t).await,
                StatusCode::OK,
                "{who} refused {whose} token: {}",
                if who == "A" {
                    a.log_tail(20)
                } else {
                    b.log_tail(20)
                }
            );
        }
    }
    drop((a, b));
}
