//! `mcpgate login / call / token / status / logout` against mcpgate's own
//! authorization server, both as real processes on loopback. The person at the
//! browser is `tests/python/fake_browser.py` (standard library only): started
//! by the CLI through `$BROWSER` (which the `webbrowser` crate honours on
//! Linux), or by the test for `--manual` and `--device`; it signs in and
//! presses "Allow" on the server's real pages with one cookie jar.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "support/callback_port.rs"]
mod callback_port;

const BIN: &str = env!("CARGO_BIN_EXE_mcpgate");
const PASSWORD: &str = "correct horse battery";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python when `scripts/test` made one, else `python3` (the
/// script needs only the standard library).
fn python() -> String {
    let venv = repo().join("target/py-venv/bin/python");
    if venv.exists() {
        venv.canonicalize().unwrap().display().to_string()
    } else {
        "python3".into()
    }
}

fn fake_browser() -> String {
    repo()
        .join("tests/python/fake_browser.py")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// `$BROWSER` for the CLI: the webbrowser crate splits it on ':' (browsers)
/// and whitespace (arguments), so neither may appear in the paths.
fn browser_env() -> String {
    let (py, script) = (python(), fake_browser());
    for p in [&py, &script] {
        assert!(
            !p.contains(':') && !p.contains(char::is_whitespace),
            "{p}: $BROWSER cannot carry this path"
        );
    }
    format!("{py} {script}")
}

/// A running `mcpgate serve` with the authorization server on, and its data dir.
struct Server {
    child: Child,
    base: String,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "---- gateway log (last lines) ----\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Server {
    /// The protected MCP endpoint (the demo upstream).
    fn mcp(&self) -> String {
        format!("{}/mcp/demo", self.base)
    }
}

/// `mcpgate users add NAME --password-stdin --scopes SCOPES`.
fn add_user(data: &Path, name: &str, scopes: &str) {
    let mut child = Command::new(BIN)
        .args(["users", "add", name, "--password-stdin", "--scopes", scopes])
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the gateway with `[authserver]` on (plus `authserver_extra`), the
/// demo upstream over stdio and the users given.
fn server(authserver_extra: &str, users: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (name, scopes) in users {
        add_user(&data, name, scopes);
    }
    let notes = dir.path().join("notes");
    let cfg = demo_config(
        &format!("[authserver]\nenabled = true\n{authserver_extra}\n"),
        &notes,
    );
    serve(dir, data, &cfg, "127.0.0.1:0")
}

/// A configuration with auth required, `auth_extra` (more of `[auth]`, then
/// other tables), and the demo upstream over stdio keeping its notes in `notes`.
fn demo_config(auth_extra: &str, notes: &Path) -> String {
    format!(
        "[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"required\"\n{auth_extra}\n\n\
         [[upstream]]\nname = \"demo\"\ncommand = [{bin}, \"demo-server\", \"--data-dir\", {notes}]\n\
         isolation = \"session\"\n\
         tool_scopes = {{ \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }}\n",
        bin = serde_json::to_string(BIN).unwrap(),
        notes = serde_json::to_string(&notes.display().to_string()).unwrap(),
    )
}

/// `mcpgate serve` with `cfg` on `listen`, keeping its data in `data`.
fn serve(dir: tempfile::TempDir, data: PathBuf, cfg: &str, listen: &str) -> Server {
    let path = dir.path().join("mcpgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", listen])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    for (k, _) in std::env::vars() {
        if k.starts_with("MCPGATE_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the gateway did not print its address");
        if let Some(addr) = line.strip_prefix("mcpgate: listening on ") {
            break addr.trim().trim_end_matches('/').to_owned();
        }
    };
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let s = Server {
        child,
        base,
        data,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&format!("{}/healthz", s.base)).0 != 200 {
        assert!(Instant::now() < deadline, "/healthz never answered 200");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(url: &str) -> (u16, String) {
    rt().block_on(async {
        match reqwest::get(url).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    })
}

fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    rt().block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

/// The client side: one `MCPGATE_HOME`, `$BROWSER` set to the fake browser
/// signing in as `user`, whose steps are logged to `browser.log`.
struct Cli {
    home: tempfile::TempDir,
    user: String,
}

impl Cli {
    fn new(user: &str) -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
            user: user.to_owned(),
        }
    }

    fn state(&self) -> PathBuf {
        self.home.path().join("state")
    }

    fn browser_log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("browser.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("MCPGATE_HOME", self.state())
            .env("MCPGATE_TOKEN_STORE", "file")
            .env("BROWSER", browser_env())
            .env("FAKE_BROWSER_USER", &self.user)
            .env("FAKE_BROWSER_PASSWORD", PASSWORD)
            .env("FAKE_BROWSER_LOG", self.home.path().join("browser.log"))
            .env_remove("MCPGATE_CLIENT_SECRET")
            .env_remove("MCPGATE_MCP_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        c.envs(env.iter().copied());
        wait_output(c.spawn().unwrap(), Duration::from_secs(60))
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run_with(args, env);
        assert!(
            out.status.success(),
            "mcpgate {args:?} failed ({}): {}\nbrowser: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.browser_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    fn err(&self, args: &[&str]) -> (i32, String) {
        let out = self.run_with(args, &[]);
        assert!(
            !out.status.success(),
            "mcpgate {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn whoami(&self, url: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "call",
            url,
            "tools/call",
            r#"{"name":"whoami","arguments":{}}"#,
        ];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["structuredContent"]["subject"]
            .as_str()
            .unwrap_or_else(|| panic!("whoami: {out}"))
            .to_owned()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// The one stored sign-in record (files store).
    fn record(&self) -> serde_json::Value {
        let dir = self.state().join("sessions");
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap()
    }
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mcpgate did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the fake browser in the foreground; its stdout.
fn drive(args: &[&str], user: &str, log: &Path) -> String {
    let out = Command::new(python())
        .arg(fake_browser())
        .args(args)
        .env("FAKE_BROWSER_USER", user)
        .env("FAKE_BROWSER_PASSWORD", PASSWORD)
        .env("FAKE_BROWSER_LOG", log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fake browser {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A CLI process whose stderr lines arrive on a channel as they are printed.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Live {
    fn spawn(mut c: Command) -> Live {
        c.stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Live {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The first stderr line for which `pick` returns something.
    fn wait_for<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no such line; stderr so far: {:?}", self.seen));
            self.seen.push(line.clone());
            if let Some(t) = pick(&line) {
                return t;
            }
        }
    }

    fn finish(mut self) -> (bool, String) {
        drop(self.child.stdin.take());
        let out = wait_output(self.child, Duration::from_secs(60));
        let mut rest: Vec<String> = self.seen;
        rest.extend(self.lines.try_iter());
        rest.push(String::from_utf8_lossy(&out.stderr).into_owned());
        (out.status.success(), rest.join("\n"))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn scopes_of(status: &serde_json::Value) -> Vec<String> {
    status[0]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The real-user flow: `mcpgate login` opens the browser (the fake one,
/// through `$BROWSER`), which signs in, allows, and lands on the CLI's
/// 127.0.0.1 callback; `call` then acts as the signed-in user.
#[test]
fn browser_sign_in_through_the_loopback_callback() {
    let s = server("", &[("alice", "notes:read notes:write")]);
    let cli = Cli::new("alice");
    let out = cli.run_with(&["login", &s.mcp()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{err}\nbrowser: {}",
        cli.browser_log()
    );
    // The URL is printed as a fallback, and the sign-in is reported.
    assert!(err.contains(&format!("{}/authorize?", s.base)), "{err}");
    assert!(err.contains("Signed in to"), "{err}");
    let log = cli.browser_log();
    assert!(
        log.contains("POST ") && log.contains("/login -> 303"),
        "the browser signed in: {log}"
    );
    assert!(log.contains("/consent -> 303"), "and allowed: {log}");
    assert!(log.contains("callback 200"), "and reached the CLI: {log}");
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    let st = cli.status();
    assert_eq!(st[0]["issuer"], s.base.as_str());
    assert_eq!(st[0]["resource"], s.mcp().as_str());
    assert_eq!(st[0]["registration"], "dynamic");
    assert_eq!(st[0]["grant"], "authorization_code");
    let mut sc = scopes_of(&st);
    sc.sort();
    // offline_access too: the authorization server lists it (SEP-2207).
    assert_eq!(sc, ["notes:read", "notes:write", "offline_access"]);
    // Two app windows with no sign-in yet: `call` signs in first, and the two
    // processes share one sign-in (one browser tab, no fight over the port).
    let fresh = Cli::new("alice");
    let spawn = || {
        fresh
            .command(&[
                "call",
                &s.mcp(),
                "tools/call",
                r#"{"name":"whoami","arguments":{}}"#,
            ])
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for out in [
        wait_output(a, Duration::from_secs(60)),
        wait_output(b, Duration::from_secs(60)),
    ] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"subject\": \"alice\""));
    }
    assert_eq!(fresh.browser_log().matches("callback 200").count(), 1);
    // The person presses "Deny": the CLI says so and stores nothing.
    let denied = Cli::new("alice");
    let out = denied.run_with(&["login", &s.mcp()], &[("FAKE_BROWSER_DECISION", "deny")]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("access_denied"), "{e}");
    assert!(denied.ok(&["status"]).contains("No sign-ins"));
    // Our server wants a person: --non-interactive says so instead of hanging.
    let (code, e) = Cli::new("alice").err(&["login", &s.mcp(), "--non-interactive"]);
    assert_eq!(code, 3, "{e}");
    assert!(e.contains("needs a person"), "{e}");
}

/// `--manual` (SSH): the URL on stderr; the redirect URL the browser
/// landed on, pasted on stdin. A pasted URL with another `state` is refused.
#[test]
fn manual_paste_of_the_redirect_url() {
    let s = server("", &[("alice", "notes:read notes:write")]);
    let cli = Cli::new("alice");
    let paste = |mangle: bool| {
        let mut live = Live::spawn(cli.command(&["login", &s.mcp(), "--manual"]));
        let url = live.wait_for(|l| {
            let l = l.trim();
            l.starts_with(&format!("{}/authorize?", s.base))
                .then(|| l.to_owned())
        });
        live.wait_for(|l| l.contains("paste it here").then_some(()));
        let log = cli.home.path().join("manual.log");
        let mut redirect = drive(&["--print", &url], "alice", &log);
        assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
        assert!(redirect.contains("code="), "{redirect}");
        if mangle {
            redirect = redirect.replace("state=", "state=x");
        }
        let stdin = live.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{redirect}").unwrap();
        live.finish()
    };
    let (ok, err) = paste(true);
    assert!(!ok, "a wrong state must be refused: {err}");
    assert!(err.contains("state parameter does not match"), "{err}");
    let (ok, err) = paste(false);
    assert!(ok, "{err}");
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    // Out of band: the server shows the code on a page; the code is pasted.
    // Only a client an administrator registered may use it.
    let oob_client = clients_add(
        &s,
        &["terminal", "--redirect-uri", "urn:ietf:wg:oauth:2.0:oob"],
    );
    let oob = Cli::new("alice");
    let mut live = Live::spawn(oob.command(&[
        "login",
        &s.mcp(),
        "--manual",
        "--redirect-uri",
        "urn:ietf:wg:oauth:2.0:oob",
        "--client-id",
        &oob_client,
    ]));
    let url = live.wait_for(|l| {
        let l = l.trim();
        l.starts_with(&format!("{}/authorize?", s.base))
            .then(|| l.to_owned())
    });
    live.wait_for(|l| l.contains("paste the code").then_some(()));
    let code = drive(
        &["--print", &url],
        "alice",
        &oob.home.path().join("oob.log"),
    );
    assert!(!code.is_empty() && !code.contains(' '), "{code}");
    writeln!(live.child.stdin.as_mut().unwrap(), "{code}").unwrap();
    let (ok, err) = live.finish();
    assert!(ok, "{err}");
    assert_eq!(oob.whoami(&s.mcp(), &[]), "alice");
    // Nothing opened a browser.
    assert_eq!(cli.browser_log(), "");
    assert_eq!(oob.browser_log(), "");
}

/// `--device` (RFC 8628): the verification URI and user code on stderr;
/// the person approves at /device; the CLI's polling gets the tokens.
#[test]
fn device_authorization_approved_at_slash_device() {
    let s = server("", &[("alice", "notes:read notes:write")]);
    let cli = Cli::new("alice");
    let mut live = Live::spawn(cli.command(&["login", &s.mcp(), "--device"]));
    let (uri, code) = live.wait_for(|l| {
        let rest = l.strip_prefix("To sign in, visit ")?;
        let (uri, code) = rest.split_once(" and enter the code ")?;
        Some((uri.to_owned(), code.trim().to_owned()))
    });
    assert_eq!(uri, format!("{}/device", s.base));
    drive(
        &["--device", &uri, &code],
        "alice",
        &cli.home.path().join("device.log"),
    );
    let (ok, err) = live.finish();
    assert!(ok, "{err}");
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    assert_eq!(cli.status()[0]["grant"], "device_code");
    assert_eq!(cli.browser_log(), "");
}

/// A one-document HTTP server on 127.0.0.1 (the CIMD host); counts requests.
fn serve_document(body_for: impl Fn(u16) -> String + Send + 'static) -> (u16, mpsc::Receiver<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let body = body_for(port);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tx.send(());
        }
    });
    (port, rx)
}

/// A client ID metadata document (CIMD) on a local host the server allows.
#[test]
fn client_id_metadata_document() {
    let (port, fetched) = serve_document(|port| {
        serde_json::json!({
            "client_id": format!("http://127.0.0.1:{port}/mcpgate-client.json"),
            "client_name": "mcpgate CLI (CIMD)",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        })
        .to_string()
    });
    let s = server(
        &format!("\n[authserver.cimd]\nallow_hosts = [\"127.0.0.1:{port}\"]\n"),
        &[("alice", "notes:read notes:write")],
    );
    let cli = Cli::new("alice");
    let client_id = format!("http://127.0.0.1:{port}/mcpgate-client.json");
    cli.ok(&["login", &s.mcp(), "--client-metadata-url", &client_id]);
    assert!(
        fetched.try_iter().count() >= 1,
        "the server fetched the document"
    );
    let st = cli.status();
    assert_eq!(st[0]["client_id"], client_id.as_str());
    assert_eq!(st[0]["registration"], "cimd");
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    // Nothing was registered dynamically.
    assert!(
        !cli.state().join("registrations").exists()
            || std::fs::read_dir(cli.state().join("registrations"))
                .unwrap()
                .count()
                == 0
    );
    // The refresh authenticates as the CIMD client too.
    let before = cli.ok(&["token", &s.mcp()]);
    let after = cli.ok(&["token", &s.mcp(), "--refresh-margin", "7200"]);
    assert_ne!(before, after);
}

/// `mcpgate clients add …` on the server's data dir; its stdout (a
/// confidential client's secret).
fn clients_add(s: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["clients", "add"])
        .args(args)
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `--grant client_credentials` with a confidential client pre-registered
/// with `mcpgate clients add`, and with one registered dynamically.
#[test]
fn client_credentials_preregistered_and_dynamic() {
    let s = server("", &[]);
    let secret = clients_add(
        &s,
        &[
            "ci robot",
            "--confidential",
            "--client-id",
            "ci-robot",
            "--grant-type",
            "client_credentials",
            "--scope",
            "notes:read",
        ],
    );
    assert!(secret.len() >= 20, "{secret:?}");
    let mcp = s.mcp();
    let cli = Cli::new("nobody");
    let env = [("MCPGATE_CLIENT_SECRET", secret.as_str())];
    let flags = ["--grant", "client_credentials", "--client-id", "ci-robot"];
    let mut args = vec![
        "call",
        &mcp,
        "tools/call",
        r#"{"name":"whoami","arguments":{}}"#,
    ];
    args.extend_from_slice(&flags);
    let out = cli.ok_with(&args, &env);
    assert!(out.contains("ci-robot"), "{out}");
    let st = cli.status();
    assert_eq!(st[0]["grant"], "client_credentials");
    assert_eq!(st[0]["registration"], "preregistered");
    assert_eq!(scopes_of(&st), ["notes:read"]);
    // Renewed without a person (no refresh token: a new client_credentials grant).
    let t1 = cli.ok_with(&["token", &s.mcp()], &env);
    let mut a = vec!["token", &mcp, "--refresh-margin", "7200"];
    a.extend_from_slice(&flags);
    let t2 = cli.ok_with(&a, &env);
    assert_ne!(t1, t2);
    // A wrong secret is refused with the server's answer.
    let fresh = Cli::new("nobody");
    let mut a = vec!["login", &mcp];
    a.extend_from_slice(&flags);
    let out = fresh.run_with(&a, &[("MCPGATE_CLIENT_SECRET", "wrong-secret-0123456789")]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("invalid_client"), "{e}");
    // Dynamic registration of a confidential client for client_credentials.
    let dcr = Cli::new("nobody");
    dcr.ok(&["login", &s.mcp(), "--grant", "client_credentials"]);
    let st = dcr.status();
    assert_eq!(st[0]["registration"], "dynamic");
    assert_eq!(st[0]["grant"], "client_credentials");
    assert_eq!(dcr.browser_log(), "");
}

/// The server forgot the client (`mcpgate clients remove`): the next
/// renewal registers again — silently for a machine client, with one new
/// browser sign-in for a person.
#[test]
fn registers_again_when_the_server_forgot_the_client() {
    let s = server("", &[("alice", "notes:read notes:write")]);
    let remove = |id: &str| {
        let out = Command::new(BIN)
            .args(["clients", "remove", id, "--data-dir"])
            .arg(&s.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A person's sign-in.
    let cli = Cli::new("alice");
    cli.ok(&["login", &s.mcp()]);
    let old = cli.status()[0]["client_id"].as_str().unwrap().to_owned();
    // The registration keeps its RFC 7592 address and token (for the check below).
    let regs: Vec<_> = std::fs::read_dir(cli.state().join("registrations"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        regs.iter()
            .any(|r| r.contains("registration_client_uri")
                && r.contains("registration_access_token")),
        "{regs:?}"
    );
    remove(&old);
    // `token` may not open a browser: it says what to run.
    let (code, e) = cli.err(&["token", &s.mcp(), "--refresh-margin", "7200"]);
    assert_eq!(code, 3, "{e}");
    assert!(e.contains("mcpgate login"), "{e}");
    // `call` registers again and signs in again.
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    let new = cli.status()[0]["client_id"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert_eq!(cli.browser_log().matches("callback 200").count(), 2);
    // Signed out, the client forgotten meanwhile (e.g. expired unused): the
    // next `login` asks the server (RFC 7592) before opening the browser,
    // registers again, and the person never sees "unknown application".
    cli.ok(&["logout", &s.mcp()]);
    remove(&new);
    cli.ok(&["login", &s.mcp()]);
    let newest = cli.status()[0]["client_id"].as_str().unwrap().to_owned();
    assert_ne!(new, newest);
    assert_eq!(cli.browser_log().matches("callback 200").count(), 3);
    assert!(
        !cli.browser_log().contains("unexpected 400"),
        "{}",
        cli.browser_log()
    );
    // A machine: registered again and a new token, no person.
    let m = Cli::new("nobody");
    m.ok(&["login", &s.mcp(), "--grant", "client_credentials"]);
    let old = m.status()[0]["client_id"].as_str().unwrap().to_owned();
    remove(&old);
    std::thread::sleep(Duration::from_millis(1500));
    let out = m.ok(&[
        "call",
        &s.mcp(),
        "tools/list",
        "--grant",
        "client_credentials",
    ]);
    assert!(out.contains("whoami"), "{out}");
    let new = m.status()[0]["client_id"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    // `token` renews a machine's sign-in too: no person is needed.
    remove(&new);
    let t = m.ok(&[
        "token",
        &s.mcp(),
        "--grant",
        "client_credentials",
        "--refresh-margin",
        "7200",
    ]);
    assert!(!t.trim().is_empty());
    let newer = m.status()[0]["client_id"].as_str().unwrap().to_owned();
    assert_ne!(new, newer);
    assert_eq!(m.browser_log(), "");
}

/// Refresh: silent after expiry (no browser), once across two processes
/// (the server rotates refresh tokens with reuse detection), a restart keeps
/// the absolute expiry, `status`, and `logout` revokes.
#[test]
fn refresh_concurrency_restart_status_and_logout() {
    let s = server(
        "access_token_ttl = \"6s\"",
        &[("alice", "notes:read notes:write")],
    );
    let cli = Cli::new("alice");
    cli.ok(&["login", &s.mcp()]);
    let rec = cli.record();
    let expires = rec["tokens"]["expires_at"].as_u64().unwrap();
    // A restart (a new process) keeps the absolute expiry: same token, no refresh.
    let t1 = cli.ok(&["token", &s.mcp(), "--refresh-margin", "0"]);
    let t2 = cli.ok(&["token", &s.mcp(), "--refresh-margin", "0"]);
    assert!(
        now_secs() < expires,
        "the machine is too slow for a 6 s token"
    );
    assert_eq!(t1, t2);
    assert_eq!(cli.record()["tokens"]["expires_at"].as_u64(), Some(expires));
    let st = cli.status();
    assert_eq!(st[0]["expires_at"].as_u64(), Some(expires));
    assert_eq!(st[0]["has_refresh_token"], true);
    let text = cli.ok(&["status"]);
    assert!(
        text.contains("expires:") && text.contains("refresh:  yes"),
        "{text}"
    );
    assert!(!text.contains(t1.trim()), "status never shows a token");
    // After expiry two processes need a token at once: the refresh is silent
    // (no browser) and made once (same new token for both: had each refreshed,
    // each would print its own); the rotated refresh token is stored.
    while now_secs() <= expires {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt_before = cli.record()["tokens"]["refresh_token"].clone();
    let spawn = || {
        cli.command(&["token", &s.mcp(), "--refresh-margin", "1"])
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        wait_output(a, Duration::from_secs(60)),
        wait_output(b, Duration::from_secs(60)),
    );
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout)
    );
    assert_ne!(String::from_utf8_lossy(&a.stdout), t1);
    let rec = cli.record();
    assert_ne!(rec["tokens"]["refresh_token"], rt_before);
    assert!(rec["tokens"]["expires_at"].as_u64().unwrap() > expires);
    assert_eq!(cli.browser_log().matches("callback 200").count(), 1);
    // The grant survived (no reuse detection fired): the new token works.
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    // Refreshing again with the rotated token still works.
    let t4 = cli.ok(&["token", &s.mcp(), "--refresh-margin", "7200"]);
    assert_ne!(String::from_utf8_lossy(&a.stdout), t4);
    assert_eq!(cli.browser_log().matches("callback 200").count(), 1);
    // Logout revokes at the server: the refresh token it held is dead there.
    let rec = cli.record();
    let refresh = rec["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    let client_id = rec["registration"]["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = cli.run_with(&["logout", &s.mcp()], &[]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && e.contains("Revoked and forgot"),
        "{e}"
    );
    assert!(cli.ok(&["status"]).contains("No sign-ins"));
    let (status, body) = post_form(
        &format!("{}/token", s.base),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_grant"), "{body}");
    let (code, e) = cli.err(&["token", &s.mcp()]);
    assert_eq!(code, 3, "{e}");
}

/// Step-up: a user holding only `notes:read` calls a `notes:write` tool.
/// The gateway answers 403 `insufficient_scope`; the CLI re-authorizes once
/// for held ∪ required, the server can grant only what the user holds, and
/// the CLI stops with a clear error. When the user gains the scope, the same
/// call steps up and succeeds.
#[test]
fn step_up_on_insufficient_scope() {
    let s = server("", &[("bob", "notes:read")]);
    let mcp = s.mcp();
    let cli = Cli::new("bob");
    cli.ok(&["login", &s.mcp()]);
    assert_eq!(scopes_of(&cli.status()), ["notes:read", "offline_access"]);
    let create = [
        "call",
        &mcp,
        "tools/call",
        r#"{"name":"create_secure_note","arguments":{"title":"t","content":"step-up"}}"#,
    ];
    let out = cli.run_with(&create, &[]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a person must act: {e}");
    assert!(
        e.contains("signing in again for: notes:read offline_access notes:write"),
        "{e}"
    );
    assert!(
        e.contains("403 insufficient_scope (it needs: notes:write)") && e.contains("did not grant"),
        "{e}"
    );
    // One re-authorization (a second browser sign-in), not a loop.
    assert_eq!(cli.browser_log().matches("callback 200").count(), 2, "{e}");
    // Listing still works with what is held (and hides create_note).
    let out = cli.ok(&["call", &s.mcp(), "tools/list"]);
    assert!(
        out.contains("whoami") && !out.contains("create_secure_note"),
        "{out}"
    );
    // The administrator gives bob notes:write (`mcpgate users` cannot change
    // scopes, so: remove and add again). The same call now steps up once and succeeds.
    let out = Command::new(BIN)
        .args(["users", "remove", "bob", "--data-dir"])
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(out.status.success());
    add_user(&s.data, "bob", "notes:read notes:write");
    let out = cli.ok(&create);
    assert!(
        out.contains("step-up") && !out.contains("\"isError\": true"),
        "{out}"
    );
    let mut sc = scopes_of(&cli.status());
    sc.sort();
    assert_eq!(sc, ["notes:read", "notes:write", "offline_access"]);
    assert_eq!(cli.browser_log().matches("callback 200").count(), 3);
    assert_eq!(cli.whoami(&s.mcp(), &[]), "bob");
}

/// An `mcp_config.json` naming the server, with an `auth` block for a
/// client pre-registered with `mcpgate clients add` (endpoints given, so the
/// authorization server is not discovered).
#[test]
fn mcp_config_auth_block_with_a_preregistered_client() {
    let s = server("", &[("alice", "notes:read notes:write")]);
    let port = callback_port::callback_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    clients_add(
        &s,
        &[
            "config client",
            "--public",
            "--client-id",
            "cfg-cli",
            "--redirect-uri",
            &redirect,
        ],
    );
    let cli = Cli::new("alice");
    let cfg = cli.home.path().join("mcp_config.json");
    std::fs::write(
        &cfg,
        serde_json::json!({"mcpServers": {"notes": {
            "url": s.mcp(),
            "auth": {
                "authorization_url": format!("{}/authorize", s.base),
                "token_url": format!("{}/token", s.base),
                "client_id": "cfg-cli",
                "scope": "notes:read",
                "redirect_uri": redirect,
            }
        }}})
        .to_string(),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    assert_eq!(cli.whoami("notes", &["--mcp-config", cfg]), "alice");
    let st = cli.status();
    assert_eq!(st[0]["client_id"], "cfg-cli");
    assert_eq!(st[0]["registration"], "preregistered");
    assert_eq!(st[0]["resource"], s.mcp().as_str());
    assert_eq!(scopes_of(&st), ["notes:read"]);
    let log = cli.browser_log();
    assert!(log.contains("callback 200"), "{log}");
    // The refresh uses the config's token URL.
    let t1 = cli.ok(&["token", "notes", "--mcp-config", cfg]);
    let t2 = cli.ok(&[
        "token",
        "notes",
        "--mcp-config",
        cfg,
        "--refresh-margin",
        "7200",
    ]);
    assert_ne!(t1, t2);
    // A typo in the auth block is an error that names it.
    std::fs::write(
        cli.home.path().join("bad.json"),
        r#"{"mcpServers":{"notes":{"url":"http://127.0.0.1:1/mcp","auth":{"clientid":"x"}}}}"#,
    )
    .unwrap();
    let bad = cli.home.path().join("bad.json");
    let (code, e) = cli.err(&["token", "notes", "--mcp-config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("clientid"), "{e}");
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released): the
/// resource server's URL must be known before it starts, to register it.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// mcpgate as the authorization server of another gateway (docs/AUTHSERVER.md,
/// "Standalone authorization server"): `as` issues tokens for the registered
/// resource `rs`, a guard-only gateway that checks them by introspection with
/// its own credentials. `mcpgate login` to `rs` goes through `as`, and a tool
/// call succeeds; the token for `rs` is refused at `as`'s own endpoint.
#[test]
fn standalone_authorization_server_for_an_introspecting_gateway() {
    let as_dir = tempfile::tempdir().unwrap();
    let as_data = as_dir.path().join("data");
    add_user(&as_data, "alice", "notes:read notes:write");
    let rs_port = free_port();
    let rs_mcp = format!("http://127.0.0.1:{rs_port}/mcp");
    let out = Command::new(BIN)
        .args([
            "resources",
            "add",
            &rs_mcp,
            "--name",
            "Team notes",
            "--scopes",
            "notes:read notes:write",
            "--client-id",
            "notes-rs",
        ])
        .arg("--data-dir")
        .arg(&as_data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    let listed = Command::new(BIN)
        .args(["resources", "list", "--data-dir"])
        .arg(&as_data)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&rs_mcp) && listed.contains("notes-rs"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "never a secret: {listed}");

    let as_cfg = demo_config(
        "\n[authserver]\nenabled = true\n",
        &as_dir.path().join("notes"),
    );
    let a = serve(as_dir, as_data, &as_cfg, "127.0.0.1:0");

    let rs_dir = tempfile::tempdir().unwrap();
    let rs_data = rs_dir.path().join("data");
    let rs_cfg = demo_config(
        &format!(
            "authorization_servers = [{issuer}]\n\n\
             [auth.introspection]\nendpoint = {endpoint}\nclient_id = \"notes-rs\"\n\
             client_secret = {secret}\naudience = {aud}\n",
            issuer = serde_json::to_string(&a.base).unwrap(),
            endpoint = serde_json::to_string(&format!("{}/introspect", a.base)).unwrap(),
            secret = serde_json::to_string(&secret).unwrap(),
            aud = serde_json::to_string(&rs_mcp).unwrap(),
        ),
        &rs_dir.path().join("notes"),
    );
    let rs = serve(rs_dir, rs_data, &rs_cfg, &format!("127.0.0.1:{rs_port}"));
    assert_eq!(rs.base, format!("http://127.0.0.1:{rs_port}"));
    // Its protected-resource metadata names the authorization server.
    let (status, prm) = get(&format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        rs.base
    ));
    assert_eq!(status, 200, "{prm}");
    let prm: serde_json::Value = serde_json::from_str(&prm).unwrap();
    assert_eq!(prm["authorization_servers"], serde_json::json!([a.base]));
    assert_eq!(prm["resource"], rs_mcp.as_str());

    let cli = Cli::new("alice");
    let out = cli.run_with(&["login", &rs_mcp], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{err}\nbrowser: {}",
        cli.browser_log()
    );
    assert!(err.contains(&format!("{}/authorize?", a.base)), "{err}");
    assert_eq!(cli.whoami(&rs_mcp, &[]), "alice");
    let st = cli.status();
    assert_eq!(st[0]["issuer"], a.base.as_str());
    assert_eq!(st[0]["resource"], rs_mcp.as_str());

    // The token for the resource server is no key to the authorization server's own endpoints.
    let token = cli.ok(&["token", &rs_mcp]).trim().to_owned();
    let refused = rt().block_on(async {
        reqwest::Client::new()
            .post(a.mcp())
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}
            }))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(refused.status().as_u16(), 401);
    let www = refused
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        www.contains(&format!("Token audience does not include {}", a.mcp())),
        "{www}"
    );
}

#[test]
fn dpop_sign_in_binds_the_tokens_and_every_call_proves_possession() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "notes:read notes:write");
    let notes = dir.path().join("notes");
    // Nonces on at /token, and an upstream that takes DPoP-bound tokens only,
    // with its own nonces: every new process meets `use_dpop_nonce` there first.
    let cfg = format!(
        "{}dpop = \"required\"\ndpop_nonce = true\n",
        demo_config("[authserver]\nenabled = true\ndpop_nonce = true\n", &notes)
    );
    let s = serve(dir, data, &cfg, "127.0.0.1:0");

    // A Bearer sign-in is refused there, with the reason.
    let plain = Cli::new("alice");
    plain.ok(&["login", &s.mcp()]);
    let (_, err) = plain.err(&[
        "call",
        &s.mcp(),
        "tools/call",
        r#"{"name":"whoami","arguments":{}}"#,
    ]);
    assert!(err.contains("401"), "{err}");

    let cli = Cli::new("alice");
    cli.ok(&["login", &s.mcp(), "--dpop"]);
    let rec = cli.record();
    let key = rec["tokens"]["dpop_key"]
        .as_str()
        .expect("the key is stored with the tokens");
    assert_eq!(cli.whoami(&s.mcp(), &[]), "alice");
    // A refresh (forced by the margin) proves possession too, and keeps the key.
    assert_eq!(
        cli.whoami(&s.mcp(), &["--refresh-margin", "100000"]),
        "alice"
    );
    assert_eq!(cli.record()["tokens"]["dpop_key"].as_str(), Some(key));
    // The stdio bridge proves possession on each request too.
    let mut bridge = cli.command(&["bridge", &s.mcp()]);
    bridge.stdin(Stdio::piped());
    let mut child = bridge.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
    writeln!(stdin, "{init}").unwrap();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"result\""), "{first}");
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"whoami","arguments":{{}}}}}}"#
    )
    .unwrap();
    let answer = lines.next().unwrap().unwrap();
    assert!(answer.contains("alice"), "{answer}");
    drop(stdin);
    let _ = wait_output(child, Duration::from_secs(30));
    let log = std::fs::read_to_string(s.dir.path().join("gateway.log")).unwrap();
    assert!(log.contains("POST /token 200"), "{log}");
    assert!(
        log.contains("DPoP refused path=\"/mcp/demo\" error=\"use_dpop_nonce\""),
        "the gateway asked for its nonce and the client came back with it: {log}"
    );
    assert!(!log.contains(key), "the key never reaches a log");
}
