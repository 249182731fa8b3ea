//! `mcpgate keys` and `mcpgate users`, run as the real binary against a temporary data directory.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mcpgate_store::{KeyDigest, Store};

/// Runs `mcpgate args…` with `stdin` piped in, and no data-dir variable inherited.
fn mcpgate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(args)
        .env_remove("MCPGATE_SERVER__DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcpgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for mcpgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str], stdin: &str) -> (String, String) {
    let out = mcpgate(args, stdin);
    assert!(
        out.status.success(),
        "mcpgate {args:?} failed: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn fails(args: &[&str], stdin: &str) -> String {
    let out = mcpgate(args, stdin);
    assert!(!out.status.success(), "mcpgate {args:?} succeeded");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    text(&out.stderr)
}

async fn store(dir: &Path) -> Store {
    Store::open(dir).await.expect("open store")
}

#[tokio::test]
async fn keys_create_list_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/data");
    let d = dir.to_str().unwrap();

    let (stdout, stderr) = ok(
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--scopes",
            "notes:read notes:write",
            "--subject",
            "ci-bot",
            "--expires-in",
            "30d",
            "--data-dir",
            d,
        ],
        "",
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the key alone: {stdout:?}");
    let key = lines[0];
    assert!(key.starts_with("mcpg_") && key.len() >= 5 + 32, "{key}");
    assert!(stderr.contains("only time"), "{stderr}");
    assert!(!stderr.contains(key));

    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");

    let (all, _) = ok(
        &[
            "keys",
            "create",
            "--name",
            "admin",
            "--scopes",
            "*",
            "--data-dir",
            d,
        ],
        "",
    );
    let admin = all.trim();

    let (list, _) = ok(&["keys", "list", "--data-dir", d], "");
    assert!(
        !list.contains(key) && !list.contains(admin),
        "list shows a key:\n{list}"
    );
    assert!(list.starts_with("NAME"), "{list}");
    let ci = list.lines().find(|l| l.starts_with("ci ")).expect("ci row");
    assert!(
        ci.contains(&key[..8]) && ci.contains("ci-bot") && ci.contains("notes:read notes:write"),
        "{ci}"
    );
    assert!(ci.trim_end().ends_with('-'), "not revoked yet: {ci}");

    let err = fails(&["keys", "create", "--name", "ci", "--data-dir", d], "");
    assert!(err.contains("\"ci\" already exists"), "{err}");

    ok(&["keys", "revoke", "ci", "--data-dir", d], "");
    let (list, _) = ok(&["keys", "list", "--data-dir", d], "");
    let ci = list.lines().find(|l| l.starts_with("ci ")).expect("ci row");
    assert!(!ci.trim_end().ends_with('-'), "revoked time shown: {ci}");

    let s = store(&dir).await;
    let found = s.find_api_key(&KeyDigest::of(key)).await.unwrap().unwrap();
    assert!(found.revoked_at.is_some() && found.expires_at.is_some());
    let admin = s
        .find_api_key(&KeyDigest::of(admin))
        .await
        .unwrap()
        .unwrap();
    assert!(admin.revoked_at.is_none() && admin.scopes.contains("*"));

    let err = fails(&["keys", "revoke", "nope", "--data-dir", d], "");
    assert!(err.contains("no API key named \"nope\""), "{err}");
}

#[test]
fn keys_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let d = d.to_str().unwrap();
    let err = fails(
        &[
            "keys",
            "create",
            "--name",
            "k",
            "--expires-in",
            "soon",
            "--data-dir",
            d,
        ],
        "",
    );
    assert!(err.contains("expected e.g. 30d, 12h"), "{err}");
    let err = fails(
        &["keys", "create", "--name", "bad name", "--data-dir", d],
        "",
    );
    assert!(err.contains("invalid API key name"), "{err}");
    let missing = tmp.path().join("missing");
    let err = fails(
        &["keys", "list", "--data-dir", missing.to_str().unwrap()],
        "",
    );
    assert!(err.contains("no mcpgate database in"), "{err}");
    assert!(!missing.exists(), "list must not create a data directory");
}

#[test]
fn the_data_dir_comes_from_the_environment_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("from-env");
    let out = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(["keys", "create", "--name", "k"])
        .env("MCPGATE_SERVER__DATA_DIR", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join(mcpgate_store::DB_FILE).is_file());
}

#[test]
fn the_data_dir_comes_from_the_servers_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("from-config");
    let config = tmp.path().join("mcpgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n[[upstream]]\nname = \"x\"\ncommand = [\"true\"]\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let (key, _) = ok(&["keys", "create", "--name", "c", "--config", &cfg], "");
    assert!(key.trim().starts_with("mcpg_"), "{key}");
    assert!(
        data.join("mcpgate.sqlite").is_file(),
        "the key went to the configured data_dir"
    );
    let (list, _) = ok(&["keys", "list", "-c", &cfg], "");
    assert!(list.contains("c "), "{list}");
    // An explicit --data-dir still wins over the configuration.
    let err = fails(
        &[
            "keys",
            "list",
            "-c",
            &cfg,
            "--data-dir",
            &tmp.path().join("none").display().to_string(),
        ],
        "",
    );
    assert!(err.contains("no mcpgate database"), "{err}");
}

#[tokio::test]
async fn users_add_passwd_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.to_str().unwrap();

    let (stdout, _) = ok(
        &[
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--scopes",
            "notes:read",
            "--data-dir",
            d,
        ],
        "first-pass\n",
    );
    assert!(stdout.is_empty());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "data dir mode {mode:o}");

    let s = store(&dir).await;
    let alice = s
        .check_password("alice", "first-pass")
        .await
        .unwrap()
        .expect("password works");
    assert!(alice.scopes.contains("notes:read"));
    s.close().await;

    let (list, _) = ok(&["users", "list", "--data-dir", d], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice") && l.contains("notes:read")),
        "{list}"
    );
    assert!(
        !list.contains("first-pass") && !list.contains("$argon2"),
        "{list}"
    );

    let err = fails(
        &["users", "add", "alice", "--password-stdin", "--data-dir", d],
        "x\n",
    );
    assert!(err.contains("already exists"), "{err}");
    let err = fails(
        &["users", "add", "bob", "--password-stdin", "--data-dir", d],
        "\n",
    );
    assert!(err.contains("the password is empty"), "{err}");
    let err = fails(&["users", "add", "bob", "--data-dir", d], "");
    assert!(err.contains("--password-stdin"), "{err}");

    ok(
        &[
            "users",
            "passwd",
            "alice",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        "second-pass\r\n",
    );
    let s = store(&dir).await;
    assert!(
        s.check_password("alice", "first-pass")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.check_password("alice", "second-pass")
            .await
            .unwrap()
            .is_some()
    );
    s.close().await;

    ok(&["users", "remove", "alice", "--data-dir", d], "");
    let err = fails(&["users", "remove", "alice", "--data-dir", d], "");
    assert!(err.contains("no user named \"alice\""), "{err}");
    let err = fails(
        &[
            "users",
            "passwd",
            "alice",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        "p\n",
    );
    assert!(err.contains("no user named \"alice\""), "{err}");
}
