//! What `check-config` and `serve` refuse (the same configurations, with the
//! same message), what `/readyz` reports as not ready (an unwritable data
//! directory, a stdio program that does not exist), the start-up banner, and
//! the client commands against a server that needs no sign-in.
//!
//! The binary is `MCPGATE_TEST_BIN` when set (to run these against an older
//! build and watch them fail), else the one Cargo built.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Gateway, free_port, toml_str};

fn bin() -> String {
    crate::harness::gateway_bin()
}

/// `mcpgate <args>` with only `env` of the `MCPGATE_…` variables.
pub(crate) fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs `serve` and waits for it to exit on its own (it must refuse to start).
fn serve_refuses(config: &Path, dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut child = command(
        &[
            "serve",
            "--config",
            &config.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        env,
    )
    .current_dir(dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start mcpgate serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "serve started with a configuration check-config refuses; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An upstream that is valid as configuration (nothing needs to listen there).
const AN_UPSTREAM: &str = "[[upstream]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/mcp\"\n";

/// What is broken, the configuration, its environment, and the message both must print.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn check_config_and_serve_refuse_the_same_broken_configs_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let short = ("SCENARIO_SHORT_SECRET", "only-20-bytes-secret");
    let cases: Vec<Case<'_>> = vec![
        (
            "jwt hmac_secret_env unset",
            format!(
                "[[auth.jwt]]\nissuer = \"https://idp.example\"\naudience = \"http://127.0.0.1:1/mcp\"\nhmac_secret_env = \"SCENARIO_UNSET_SECRET\"\n{AN_UPSTREAM}"
            ),
            vec![],
            "hmac_secret_env: names SCENARIO_UNSET_SECRET, which is not set",
        ),
        (
            "jwt secret shorter than 32 bytes",
            format!(
                "[[auth.jwt]]\nissuer = \"https://idp.example\"\naudience = \"http://127.0.0.1:1/mcp\"\nhmac_secret_env = \"SCENARIO_SHORT_SECRET\"\n{AN_UPSTREAM}"
            ),
            vec![short],
            "at least 32 are needed",
        ),
        (
            "jwt public_key_file unreadable",
            format!(
                "[[auth.jwt]]\nissuer = \"https://idp.example\"\naudience = \"http://127.0.0.1:1/mcp\"\npublic_key_file = \"/nonexistent/scenario-key.pem\"\n{AN_UPSTREAM}"
            ),
            vec![],
            "public_key_file: cannot read /nonexistent/scenario-key.pem",
        ),
        (
            "vault credential without [authserver]",
            "[[upstream]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/mcp\"\ncredentials = [{ kind = \"vault\", label = \"W key\" }]\n".to_owned(),
            vec![],
            "upstream w: kind = \"vault\" keeps each user's secret in the built-in authorization server, but [authserver] is not enabled",
        ),
        (
            "federated credential naming no provider",
            "[authserver]\nenabled = true\n[[upstream]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/mcp\"\ncredentials = [{ kind = \"federated\", provider = \"github\" }]\n".to_owned(),
            vec![],
            "upstream w: kind = \"federated\" names provider \"github\", but no [[authserver.federation]] has that name",
        ),
        (
            "upstream key with auth disabled",
            format!(
                "[auth]\nmode = \"disabled\"\n[[auth.upstream_key]]\nupstream = \"w\"\nformat = \"k-[0-9]+\"\nformat_description = \"k- and digits\"\nheader = \"X-Api-Key\"\n{AN_UPSTREAM}"
            ),
            vec![],
            "auth.upstream_key: users' own upstream keys are checked and forwarded only for authenticated callers, but auth.mode = \"disabled\"",
        ),
        (
            "data directory that is a regular file",
            format!(
                "[server]\ndata_dir = {}\n{AN_UPSTREAM}",
                toml_str(&file.display().to_string())
            ),
            vec![],
            "is a regular file, not a directory",
        ),
    ];
    for (what, config, env, message) in cases {
        let path = dir.path().join("mcpgate.toml");
        std::fs::write(&path, &config).unwrap();
        let check = command(
            &["check-config", "--config", &path.display().to_string()],
            &env,
        )
        .output()
        .expect("run check-config");
        let check_err = String::from_utf8_lossy(&check.stderr);
        assert!(
            !check.status.success() && check_err.contains(message),
            "{what}: check-config should fail with {message:?}; it said ({}):\n{check_err}",
            check.status
        );
        let serve = serve_refuses(&path, dir.path(), &env);
        let serve_err = String::from_utf8_lossy(&serve.stderr);
        assert!(
            !serve.status.success() && serve_err.contains(message),
            "{what}: serve should exit non-zero with {message:?}; it said ({}):\n{serve_err}",
            serve.status
        );
    }
}

#[test]
fn an_environment_override_error_names_the_variable_not_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, format!("[auth]\nmode = \"disabled\"\n{AN_UPSTREAM}")).unwrap();
    let env = [("MCPGATE_SERVER__LISTEN", "127.0.0.1:99999")];
    let check = command(
        &["check-config", "--config", &path.display().to_string()],
        &env,
    )
    .output()
    .unwrap();
    let msg = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{msg}");
    assert!(
        msg.contains("environment MCPGATE_SERVER__LISTEN (sets server.listen)"),
        "{msg}"
    );
    assert!(
        !msg.contains(&format!("{}: server.listen", path.display())),
        "the file does not hold that value: {msg}"
    );
    let serve = serve_refuses(&path, dir.path(), &env);
    let msg = String::from_utf8_lossy(&serve.stderr);
    assert!(
        msg.contains("environment MCPGATE_SERVER__LISTEN (sets server.listen)"),
        "{msg}"
    );
}

/// Makes `dir` unwritable for this process: mode 0500, and for root (which
/// ignores modes) the immutable attribute. Undone by [`make_writable`].
fn make_unwritable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    if owned_by_root(dir) {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "as root, this test needs `chattr +i` (e2fsprogs) on the temporary directory's filesystem"
        );
    }
}

/// Whether this process runs as root: the directory it created is root's.
fn owned_by_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if owned_by_root(dir) {
        let _ = Command::new("chattr").arg("-i").arg(dir).status();
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

async fn readyz(base: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn readyz_is_not_ready_while_the_data_dir_is_unwritable_or_a_command_is_missing() {
    // A program that does not exist: check-config fails, serve starts, /readyz says why.
    let missing =
        "[[upstream]]\nname = \"gone\"\ncommand = [\"mcpgate-scenario-no-such-program\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, crate::harness::config(missing)).unwrap();
    let check = command(
        &["check-config", "--config", &path.display().to_string()],
        &[],
    )
    .output()
    .unwrap();
    let msg = String::from_utf8_lossy(&check.stderr);
    assert!(
        !check.status.success()
            && msg.contains(
                "upstream gone: command \"mcpgate-scenario-no-such-program\" is not on PATH"
            ),
        "{msg}"
    );
    let gw = Gateway::start(&crate::harness::config(missing)).await;
    let (status, doc) = readyz(&gw.base).await;
    assert_eq!(status, 503, "{doc}");
    assert!(
        doc["problems"]
            .to_string()
            .contains("mcpgate-scenario-no-such-program"),
        "{doc}"
    );
    drop(gw);

    // A data directory that becomes unwritable while serving.
    let data = tempfile::tempdir().unwrap();
    let config = crate::harness::config(&crate::harness::demo_stdio_upstream(
        "demo",
        data.path(),
        "",
    ));
    let gw = Gateway::start(&config).await;
    let (status, doc) = readyz(&gw.base).await;
    assert_eq!(status, 200, "{doc}");
    let dd = gw.data_dir().to_owned();
    make_unwritable(&dd);
    let (status, doc) = readyz(&gw.base).await;
    make_writable(&dd);
    assert_eq!(status, 503, "{doc}");
    let problems = doc["problems"].to_string();
    assert!(
        problems.contains(&dd.display().to_string()) && problems.contains("cannot write"),
        "/readyz should name the data directory: {doc}"
    );
    let (status, doc) = readyz(&gw.base).await;
    assert_eq!(status, 200, "writable again: {doc}");
}

#[tokio::test]
async fn the_banner_names_the_bound_address_and_the_public_url() {
    let public = format!("http://127.0.0.1:{}", free_port());
    let config = format!(
        "[server]\npublic_url = {}\n{}",
        toml_str(&public),
        crate::harness::config(AN_UPSTREAM).replacen("[server]\n", "", 1)
    );
    // The harness connects to what the "listening on" line names: it must be
    // the bound socket, not the public URL (nothing listens there).
    let gw = Gateway::start(&config).await;
    assert_ne!(gw.base, public);
    let lines = gw.stdout_lines();
    assert!(
        lines.contains(&format!("mcpgate: listening on {}", gw.base)),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("mcpgate: public URL {public}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("mcpgate: upstream w at {public}/mcp/w")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn call_and_login_just_work_against_a_server_that_needs_no_sign_in() {
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start_demo(data.path()).await;
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().display().to_string();
    let url = format!("{}/mcp", gw.base);
    let env = [("MCPGATE_HOME", home_s.as_str())];
    let call = command(&["call", &url, "tools/list"], &env)
        .output()
        .unwrap();
    assert!(
        call.status.success(),
        "call: {}",
        String::from_utf8_lossy(&call.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&call.stdout).unwrap();
    assert!(
        result["tools"].as_array().is_some_and(|t| !t.is_empty()),
        "{result}"
    );
    let login = command(&["login", &url, "--non-interactive"], &env)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&login.stderr);
    assert!(login.status.success(), "login: {msg}");
    assert!(msg.contains("No sign-in needed"), "{msg}");
    // Nothing was stored: there was nothing to sign in to.
    let status = command(&["status", "--json"], &env).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "[]");
    // A reader that goes away (`mcpgate call … | head -c 1`) is not a crash.
    let mut piped = command(&["call", &url, "tools/list"], &env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(piped.stdout.take());
    let out = piped.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{err}");
}
