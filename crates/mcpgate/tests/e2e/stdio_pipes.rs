//! The two commands an MCP client starts with pipes for stdin and stdout, the
//! demo server and the bridge, read and write those pipes on the I/O reactor:
//! each holds its own non-blocking descriptions of both pipes, and its own
//! descriptors 0 and 1 stay blocking (a child it starts inherits them as they
//! were). With `tokio::io::stdin()` every read and write was handed to a
//! blocking thread, which made a shared stdio child slower than an HTTP
//! upstream (issue 17).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::raw::initialize_request;
use crate::harness::{BIN, Gateway};

/// `O_NONBLOCK` in `/proc/PID/fdinfo`'s octal `flags`.
const O_NONBLOCK: u32 = 0o4000;

/// `pipe:[inode]` and the open flags of each of `pid`'s descriptors.
fn descriptors(pid: u32) -> Vec<(u32, String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the process's fds")
        .flatten()
    {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .expect("fdinfo has flags");
        out.push((fd, target.display().to_string(), flags));
    }
    out
}

/// Asserts that `pid` reads its stdin pipe and writes its stdout pipe through
/// descriptions of their own in non-blocking mode, and left 0 and 1 blocking.
fn assert_reads_pipes_without_blocking(pid: u32, what: &str) {
    let fds = descriptors(pid);
    for std_fd in [0, 1] {
        let (_, pipe, flags) = fds
            .iter()
            .find(|(fd, _, _)| *fd == std_fd)
            .unwrap_or_else(|| panic!("{what}: no descriptor {std_fd}: {fds:?}"));
        assert!(pipe.starts_with("pipe:"), "{what}: fd {std_fd} is {pipe}");
        assert_eq!(
            flags & O_NONBLOCK,
            0,
            "{what}: fd {std_fd} was switched to non-blocking, which its children would inherit"
        );
        assert!(
            fds.iter()
                .any(|(fd, p, f)| *fd > 2 && p == pipe && f & O_NONBLOCK != 0),
            "{what}: no non-blocking description of the pipe on fd {std_fd} ({pipe}): {fds:?}"
        );
    }
}

/// Sends `initialize` on `child`'s stdin and returns the first line it answers.
fn initialize(child: &mut Child) -> Value {
    let stdin = child.stdin.as_mut().expect("piped stdin");
    writeln!(stdin, "{}", initialize_request()).expect("write initialize");
    stdin.flush().expect("flush");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the answer");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

fn spawn(args: &[&str], home: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env("MCPGATE_HOME", home)
        .env("MCPGATE_TOKEN_STORE", "file")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcpgate")
}

#[test]
fn the_demo_server_reads_its_stdio_pipes_on_the_reactor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut demo = spawn(
        &["demo-server", "--data-dir", &data.display().to_string()],
        tmp.path(),
    );
    let answer = initialize(&mut demo);
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    assert_reads_pipes_without_blocking(demo.id(), "demo-server");
    // Closing stdin ends the session, and the process with it.
    drop(demo.stdin.take());
    let status = demo.wait().expect("wait for the demo server");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reads_its_stdio_pipes_on_the_reactor() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_demo(&tmp.path().join("data")).await;
    let url = gw.mcp("demo");
    let home = tmp.path().join("client");
    let (answer, pid, status) = tokio::task::spawn_blocking(move || {
        let mut bridge = spawn(&["bridge", &url], &home);
        let answer = initialize(&mut bridge);
        let pid = bridge.id();
        assert_reads_pipes_without_blocking(pid, "bridge");
        drop(bridge.stdin.take());
        let status = bridge.wait().expect("wait for the bridge");
        (answer, pid, status)
    })
    .await
    .expect("join");
    assert!(
        answer["result"]["serverInfo"].is_object(),
        "bridge {pid}: {answer}\n{}",
        gw.log_tail(20)
    );
    assert!(status.success(), "bridge {pid}: {status}");
}
