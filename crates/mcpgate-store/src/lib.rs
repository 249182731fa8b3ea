//! mcpgate's persistence: one database holding everything the gateway, the
//! authorization server and the CLI keep between runs: a SQLite file (the
//! default, one node) or a PostgreSQL database (any number of replicas),
//! named by a [`StoreUrl`].
//!
//! What it holds, by module:
//!
//! - `api_keys.rs`, `users.rs`: the API keys of `mcpgate keys` (SHA-256
//!   digests) and the Basic users of `mcpgate users` (argon2id), and
//!   `verify.rs`, the guard's [`Verifier`](mcpgate_guard::Verifier)s on them
//!   ([`ApiKeyVerifier`], [`BasicVerifier`]). What a key or user name may
//!   hold is checked here, and [`user_name_from`] makes one of an IdP's login
//!   or email (federation and the jwt-bearer grant).
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
//! Every query is written once, in SQL both backends accept (`$N`
//! placeholders, TEXT and BIGINT columns), and run through sqlx's `Any`
//! driver; the migrations exist once per backend (`migrations/sqlite`,
//! `migrations/postgres`, the same versions). Steps that must happen once
//! (a code's redemption, a refresh token's rotation, a login attempt's
//! reservation) are conditional updates or transactions that lock the rows
//! they read (`BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on
//! PostgreSQL), so they hold across replicas too.
//!
//! Each method spells its statement and binds out where it runs (no query
//! builder, no generic insert or lookup): the methods of different tables
//! share a shape (`sqlx::query(…)`, `.bind(…)`, `.execute(…)`) but not their
//! SQL, which stays readable and greppable in the module of its table.
//!
//! The default store is `<data_dir>/mcpgate.sqlite` (WAL, full sync), shared
//! safely between a running server and the CLI. Every write either commits or is rolled back, and no
//! connection returns to the pool inside a transaction (`pool.rs`), so an
//! `Ok` means the row is durable and visible to every connection; a full
//! disk, an I/O error or a lock held too long is [`StoreError::Unavailable`].
//!
//! It must never store or log a secret in the clear: API keys, codes and
//! tokens are kept as SHA-256 digests (the key is returned once, at
//! creation), passwords as argon2id hashes, secrets sealed. It must never
//! answer "allow" when the database cannot be read: the verifiers report that
//! as unavailable.

mod announce;
mod api_keys;
pub mod audit;
mod copy;
mod decode;
mod error;
pub mod federation;
mod location;
pub mod oauth;
mod pool;
mod quota;
pub mod random;
mod replay;
pub mod seal;
mod throttle;
mod time;
mod users;
pub mod vault;
mod verify;

use std::path::Path;
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Semaphore;

pub use announce::{Revocations, SessionEnds};
pub use api_keys::{ApiKeyRecord, KEY_PREFIX, KeyDigest};
pub use copy::{CopyReport, TableCount};
pub use error::{Kind, StoreError};
pub use location::{DB_FILE, StoreUrl};
pub use pool::{Durability, open_pool};
pub use seal::{MasterKey, SealError};

pub use time::format_utc;
pub use users::UserRecord;
pub use vault::{VaultEntry, VaultError, VaultSecret};
pub use verify::{ApiKeyVerifier, BasicVerifier};

/// The row type of every query (sqlx's `Any` driver: one query, two backends).
pub(crate) type Row = sqlx::any::AnyRow;

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    url: StoreUrl,
    /// Bounds concurrent argon2 computations (each takes ~19 MiB and a core).
    hashing: Arc<Semaphore>,
}

impl Store {
    /// Opens `<data_dir>/mcpgate.sqlite`, creating the directory (mode 0700)
    /// and the database (mode 0600) when missing, and brings the schema up to date.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::connect(&StoreUrl::in_data_dir(data_dir)).await
    }

    /// Opens the store at `url` and brings its schema up to date (under
    /// PostgreSQL's advisory lock, so replicas starting together migrate
    /// once). A SQLite file is created (0600, in a 0700 directory) when
    /// missing; a PostgreSQL database must exist.
    pub async fn connect(url: &StoreUrl) -> Result<Store, StoreError> {
        let store = Store::connect_unmigrated(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store without touching its schema (`mcpgate migrate` then
    /// calls [`Store::migrate`] itself).
    pub async fn connect_unmigrated(url: &StoreUrl) -> Result<Store, StoreError> {
        if let StoreUrl::Sqlite(path) = url {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|source| StoreError::DataDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            // Created here rather than by SQLite so that it is 0600 from the start;
            // SQLite gives the -wal and -shm files the database file's mode.
            create_private_file(path).map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        }
        let pool = pool::connect(url)
            .await
            .map_err(|source| StoreError::Open {
                location: url.to_string(),
                source,
            })?;
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Store {
            pool,
            url: url.clone(),
            hashing: Arc::new(Semaphore::new(parallelism * 2)),
        })
    }

    /// Applies the migrations this build has and the database lacks; returns
    /// how many it applied. On PostgreSQL, concurrent callers wait for one
    /// another (sqlx's migrator holds `pg_advisory_lock` while it works).
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let migrator = match self.url {
            StoreUrl::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
            StoreUrl::Postgres(_) => sqlx::migrate!("migrations/postgres"),
        };
        let err = |source| StoreError::Migrate {
            location: self.url.to_string(),
            source,
        };
        let mut conn = self.pool.acquire().await?;
        // Held around the count and the run (sqlx's migrator takes its own
        // lock inside), so that what is reported is what this call applied.
        if self.url.is_postgres() {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATE_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        let before = applied_migrations(&mut conn).await;
        let ran = migrator.run(&mut *conn).await.map_err(err);
        let after = applied_migrations(&mut conn).await;
        if self.url.is_postgres() {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATE_LOCK)
                .execute(&mut *conn)
                .await?;
        }
        ran?;
        Ok(after.saturating_sub(before))
    }

    /// Where the store lives.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// The database file, when the store is SQLite.
    pub fn path(&self) -> Option<&Path> {
        self.url.sqlite_path()
    }

    /// Starts a transaction that will write: on SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), so that what it reads cannot change before
    /// it writes; on PostgreSQL the rows it reads are locked with
    /// [`Store::for_update`].
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.url {
            StoreUrl::Sqlite(_) => self.pool.begin_with("BEGIN IMMEDIATE").await,
            StoreUrl::Postgres(_) => self.pool.begin().await,
        }
    }

    /// `" FOR UPDATE"` on PostgreSQL (a row lock for the transaction), nothing
    /// on SQLite (whose `BEGIN IMMEDIATE` already excludes other writers).
    pub(crate) fn for_update(&self) -> &'static str {
        match self.url {
            StoreUrl::Sqlite(_) => "",
            StoreUrl::Postgres(_) => " FOR UPDATE",
        }
    }

    /// Waits for in-flight queries and closes every connection, so the WAL is
    /// checkpointed into the database file.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The advisory lock `Store::migrate` holds on PostgreSQL ("mcpgate" in ASCII).
const MIGRATE_LOCK: i64 = 0x006d_6370_6761_7465;

/// How many migrations the database records as applied (0 before the first).
async fn applied_migrations(conn: &mut sqlx::AnyConnection) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// Creates `dir` (and its parents) as 0700 when missing; an existing one is
/// left as the operator set it. Every data directory of mcpgate is made here
/// (the demo's too).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `path` as an empty 0600 file when missing, before SQLite opens it
/// (SQLite gives the -wal and -shm files the database file's mode); an existing
/// file is left as it is.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
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

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')
}

/// Checks a key or user name: 1 to 64 of `A-Z a-z 0-9 . _ - @ +`.
fn check_name(kind: Kind, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty() && name.len() <= 64 && name.chars().all(name_char);
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// A user name made of what an IdP says (a login, an email): each character a
/// name may not hold becomes `-`, and at most 56 are kept so that a `-N` suffix
/// for a taken name still fits in 64. Empty when `raw` is.
pub fn user_name_from(raw: &str) -> String {
    raw.chars()
        .map(|c| if name_char(c) { c } else { '-' })
        .take(56)
        .collect()
}

/// The names a new user made of `base` may get, in order, while the earlier
/// ones are taken: `base`, then `base-1` … `base-19`.
pub fn user_name_candidates(base: &str) -> impl Iterator<Item = String> + '_ {
    std::iter::once(base.to_owned()).chain((1..20).map(move |n| format!("{base}-{n}")))
}

#[cfg(test)]
mod testing;
#[cfg(test)]
pub(crate) use testing::{TestDb, test_sqlite_store, test_store};

/// `"a b"` as a scope set.
#[cfg(test)]
pub(crate) fn scopes(s: &str) -> mcpgate_types::ScopeSet {
    s.parse().expect("test scopes are scope-tokens")
}

/// `s` as a subject.
#[cfg(test)]
pub(crate) fn subject(s: &str) -> mcpgate_types::Subject {
    s.parse().expect("test subjects are subjects")
}
