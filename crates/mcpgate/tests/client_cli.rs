//! `mcpgate login / token / call / status / logout`, run as the real binary
//! against authorization servers nobody here wrote, on loopback: panva's
//! `oidc-provider` (OpenID-only metadata, issuer with a path) and the MCP
//! TypeScript SDK's auth router with its demo provider. The protected MCP
//! server is the TypeScript SDK's `McpServer` behind a bearer check
//! (`tests/node/oauth-peers.mjs`).

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

#[path = "support/callback_port.rs"]
mod callback_port;

struct Peer {
    child: Child,
    mcp: String,
    stats: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

fn peer(opts: serde_json::Value) -> Peer {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "run `npm ci` in tests/node (scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg(dir.join("oauth-peers.mjs"))
        .arg(opts.to_string())
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = loop {
        let line = lines
            .next()
            .expect("peer exited before it was ready")
            .unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            break v;
        }
    };
    Peer {
        child,
        mcp: ready["mcp"].as_str().unwrap().to_owned(),
        stats: ready["stats"].as_str().unwrap().to_owned(),
    }
}

impl Peer {
    fn stats(&self) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::get(&self.stats)
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }
}

fn mcpgate(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(args)
        .env("MCPGATE_HOME", home)
        .env_remove("MCPGATE_CLIENT_SECRET")
        .stdin(Stdio::null())
        .output()
        .expect("run mcpgate")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = mcpgate(home, args);
    assert!(
        out.status.success(),
        "mcpgate {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(home: &Path, args: &[&str]) -> String {
    let out = mcpgate(home, args);
    assert!(!out.status.success(), "mcpgate {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn oidc_provider_path_issuer_dcr_call_restart_and_private_files() {
    let p = peer(serde_json::json!({"as": "oidc", "issuerPath": "/t1", "prm": "path"}));
    let home = tempfile::tempdir().unwrap();
    let h = home.path().join("state");
    // No sign-in yet: `token` never starts one.
    let e = err(&h, &["token", &p.mcp]);
    assert!(e.contains("sign-in needed: run `mcpgate login"), "{e}");
    ok(&h, &["login", &p.mcp, "--non-interactive"]);
    let s = p.stats();
    assert_eq!(
        (s["registrations"].as_i64(), s["authorizations"].as_i64()),
        (Some(1), Some(1))
    );
    let out = ok(
        &h,
        &[
            "call",
            &p.mcp,
            "tools/call",
            r#"{"name":"whoami","arguments":{}}"#,
        ],
    );
    assert!(out.contains("\"mcp\""), "{out}");
    // A new process reuses the stored token: no new sign-in, no refresh.
    let t1 = ok(&h, &["token", &p.mcp]);
    let t2 = ok(&h, &["token", &p.mcp]);
    assert_eq!(t1, t2);
    let s = p.stats();
    assert_eq!(
        (s["authorizations"].as_i64(), s["grants"].as_i64()),
        (Some(1), Some(1))
    );
    // Status shows issuer, resource, expiry and scopes, never a token.
    let status = ok(&h, &["status"]);
    assert!(
        status.contains("/t1")
            && status.contains("scopes:   mcp")
            && status.contains("expires:  in"),
        "{status}"
    );
    assert!(!status.contains(t1.trim()));
    let json: serde_json::Value = serde_json::from_str(&ok(&h, &["status", "--json"])).unwrap();
    assert_eq!(json[0]["registration"], "dynamic");
    assert!(json[0]["expires_at"].as_u64().unwrap() > 1_000_000_000);
    // Private files.
    assert_eq!(mode(&h), 0o700);
    for sub in ["sessions", "registrations"] {
        assert_eq!(mode(&h.join(sub)), 0o700);
        for f in std::fs::read_dir(h.join(sub)).unwrap() {
            assert_eq!(mode(&f.unwrap().path()), 0o600);
        }
    }
}

#[test]
fn sdk_auth_router_custom_metadata_url_from_the_challenge() {
    let p = peer(serde_json::json!({"as": "sdk", "prm": "custom"}));
    let home = tempfile::tempdir().unwrap();
    // `call` signs in first when needed (the SDK demo approves without a person).
    let out = ok(
        home.path(),
        &["call", &p.mcp, "tools/list", "--non-interactive"],
    );
    assert!(out.contains("whoami"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["status", "--json"])).unwrap();
    assert!(json[0]["issuer"].as_str().unwrap().ends_with('/'));
    assert_eq!(json[0]["resource"], p.mcp.as_str());
}

#[test]
fn root_metadata_and_every_token_endpoint_auth_method() {
    let port = callback_port::callback_port();
    let key = tempfile::NamedTempFile::new().unwrap();
    let p = peer(
        serde_json::json!({"as": "oidc", "prm": "root", "redirectPort": port,
                                    "keyFile": key.path()}),
    );
    let port = port.to_string();
    let key = key.path().to_str().unwrap();
    let cases: [(&str, &[&str]); 4] = [
        ("pre-public", &[]),
        (
            "pre-basic",
            &["--client-secret", "pre-basic-secret-0123456789abcdef"],
        ),
        (
            "pre-post",
            &[
                "--client-secret",
                "pre-post-secret-0123456789abcdefg",
                "--token-endpoint-auth-method",
                "client_secret_post",
            ],
        ),
        ("pre-jwt", &["--private-key-file", key]),
    ];
    for (client, extra) in cases {
        let home = tempfile::tempdir().unwrap();
        let mut args = vec![
            "login",
            &p.mcp,
            "--non-interactive",
            "--client-id",
            client,
            "--callback-port",
            &port,
        ];
        args.extend_from_slice(extra);
        ok(home.path(), &args);
        let json: serde_json::Value =
            serde_json::from_str(&ok(home.path(), &["status", "--json"])).unwrap();
        assert_eq!(json[0]["client_id"], client);
        assert_eq!(json[0]["registration"], "preregistered");
        // The refresh (forced by a margin longer than the lifetime) authenticates the same way.
        let before = p.stats()["refreshes"].as_i64().unwrap();
        ok(
            home.path(),
            &[
                "token",
                &p.mcp,
                "--refresh-margin",
                "7200",
                "--private-key-file",
                key,
            ],
        );
        assert_eq!(
            p.stats()["refreshes"].as_i64().unwrap(),
            before + 1,
            "{client}"
        );
    }
    // A secret client without its secret is told what to pass.
    let home = tempfile::tempdir().unwrap();
    let e = err(
        home.path(),
        &[
            "login",
            &p.mcp,
            "--non-interactive",
            "--client-id",
            "pre-basic",
            "--callback-port",
            &port,
            "--token-endpoint-auth-method",
            "client_secret_basic",
        ],
    );
    assert!(e.contains("--client-secret"), "{e}");
}

#[test]
fn step_up_refresh_once_across_processes_and_logout() {
    // Short-lived access tokens, so both processes below find theirs expired.
    let p = peer(serde_json::json!({"as": "oidc", "prm": "path", "ttl": 4}));
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(h, &["login", &p.mcp, "--non-interactive"]);
    // 403 insufficient_scope: re-authorize for held ∪ required, then succeed.
    let out = ok(
        h,
        &[
            "call",
            &p.mcp,
            "tools/call",
            r#"{"name":"admin_op","arguments":{}}"#,
            "--non-interactive",
        ],
    );
    assert!(out.contains("admin ok"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(h, &["status", "--json"])).unwrap();
    let scopes: Vec<&str> = json[0]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"mcp") && scopes.contains(&"admin"),
        "{scopes:?}"
    );
    // A server that keeps refusing: one re-authorization per request, then a clear error.
    let auths = p.stats()["authorizations"].as_i64().unwrap();
    let e = err(
        h,
        &[
            "call",
            &p.mcp,
            "tools/call",
            r#"{"name":"always_forbidden","arguments":{}}"#,
            "--non-interactive",
        ],
    );
    assert!(e.contains("403"), "{e}");
    assert_eq!(p.stats()["authorizations"].as_i64().unwrap(), auths + 1);
    // Two processes that both find the token expired refresh it once between
    // them: the second either waits on the lock and finds the first one's new
    // token, or starts after it and finds that token fresh.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let before = p.stats()["refreshes"].as_i64().unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_mcpgate"))
            .args(["token", &p.mcp])
            .env("MCPGATE_HOME", h)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let after = p.stats()["refreshes"].as_i64().unwrap();
    assert_eq!(after, before + 1);
    assert_eq!(a.stdout, b.stdout);
    // Logout revokes at the authorization server and forgets: the refresh
    // token it held no longer works there.
    let dir = h.join("sessions");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let refresh = record["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_id = record["registration"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_endpoint = record["auth_server"]["token_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(h, &["logout", &p.mcp]);
    assert!(ok(h, &["status"]).contains("No sign-ins"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&token_endpoint)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &client_id),
            ])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");
}
