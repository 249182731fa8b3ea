//! mcpgate's persistence: one SQLite database holding everything the gateway,
//! the authorization server and the CLI keep between runs.
//!
//! What it holds, by module:
//!
//! - `api_keys.rs`, `users.rs`: the API keys of `mcpgate keys` (SHA-256
//!   digests) and the Basic users of `mcpgate users` (argon2id), and
//!   `verify.rs`, the guard's [`Verifier`](mcpgate_guard::Verifier)s on them
//!   ([`ApiKeyVerifier`], [`BasicVerifier`]).
//! - [`oauth`]: the authorization server's rows, one file per table family:
//!   clients, consents, device codes, grants with their codes and refresh
//!   tokens, pending authorizations, resource servers, browser sessions, and
//!   the signing keys (sealed).
//! - [`vault`]: each user's own upstream secrets (sealed), and the master
//!   key's rotation over every sealed row (`vault/rotate.rs`).
//! - [`federation`]: links between local users and IdP identities, and the
//!   IdP tokens (sealed).
//! - [`seal`]: AES-256-GCM under the master key, each value bound to its row.
//! - [`random`]: the one source of randomness (aws-lc-rs) for keys,
//!   passwords, codes and tokens.
//!
//! [`open_pool`] is the one way mcpgate's crates open SQLite (the demo's
//! database too).
//!
//! A call goes: a [`Store`] method (the module of its table) → the pool
//! (`pool.rs`) → SQLite; a failure is a [`StoreError`] (a [`VaultError`] for
//! sealed rows), each saying when it happens.
//!
//! A [`Store`] is one SQLite database, `<data_dir>/mcpgate.sqlite` (WAL, full
//! sync, schema from the embedded migrations), shared safely between a running
//! server and the CLI. Every write either commits or is rolled back, and no
//! connection returns to the pool inside a transaction (`pool.rs`), so an
//! `Ok` means the row is durable and visible to every connection; a full
//! disk, an I/O error or a lock held too long is [`StoreError::Unavailable`].
//! Its SQL is kept portable so that a PostgreSQL backend can serve the same
//! API to several replicas.
//!
//! It must never store or log a secret in the clear: API keys, codes and
//! tokens are kept as SHA-256 digests (the key is returned once, at
//! creation), passwords as argon2id hashes, secrets sealed. It must never
//! answer "allow" when the database cannot be read: the verifiers report that
//! as unavailable.

mod api_keys;
pub mod audit;
mod error;
pub mod federation;
pub mod oauth;
mod pool;
pub mod random;
pub mod seal;
mod time;
mod users;
pub mod vault;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::sqlite::SqlitePool;
use tokio::sync::Semaphore;

pub use api_keys::{ApiKeyRecord, KEY_PREFIX, KeyDigest};
pub use error::{Kind, StoreError};
pub use pool::{Durability, open_pool};
pub use seal::{MasterKey, SealError};
pub use time::format_utc;
pub use users::UserRecord;
pub use vault::{VaultEntry, VaultError, VaultSecret};
pub use verify::{ApiKeyVerifier, BasicVerifier};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "mcpgate.sqlite";

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// Bounds concurrent argon2 computations (each takes ~19 MiB and a core).
    hashing: Arc<Semaphore>,
}

impl Store {
    /// Opens `<data_dir>/mcpgate.sqlite`, creating the directory (mode 0700)
    /// and the database (mode 0600) when missing, and brings the schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        // Created here rather than by SQLite so that it is 0600 from the start;
        // SQLite gives the -wal and -shm files the database file's mode.
        create_private_file(&path).map_err(|source| StoreError::DataDir {
            path: path.clone(),
            source,
        })?;
        let pool = pool::open_pool(&path, Durability::Full)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.clone(),
                source,
            })?;
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Store {
            pool,
            path,
            hashing: Arc::new(Semaphore::new(parallelism * 2)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for in-flight queries and closes every connection, so the WAL is
    /// checkpointed into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks a key or user name: 1 to 64 of `A-Z a-z 0-9 . _ - @ +`.
fn check_name(kind: Kind, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// Checks scope tokens (RFC 6749 §3.3) and joins them with spaces for storage.
fn join_scopes<'a>(scopes: impl IntoIterator<Item = &'a String>) -> Result<String, StoreError> {
    let mut out = Vec::new();
    for s in scopes {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !ok {
            return Err(StoreError::InvalidScope(s.clone()));
        }
        out.push(s.as_str());
    }
    Ok(out.join(" "))
}

/// A store in a fresh temporary directory (kept alive by the returned guard).
#[cfg(test)]
pub(crate) async fn test_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("data"))
        .await
        .expect("open store");
    (dir, store)
}

/// `"a b"` as a scope set.
#[cfg(test)]
pub(crate) fn scopes(s: &str) -> std::collections::BTreeSet<String> {
    s.split_ascii_whitespace().map(str::to_owned).collect()
}
