//! The connection pool, and the rule that no connection goes back into it
//! inside a transaction.
//!
//! Why this is needed: when SQLite fails a statement or a `COMMIT` with
//! `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM` or `SQLITE_BUSY`, it may roll
//! the whole transaction back by itself (<https://www.sqlite.org/lang_transaction.html>,
//! "Response To Errors Within A Transaction"). sqlx then issues its own
//! `ROLLBACK`, which fails ("no transaction is active"), so sqlx still counts
//! the connection as one transaction deep. The next `begin()` on it becomes a
//! `SAVEPOINT`, which on a connection in autocommit mode opens a real
//! transaction, and a later failure there rolls back only *to* the savepoint:
//! the connection is left inside an open transaction that holds the write
//! lock. Every later "commit" on it only releases a savepoint: the writes are
//! acknowledged, visible to nobody else, and lost at restart, while the other
//! connections wait for the lock and fail with "database is locked".
//!
//! The fix is checked where a connection is returned: [`is_clean`] runs after
//! every release (after sqlx's queued rollback) and asks SQLite itself, not
//! sqlx's counter, whether the connection is in autocommit mode. A connection
//! that is not is closed, which makes SQLite roll back whatever it held; the
//! pool opens a fresh one when needed. The check costs one round trip to the
//! connection's worker thread and no I/O (a deferred `BEGIN` takes no lock).

use std::path::Path;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::ConnectOptions as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::location::StoreUrl;

/// Most connections open at once on SQLite (one writer at a time anyway).
const MAX_CONNECTIONS: u32 = 4;

/// Most connections one pool opens to PostgreSQL (`serve` has up to three:
/// API keys and users, the authorization server, the audit writer), so that
/// three replicas fit PostgreSQL's default `max_connections` of 100.
const MAX_PG_CONNECTIONS: u32 = 10;

/// What a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Nothing acknowledged is lost, even on power loss (`synchronous = FULL`):
    /// the gateway's own store.
    Full,
    /// A crash of the process loses nothing; a power loss may drop the last
    /// commits (`synchronous = NORMAL`): data a demo can afford to lose.
    Normal,
}

/// Opens a pool on the SQLite database at `path`, creating the file when
/// missing: WAL (readers never wait for the writer), a 5-second wait for
/// locks, foreign keys on, at most four connections, and no connection
/// returned to the pool inside a transaction (see the module's text). The
/// one way mcpgate's crates open SQLite.
pub async fn open_pool(path: &Path, durability: Durability) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        // The CLI and a running server share the file: wait, don't fail.
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_release(|conn, _| Box::pin(async move { Ok(is_clean(conn).await) }))
        .connect_with(options)
        .await
}

/// Opens the store's pool on either backend (sqlx's `Any` driver, so that
/// every query is written once). SQLite gets what [`open_pool`] gives it
/// (WAL, a 5-second busy timeout, foreign keys, `synchronous = FULL`) and the
/// same clean-release check; PostgreSQL gets a bounded pool and a 5-second
/// wait for a connection.
pub(crate) async fn connect(url: &StoreUrl) -> Result<AnyPool, sqlx::Error> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    match url {
        StoreUrl::Sqlite(path) => {
            // sqlx's SQLite defaults already are foreign keys on, a 5 s busy
            // timeout and `synchronous = FULL`; WAL is set per connection below.
            let sqlite = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            let options = AnyConnectOptions::from_str(sqlite.to_url_lossy().as_str())?;
            AnyPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .after_release(|conn, _| Box::pin(async move { Ok(is_clean(conn).await) }))
                .connect_with(options)
                .await
        }
        StoreUrl::Postgres(url) => {
            let options = AnyConnectOptions::from_str(url)?;
            AnyPoolOptions::new()
                .max_connections(MAX_PG_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
        }
    }
}

/// Whether `conn` may go back into the pool: SQLite is in autocommit mode
/// (no transaction open) and sqlx agrees. Logs why when it may not.
///
/// The same for a SQLite connection reached directly or through sqlx's `Any` driver.
pub(crate) async fn is_clean<C>(conn: &mut C) -> bool
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    // `BEGIN` fails inside a transaction and otherwise opens a deferred one
    // that takes no lock; `ROLLBACK` closes it. Sent as raw SQL so that sqlx's
    // transaction counter is not involved. Being a query, it also runs after
    // any rollback sqlx queued when a `Transaction` was dropped.
    if let Err(e) = sqlx::raw_sql("BEGIN; ROLLBACK").execute(&mut *conn).await {
        tracing::warn!(
            "closing a database connection that was left inside a transaction (its uncommitted writes are rolled back): {e}"
        );
        return false;
    }
    if conn.is_in_transaction() {
        tracing::warn!(
            "closing a database connection whose transaction count is out of step with SQLite"
        );
        return false;
    }
    true
}

#[cfg(test)]
mod tests;
