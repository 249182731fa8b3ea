//! `<data_dir>/mcpgate.pid`: the process id of the `mcpgate serve` that uses
//! a data directory, written at start (mode 0600, like every file there) and
//! removed on a clean shutdown, so that `mcpgate reload` can find the process
//! to signal.

use std::fmt;
use std::path::{Path, PathBuf};

/// The file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "mcpgate.pid";

/// The pid file this process wrote.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    pid: u32,
}

/// Why the pid file names no running `mcpgate serve`.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum PidFileError {
    /// No pid file: no server has started on this data directory, or it stopped.
    Missing(PathBuf),
    /// It could not be read or written.
    Io(PathBuf, std::io::Error),
    /// It holds something other than a process id.
    Malformed(PathBuf),
    /// The process it names is gone (the server did not stop cleanly).
    Stale(PathBuf, u32),
    /// The process it names is not `mcpgate serve` (the id was reused).
    NotMcpgate(PathBuf, u32, String),
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidFileError::Missing(p) => write!(
                f,
                "{} does not exist: no `mcpgate serve` is running with this data directory (pass the same --config and --data-dir as serve)",
                p.display()
            ),
            PidFileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            PidFileError::Malformed(p) => {
                write!(f, "{} does not hold a process id", p.display())
            }
            PidFileError::Stale(p, pid) => write!(
                f,
                "{} names process {pid}, which is not running: the server stopped without removing it (delete the file, or start the server)",
                p.display()
            ),
            PidFileError::NotMcpgate(p, pid, what) => write!(
                f,
                "{} names process {pid}, which is {what}, not `mcpgate serve`: the server stopped and the id was reused (delete the file, or start the server)",
                p.display()
            ),
        }
    }
}

impl std::error::Error for PidFileError {}

impl PidFile {
    /// Writes this process's id into `data_dir`.
    pub(crate) fn write(data_dir: &Path) -> Result<PidFile, PidFileError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data_dir.join(FILE_NAME);
        let pid = std::process::id();
        if let Ok(other) = running(data_dir)
            && other != pid
        {
            tracing::warn!(
                path = %path.display(),
                other,
                "another mcpgate serve uses this data directory; the pid file now names this one"
            );
        }
        // Written beside, then renamed: a reader never sees half a number.
        let tmp = data_dir.join(format!(".{FILE_NAME}.{pid}"));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => Ok(PidFile { path, pid }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(PidFileError::Io(path, e))
            }
        }
    }

    /// Removes the file, unless another server has written its own since.
    pub(crate) fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            == Some(self.pid);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove the pid file: {e}");
        }
    }
}

/// The id of the `mcpgate serve` whose pid file is in `data_dir`, checked to
/// be running and to be mcpgate.
pub(crate) fn running(data_dir: &Path) -> Result<u32, PidFileError> {
    let path = data_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PidFileError::Missing(path));
        }
        Err(e) => return Err(PidFileError::Io(path, e)),
    };
    let Some(pid) = text.trim().parse::<u32>().ok().filter(|p| *p > 1) else {
        return Err(PidFileError::Malformed(path));
    };
    // What the process runs: its command line, NUL-separated.
    let cmdline = match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(c) if !c.is_empty() => c,
        // Gone, or a zombie (an empty command line).
        _ => return Err(PidFileError::Stale(path, pid)),
    };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let program = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !program.starts_with("mcpgate") || !args.iter().any(|a| a == "serve") {
        let what = if program.is_empty() {
            "another program".to_owned()
        } else {
            format!("{program:?}")
        };
        return Err(PidFileError::NotMcpgate(path, pid, what));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_back_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = PidFile::write(dir.path()).expect("write");
        let path = dir.path().join(FILE_NAME);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The test binary is not `mcpgate serve`.
        assert!(matches!(
            running(dir.path()),
            Err(PidFileError::NotMcpgate(_, pid, _)) if pid == std::process::id()
        ));
        f.remove();
        assert!(!path.exists());
        assert!(matches!(running(dir.path()), Err(PidFileError::Missing(_))));
    }

    #[test]
    fn stale_and_malformed_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "not a number\n").expect("write");
        let e = running(dir.path()).expect_err("malformed");
        assert!(e.to_string().contains("does not hold a process id"), "{e}");
        // Beyond the largest pid Linux hands out.
        std::fs::write(&path, "4194305\n").expect("write");
        let e = running(dir.path()).expect_err("stale");
        assert!(e.to_string().contains("which is not running"), "{e}");
    }

    #[test]
    fn a_file_written_by_another_server_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = PidFile::write(dir.path()).expect("write");
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "4194305\n").expect("write");
        f.remove();
        assert!(path.exists());
    }
}
