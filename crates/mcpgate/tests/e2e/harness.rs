//! The harness: the gateway and its upstreams as real processes on loopback,
//! each in a temporary directory, stopped with SIGTERM (then SIGKILL) on drop.
//! A failing test prints the tail of every process's log.

pub(crate) mod client;
pub(crate) mod raw;
pub(crate) mod store;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_mcpgate");

/// The gateway binary the harness starts: `MCPGATE_TEST_BIN` when set (to run
/// a test against an older build and watch it fail), else [`BIN`].
pub(crate) fn gateway_bin() -> String {
    std::env::var("MCPGATE_TEST_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// `MCPGATE_TEST_WORKER_THREADS=N` runs every gateway the harness starts with
/// `server.worker_threads = N` (1: the current-thread runtime), so whole
/// modules can be run on the runtime replicas sharing cores use.
fn runtime_threads(cmd: &mut Command) {
    if let Ok(n) = std::env::var("MCPGATE_TEST_WORKER_THREADS") {
        cmd.env("MCPGATE_SERVER__WORKER_THREADS", n);
    }
}

/// How long a process gets to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process with its log file; stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
    /// Every line the process printed on stdout so far.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` (stderr to `log`, stdout drained) and waits for a stdout
    /// line containing `marker`, which it returns.
    pub(crate) async fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        marker: &str,
    ) -> (Proc, String) {
        let stderr = std::fs::File::create(log).expect("create the log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let marker_owned = marker.to_owned();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep draining after the marker, so the process never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                seen.lock().expect("lock").push(line.clone());
                if line.contains(&marker_owned)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });
        let mut proc = Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            status: None,
            stdout: lines,
        };
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(line)) => (proc, line),
            Ok(Err(_)) => {
                let status = proc.child.wait().ok();
                proc.status = status;
                panic!(
                    "{name} exited ({status:?}) without printing {marker:?}; its log:\n{}",
                    proc.log_tail(80)
                )
            }
            Err(_) => panic!(
                "{name} did not print {marker:?} within {START_TIMEOUT:?}; its log:\n{}",
                proc.log_tail(80)
            ),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed on stdout so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().expect("lock").clone()
    }

    /// The last `n` lines of the process's stderr.
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub(crate) async fn terminate(&mut self, within: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?} of SIGTERM; its log:\n{}",
                self.name,
                self.log_tail(80)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log (last 60 lines) ----\n{}\n---- end of {} log ----",
                self.name,
                self.log_tail(60),
                self.name
            );
        }
        self.stop_now();
    }
}

impl Proc {
    /// SIGTERM, then SIGKILL after 5 s; nothing when it already exited.
    fn stop_now(&mut self) {
        if self.status.is_some() {
            return;
        }
        signal(self.pid(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }
}

pub(crate) fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// A running `mcpgate serve`.
pub(crate) struct Gateway {
    proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// `--data-dir` (API keys, users, the identity-token key).
    data: PathBuf,
    _dir: TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // A data directory of the gateway's own goes with it, and so does its
        // database (on PostgreSQL runs); a test's own data directory may be reused.
        if self.data.starts_with(self._dir.path()) {
            self.proc.stop_now();
            store::drop_for(&self.data);
        }
    }
}

impl Gateway {
    /// `mcpgate serve --config <config> --listen 127.0.0.1:0` with a fresh data dir.
    pub(crate) async fn start(config: &str) -> Gateway {
        Gateway::start_listening(config, "127.0.0.1:0").await
    }

    /// Like [`Gateway::start`], with extra environment variables for the gateway process.
    pub(crate) async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mcpgate.toml");
        std::fs::write(&path, config).expect("write the config");
        let data = dir.path().join("data");
        let args = [
            "--config".to_owned(),
            path.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        Gateway::launch_with_env(dir, &args, "127.0.0.1:0", data, env).await
    }

    /// Like [`Gateway::start_with_env`], on `listen`.
    pub(crate) async fn start_listening_with_env(
        config: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mcpgate.toml");
        std::fs::write(&path, config).expect("write the config");
        let data = dir.path().join("data");
        let args = [
            "--config".to_owned(),
            path.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        Gateway::launch_with_env(dir, &args, listen, data, env).await
    }

    /// Like [`Gateway::start`], on `listen` (a fixed port makes the public URL
    /// known before the start, e.g. for a JWT audience).
    pub(crate) async fn start_listening(config: &str, listen: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mcpgate.toml");
        std::fs::write(&path, config).expect("write the config");
        let data = dir.path().join("data");
        let args = [
            "--config".to_owned(),
            path.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        Gateway::launch(dir, &args, listen, data).await
    }

    /// `mcpgate serve --demo --no-auth --data-dir <data_dir> --listen 127.0.0.1:0`.
    pub(crate) async fn start_demo(data_dir: &Path) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = [
            "--demo".to_owned(),
            "--no-auth".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        Gateway::launch(dir, &args, "127.0.0.1:0", data_dir.to_owned()).await
    }

    /// `mcpgate serve --demo --data-dir <data_dir> --listen 127.0.0.1:0`: API keys required.
    pub(crate) async fn start_demo_with_auth(data_dir: &Path) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = [
            "--demo".to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        Gateway::launch(dir, &args, "127.0.0.1:0", data_dir.to_owned()).await
    }

    async fn launch(dir: TempDir, args: &[String], listen: &str, data: PathBuf) -> Gateway {
        Gateway::launch_with_env(dir, args, listen, data, &[]).await
    }

    async fn launch_with_env(
        dir: TempDir,
        args: &[String],
        listen: &str,
        data: PathBuf,
        env: &[(&str, &str)],
    ) -> Gateway {
        let mut cmd = Command::new(gateway_bin());
        cmd.arg("serve")
            .args(args)
            .args(["--listen", listen])
            .current_dir(dir.path());
        // The test's own environment must not configure the gateway or the demo.
        for (k, _) in std::env::vars() {
            if k.starts_with("MCPGATE_") {
                cmd.env_remove(k);
            }
        }
        store::apply(&mut cmd, &data);
        runtime_threads(&mut cmd);
        cmd.envs(env.iter().copied());
        let (proc, line) = Proc::spawn(
            "gateway",
            cmd,
            &dir.path().join("gateway.log"),
            "mcpgate: listening on ",
        )
        .await;
        let base = line
            .split("listening on ")
            .nth(1)
            .expect("an address after 'listening on'")
            .trim()
            .trim_end_matches('/')
            .to_owned();
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "the gateway should listen on loopback: {line}"
        );
        let gw = Gateway {
            proc,
            base,
            data,
            _dir: dir,
        };
        gw.wait_healthy().await;
        gw
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/healthz never answered 200; gateway log:\n{}",
                self.proc.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The MCP endpoint of upstream `name`.
    pub(crate) fn mcp(&self, name: &str) -> String {
        format!("{}/mcp/{name}", self.base)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub(crate) fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }

    /// Every line the gateway printed on stdout so far.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.proc.stdout_lines()
    }

    /// The configuration file it was started with (`--config`).
    pub(crate) fn config_path(&self) -> PathBuf {
        self._dir.path().join("mcpgate.toml")
    }

    /// The gateway's data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `/readyz` as JSON.
    pub(crate) async fn readyz(&self) -> Value {
        let r = reqwest::get(format!("{}/readyz", self.base))
            .await
            .expect("GET /readyz");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        r.json().await.expect("/readyz is JSON")
    }

    /// SIGTERM, and the exit status (the gateway must exit within 20 s).
    pub(crate) async fn stop(&mut self) -> ExitStatus {
        self.proc.terminate(Duration::from_secs(20)).await
    }
}

/// A `mcpgate demo-server --http 127.0.0.1:0` with its own data dir.
pub(crate) struct DemoHttp {
    _proc: Proc,
    /// `http://127.0.0.1:PORT/mcp`.
    pub(crate) url: String,
    _dir: TempDir,
}

impl DemoHttp {
    pub(crate) async fn start() -> DemoHttp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(BIN);
        cmd.args(["demo-server", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env_remove("MCPGATE_SUBJECT")
            .env_remove("MCPGATE_DEMO_DATA_DIR");
        let (proc, line) = Proc::spawn(
            "demo-server --http",
            cmd,
            &dir.path().join("demo.log"),
            "listening on ",
        )
        .await;
        let url = line
            .split("listening on ")
            .nth(1)
            .expect("a URL after 'listening on'")
            .trim()
            .to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
            "{line}"
        );
        DemoHttp {
            _proc: proc,
            url,
            _dir: dir,
        }
    }
}

/// A TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `[[upstream]]` for the demo over stdio, keeping its notes in `data_dir`.
pub(crate) fn demo_stdio_upstream(name: &str, data_dir: &Path, extra: &str) -> String {
    format!(
        "[[upstream]]\nname = {}\ncommand = [{}, \"demo-server\", \"--data-dir\", {}]\n{extra}\n",
        toml_str(name),
        toml_str(BIN),
        toml_str(&data_dir.display().to_string()),
    )
}

/// A gateway configuration: auth disabled, a generous request timeout, then `upstreams`.
pub(crate) fn config(upstreams: &str) -> String {
    format!("[server]\nrequest_timeout = \"30s\"\n\n[auth]\nmode = \"disabled\"\n\n{upstreams}")
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

/// Direct children of `pid` that are still running (from /proc).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, ppid)) = stat(p)
            && ppid == pid
            && state != 'Z'
        {
            out.push(p);
        }
    }
    out.sort_unstable();
    out
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// (state, parent pid) from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Polls `cond` every 50 ms until it holds, panicking with `what` after `within`.
pub(crate) async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Gateway {
    /// `mcpgate serve --config <config> --listen <listen>` on an existing data
    /// directory: a restart keeps the port (so the public URL and issuer) and the data.
    pub(crate) async fn start_with_data(config: &str, listen: &str, data: &Path) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mcpgate.toml");
        std::fs::write(&path, config).expect("write the config");
        let args = [
            "--config".to_owned(),
            path.display().to_string(),
            "--data-dir".to_owned(),
            data.display().to_string(),
        ];
        Gateway::launch(dir, &args, listen, data.to_owned()).await
    }
}
