//! `mcpgate reload`: checks the configuration file, then asks the running
//! `mcpgate serve` (found through the pid file in its data directory) to
//! reload it by sending SIGHUP. The server logs the outcome.

use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `mcpgate reload`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReloadArgs {
    /// The configuration file the server runs with (checked before the
    /// server is signalled; its server.data_dir locates the server).
    #[arg(long, short, env = "MCPGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The server's data directory, if `serve` was given --data-dir.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

pub(crate) fn run(args: ReloadArgs) -> ExitCode {
    let path = args.config.clone().or_else(|| {
        let default = PathBuf::from("mcpgate.toml");
        default.exists().then_some(default)
    });
    let cfg = match crate::config::load(path.as_deref()) {
        Ok(c) => c,
        Err(problems) => {
            crate::config::eprint_problems(
                &problems,
                "mcpgate: ",
                "; the server was not asked to reload",
            );
            return ExitCode::from(2);
        }
    };
    let data_dir = args.data_dir.unwrap_or(cfg.server.data_dir);
    let pid = match crate::pid_file::running(&data_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mcpgate: cannot reload: {e}");
            return ExitCode::from(1);
        }
    };
    let Ok(raw) = i32::try_from(pid) else {
        eprintln!("mcpgate: cannot reload: process id {pid} is out of range");
        return ExitCode::from(1);
    };
    if let Err(e) = kill(Pid::from_raw(raw), Signal::SIGHUP) {
        eprintln!(
            "mcpgate: cannot signal the server (pid {pid}): {e}{}",
            if e == nix::errno::Errno::EPERM {
                "; run reload as the user the server runs as"
            } else {
                ""
            }
        );
        return ExitCode::from(1);
    }
    println!(
        "mcpgate: asked the server (pid {pid}) to reload {}; its log says what changed, or every problem it found",
        path.as_ref().map_or_else(
            || "its configuration".to_owned(),
            |p| p.display().to_string()
        )
    );
    ExitCode::SUCCESS
}
