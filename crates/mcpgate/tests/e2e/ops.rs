//! Operations (issue 15): every configuration key from the environment
//! (`[authserver]` too, `serve --demo` without a file too), `check-config
//! --show`, colours only on a terminal, and the small things a demo user hit:
//! the 401's `scope=`, standard JSON Schema in the demo's tools, the data
//! directory warning and the restart banner.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::checks::command;
use crate::harness::raw::{Raw, request};
use crate::harness::{Gateway, Proc, config, demo_stdio_upstream, gateway_bin, toml_str};

#[tokio::test]
async fn config_authserver_keys_from_the_environment_take_effect() {
    let data = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nrequest_timeout = \"30s\"\n{}",
        demo_stdio_upstream("demo", data.path(), "")
    );
    // Without the variables, no authorization server answers.
    let mut plain = Gateway::start(&cfg).await;
    let http = reqwest::Client::new();
    let meta = format!("{}/.well-known/oauth-authorization-server", plain.base);
    let r = http.get(&meta).send().await.unwrap();
    assert_eq!(r.status(), 404, "no [authserver] in the file: none runs");
    plain.stop().await;

    let mut gw = Gateway::start_with_env(
        &cfg,
        &[
            ("MCPGATE_AUTHSERVER__ENABLED", "true"),
            ("MCPGATE_AUTHSERVER__CIMD__ENABLED", "false"),
        ],
    )
    .await;
    let meta = format!("{}/.well-known/oauth-authorization-server", gw.base);
    let r = http.get(&meta).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "MCPGATE_AUTHSERVER__ENABLED=true: {}",
        gw.log_tail(20)
    );
    let m: Value = r.json().await.unwrap();
    assert_eq!(
        m["client_id_metadata_document_supported"],
        json!(false),
        "a nested key from MCPGATE_AUTHSERVER__CIMD__ENABLED: {m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn config_errors_in_an_authserver_variable_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, config(&demo_stdio_upstream("demo", dir.path(), ""))).unwrap();
    let out = command(
        &["check-config", "--config", &path.display().to_string()],
        &[("MCPGATE_AUTHSERVER__ACCESS_TOKEN_TTL", "soon")],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "environment MCPGATE_AUTHSERVER__ACCESS_TOKEN_TTL (sets authserver.access_token_ttl)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn demo_without_a_config_file_honours_environment_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = command(
        &[
            "serve",
            "--demo",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.display().to_string(),
        ],
        &[("MCPGATE_SERVER__PUBLIC_URL", "https://demo.example.test/")],
    );
    cmd.current_dir(dir.path());
    let (mut proc, line) = Proc::spawn(
        "demo",
        cmd,
        &dir.path().join("demo.log"),
        "mcpgate: public URL",
    )
    .await;
    assert_eq!(
        line,
        "mcpgate: public URL https://demo.example.test",
        "{}",
        proc.log_tail(20)
    );
    proc.terminate(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn config_show_prints_each_source_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcpgate.toml");
    let text = format!(
        "[server]\nrequest_timeout = \"30s\"\ndata_dir = {}\n\n[auth.static_tokens]\ntokens = [{{ token = \"st-0123456789abcdef0123456789abcdef\", subject = \"ci\" }}]\n\n[[upstream]]\nname = \"remote\"\nurl = \"http://127.0.0.1:9/mcp\"\nheaders = {{ Authorization = \"Bearer hdr-secret-value\" }}\n",
        toml_str(&dir.path().join("data").display().to_string())
    );
    std::fs::write(&path, text).unwrap();
    let out = command(
        &[
            "check-config",
            "--config",
            &path.display().to_string(),
            "--show",
        ],
        &[("MCPGATE_SERVER__MAX_BODY_BYTES", "2048")],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let file = format!("# file {}", path.display());
    for want in [
        format!("request_timeout = \"30s\"  {file}"),
        "max_body_bytes = 2048  # environment MCPGATE_SERVER__MAX_BODY_BYTES".to_owned(),
        "listen = \"127.0.0.1:8080\"  # default".to_owned(),
        "access_token_ttl = \"1h\"  # default".to_owned(),
        format!("name = \"remote\"  {file}"),
        "Authorization = \"<redacted>\"".to_owned(),
        "token = \"<redacted>\"".to_owned(),
        "[[upstream]]".to_owned(),
    ] {
        assert!(stdout.contains(&want), "{want:?} missing from:\n{stdout}");
    }
    assert!(
        !stdout.contains("hdr-secret-value") && !stdout.contains("st-0123456789abcdef"),
        "a secret was printed:\n{stdout}"
    );
    // The configuration is TOML (comments aside), then check-config's verdict.
    let (shown, verdict) = stdout.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(verdict, format!("{}: OK (1 upstream)", path.display()));
    toml::from_str::<toml::Table>(shown).unwrap();
}

/// Runs `serve --demo --no-auth` for a few seconds with stderr on a terminal
/// (`script` gives it a pty) and returns everything the terminal showed.
fn demo_on_a_terminal(data: &Path, no_color: bool) -> String {
    let serve = format!(
        "timeout -s INT 5 {} serve --demo --no-auth --listen 127.0.0.1:0 --data-dir {}",
        gateway_bin(),
        data.display()
    );
    let mut env = vec![("MCPGATE_LOG", "info")];
    if no_color {
        env.push(("NO_COLOR", "1"));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &serve, "/dev/null"])
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGATE_") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.envs(env).output().expect("run script(1) (util-linux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn demo_logs_carry_colours_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    // stderr to a file (the harness): log lines, and no escape byte.
    let mut gw = Gateway::start_demo(&dir.path().join("d1")).await;
    gw.stop().await;
    let log = gw.log_tail(200);
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );

    let tty = demo_on_a_terminal(&dir.path().join("d2"), false);
    assert!(tty.contains("INFO"), "{tty}");
    assert!(tty.contains("\u{1b}["), "no colours on a terminal:\n{tty}");

    let tty = demo_on_a_terminal(&dir.path().join("d3"), true);
    assert!(tty.contains("INFO"), "{tty}");
    assert!(!tty.contains('\u{1b}'), "colours despite NO_COLOR:\n{tty}");
}

#[tokio::test]
async fn demo_challenge_names_the_scopes_the_demo_uses() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_demo_with_auth(&dir.path().join("data")).await;
    for url in [format!("{}/mcp", gw.base), gw.mcp("demo")] {
        let r = Raw::new(&url)
            .post(None, &crate::harness::raw::initialize_request())
            .await;
        assert_eq!(r.status(), 401);
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            www.contains("scope=\"notes:read notes:write\""),
            "{url}: {www}"
        );
        assert!(www.contains("resource_metadata="), "{url}: {www}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn demo_tool_schemas_are_standard_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_demo(&dir.path().join("data")).await;
    let raw = Raw::new(&format!("{}/mcp", gw.base));
    let session = raw.initialize().await;
    let list = raw
        .call(&session, &request(json!(2), "tools/list", json!({})))
        .await;
    let tools = list["result"]["tools"].as_array().expect("tools").clone();
    let slow = tools
        .iter()
        .find(|t| t["name"] == "slow_count")
        .expect("slow_count is listed");
    assert_eq!(
        slow["inputSchema"]["properties"]["steps"]["type"], "integer",
        "{slow}"
    );
    for t in &tools {
        let text = t.to_string();
        assert!(
            !text.contains("\"format\""),
            "a non-standard format in {}: {text}",
            t["name"]
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn demo_restart_banner_names_the_data_dir_and_the_warning_is_only_for_an_open_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let warning = "readable by other users";
    let mut first = Gateway::start_demo_with_auth(&data).await;
    first.stop().await;
    assert!(
        !first.log_tail(200).contains(warning),
        "{}",
        first.log_tail(200)
    );

    let mut again = Gateway::start_demo_with_auth(&data).await;
    again.stop().await;
    let banner = again.stdout_lines().join("\n");
    assert!(!banner.contains("<data dir>"), "{banner}");
    let dir_arg = format!("--data-dir {}", data.display());
    assert!(
        banner.contains(&format!(
            "mcpgate keys create --name demo2 --scopes \"notes:read notes:write\" {dir_arg}"
        )),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("mcpgate users passwd admin {dir_arg}")),
        "{banner}"
    );
    assert!(
        !again.log_tail(200).contains(warning),
        "{}",
        again.log_tail(200)
    );

    // A directory others can read is still reported.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut open = Gateway::start_demo_with_auth(&data).await;
    open.stop().await;
    assert!(
        open.log_tail(200).contains(warning),
        "{}",
        open.log_tail(200)
    );
}
