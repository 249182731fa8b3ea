//! Private files: 0700 directories, 0600 files written atomically, and
//! advisory lock files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// Creates `dir` (and parents) and makes it 0700.
pub(super) fn ensure_private_dir(dir: &Path) -> Result<(), ClientError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| ClientError::store(&format!("creating {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ClientError::store(&format!("securing {}", dir.display()), e))?;
    }
    Ok(())
}

pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ClientError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ClientError::store(
                &format!("{} is damaged (delete it to start over)", path.display()),
                e,
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::store(
            &format!("reading {}", path.display()),
            e,
        )),
    }
}

/// Writes `value` to `path` as 0600 JSON: a temp file in the same
/// directory, synced, then renamed over the old file.
pub(super) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ClientError> {
    let dir = path
        .parent()
        .ok_or_else(|| ClientError::Store(format!("{} has no parent", path.display())))?;
    ensure_private_dir(dir)?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ClientError::store("encoding", e))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record"),
        std::process::id(),
        crate::pkce::random_token(6)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ClientError::store(
            &format!("writing {}", path.display()),
            e,
        ));
    }
    Ok(())
}

pub(super) fn remove(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::store(
            &format!("removing {}", path.display()),
            e,
        )),
    }
}

/// The keys (`<key>.json` names) in a directory.
pub(super) fn list_keys(dir: &Path) -> Result<Vec<String>, ClientError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ClientError::store(&format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = name.strip_suffix(".json")
            && !name.starts_with('.')
        {
            out.push(key.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// A held cross-process lock; released when dropped (closing the file
/// releases the advisory lock, also when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

pub(super) async fn lock(dir: &Path, name: &str) -> Result<StoreLock, ClientError> {
    ensure_private_dir(dir)?;
    let path = dir.join(format!("{name}.lock"));
    let file = tokio::task::spawn_blocking(move || {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let file = opts
            .open(&path)
            .map_err(|e| ClientError::store(&format!("opening {}", path.display()), e))?;
        fs4::fs_std::FileExt::lock_exclusive(&file)
            .map_err(|e| ClientError::store(&format!("locking {}", path.display()), e))?;
        Ok::<_, ClientError>(file)
    })
    .await
    .map_err(|e| ClientError::store("lock task", e))??;
    Ok(StoreLock { _file: file })
}
