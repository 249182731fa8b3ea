//! The store's one error type.

use std::fmt;
use std::path::PathBuf;

/// What a record is, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An API key.
    ApiKey,
    /// A Basic user.
    User,
    /// An OAuth client.
    Client,
    /// A resource server registered with the authorization server.
    ResourceServer,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ApiKey => "API key",
            Kind::User => "user",
            Kind::Client => "client",
            Kind::ResourceServer => "resource server",
        })
    }
}

/// Why a store operation failed. Messages name what to do and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory or the database file cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `mcpgate store copy` found rows in its target.
    #[error(
        "the target store {location} is not empty ({table} holds {rows} rows): copy into an empty database, or pass --replace to empty it first"
    )]
    NotEmpty {
        /// The target (its password hidden).
        location: String,
        /// The first table with rows.
        table: &'static str,
        /// How many.
        rows: u64,
    },
    /// The store URL is not one mcpgate can use.
    #[error("invalid store URL: {0}")]
    Url(String),
    /// The database cannot be opened (or PostgreSQL cannot be reached).
    #[error("cannot open the database {location}: {source}")]
    Open {
        /// The store URL (its password hidden).
        location: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// The schema cannot be brought up to date (e.g. the database was written by a newer mcpgate).
    #[error("cannot update the database schema of {location}: {source}")]
    Migrate {
        /// The store URL (its password hidden).
        location: String,
        /// The cause.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed for a reason that will not go away by retrying (a bug, a
    /// corrupt file); see [`StoreError::Unavailable`] for the transient ones.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The storage cannot take the operation now: the disk is full, an I/O
    /// error, the database is locked or busy past the busy timeout, read-only,
    /// or out of memory. Nothing was written (the transaction was rolled back);
    /// the caller may retry later, and should answer 503 with `Retry-After`.
    #[error("storage unavailable (disk full, I/O error or database locked): {0}")]
    Unavailable(sqlx::Error),
    /// A record with this name exists already.
    #[error("{kind} {name:?} already exists")]
    Duplicate {
        /// What it is.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// No record has this name.
    #[error("no {kind} named {name:?}")]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// The name given.
        name: String,
    },
    /// A name with characters that are not allowed.
    #[error("invalid {kind} name {name:?}: use 1 to 64 letters, digits, and . _ - @ +")]
    InvalidName {
        /// What was being named.
        kind: Kind,
        /// The name given.
        name: String,
    },
    /// A subject longer than 256 bytes (a [`Subject`](mcpgate_types::Subject)
    /// is already non-empty and free of control characters).
    #[error("invalid subject {0:?}: use 1 to 256 printable characters")]
    InvalidSubject(String),
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// Hashing or checking a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A stored value cannot be read back.
    #[error("corrupt record in the database: {0}")]
    Corrupt(String),
    /// A background hashing task did not finish.
    #[error("a background task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Duplicate`].
    pub(crate) fn on_insert(e: sqlx::Error, kind: Kind, name: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate {
                kind,
                name: name.to_owned(),
            },
            _ => StoreError::from(e),
        }
    }

    /// Whether this is (or wraps) a transient storage failure: answer 503
    /// with `Retry-After`, not 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Sorts a query failure into [`StoreError::Unavailable`] (transient: disk
/// full, I/O, locked, busy, read-only, out of memory, the pool timing out or
/// closing) or [`StoreError::Database`] (everything else).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// SQLite's primary result codes for "try again later"
/// (<https://www.sqlite.org/rescode.html>): BUSY, LOCKED, NOMEM, READONLY,
/// IOERR, FULL, CANTOPEN, PROTOCOL.
const TRANSIENT_CODES: [i64; 8] = [5, 6, 7, 8, 10, 13, 14, 15];

/// PostgreSQL's SQLSTATE classes for "try again later"
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>):
/// 08 connection exception, 40 transaction rollback (serialization failure,
/// deadlock), 53 insufficient resources (disk full, out of memory, too many
/// connections), 57 operator intervention (shutdown, cancel), 58 system error
/// (I/O), and 25006 a read-only transaction (a standby).
const PG_TRANSIENT_CLASSES: [&str; 5] = ["08", "40", "53", "57", "58"];

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_some_and(|c| match c.parse::<i64>() {
            // sqlx reports SQLite's extended code; its low byte is the primary one.
            Ok(n) if c.len() != 5 => TRANSIENT_CODES.contains(&(n & 0xff)),
            _ => c == "25006" || PG_TRANSIENT_CLASSES.iter().any(|k| c.starts_with(k)),
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}
