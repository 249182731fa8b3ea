//! Which store the processes a test starts use: SQLite in their data directory
//! (the default), or, with `MCPGATE_TEST_STORE=postgres` (scripts/test's second
//! run of the suite), a PostgreSQL database of their own on
//! `MCPGATE_TEST_POSTGRES_URL` (else 127.0.0.1:5432), one per data directory, so
//! that a CLI call and the gateway on the same `--data-dir` share it, as they
//! share the SQLite file. The database reaches the process as `DATABASE_URL`,
//! which a configured `[store] url` still overrides: tests about SQLite itself
//! keep it.
//!
//! A database lives as long as its data directory is used: the gateway that
//! owns a fresh data directory drops it on drop ([`drop_for`]); databases of
//! data directories a test keeps (restarts) are dropped by the next run's
//! sweep of databases whose test process is gone, and by scripts/test.

use std::collections::HashSet;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

use sqlx::Connection as _;

/// Prefix of every database this module creates; then the test process's pid.
const PREFIX: &str = "mcpgate_e2e_pg_";

/// Whether this run puts the store on PostgreSQL.
pub(crate) fn on_postgres() -> bool {
    std::env::var("MCPGATE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// Databases this process created (by name).
static CREATED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Data directories whose store stays SQLite on PostgreSQL runs too.
static SQLITE_ONLY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Data directories that are copies of another (`cp -a`): they share its store.
static COPIES: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
static SWEEP: Once = Once::new();

/// The store of `data` stays `data/mcpgate.sqlite` on PostgreSQL runs too: for
/// tests about SQLite itself (a full disk, the file's bytes, editing it behind
/// the server's back).
pub(crate) fn keep_sqlite(data: &Path) {
    SQLITE_ONLY.lock().expect("lock").push(data.to_owned());
}

/// `copy` is a copy of the data directory `of`: on SQLite the copy holds the
/// file; on PostgreSQL it uses the same database, as replicas would.
pub(crate) fn copied(of: &Path, copy: &Path) {
    let of = COPIES
        .lock()
        .expect("lock")
        .iter()
        .find(|(c, _)| c == of)
        .map_or_else(|| of.to_owned(), |(_, o)| o.clone());
    COPIES.lock().expect("lock").push((copy.to_owned(), of));
}

fn name_for(data: &Path) -> String {
    let data = COPIES
        .lock()
        .expect("lock")
        .iter()
        .find(|(c, _)| c == data)
        .map_or_else(|| data.to_owned(), |(_, o)| o.clone());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    format!("{PREFIX}{}_{:016x}", std::process::id(), h.finish())
}

/// The server URL with its database replaced by `name`.
fn url_of(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

/// Runs `sql` on the server from a thread of its own (callers may be inside a
/// runtime or not); the first failure, if any.
fn on_server(sql: Vec<String>) -> Result<(), String> {
    let server = crate::replicas::postgres_server();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&server).await.map_err(|e| {
                format!("MCPGATE_TEST_STORE=postgres: cannot reach PostgreSQL at {server} ({e})")
            })?;
            for statement in sql {
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&mut c)
                    .await
                    .map_err(|e| format!("{statement}: {e}"))?;
            }
            let _ = c.close().await;
            Ok(())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".to_owned()))
}

/// Drops the databases of earlier runs whose process is gone (a run that
/// restarted gateways on a data directory it kept leaves them behind).
fn sweep_stale() {
    let server = crate::replicas::postgres_server();
    let names = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&server).await.ok()?;
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
                    .bind(format!("{PREFIX}%"))
                    .fetch_all(&mut c)
                    .await
                    .ok()?;
            Some(rows.into_iter().map(|(n,)| n).collect::<Vec<_>>())
        })
    })
    .join()
    .ok()
    .flatten()
    .unwrap_or_default();
    let stale = names
        .into_iter()
        .filter(|n| {
            let pid = n[PREFIX.len()..].split('_').next().unwrap_or("");
            !Path::new("/proc").join(pid).exists()
        })
        .map(|n| format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"))
        .collect::<Vec<_>>();
    // Best effort: a database still in use by a live process is left alone anyway.
    let _ = on_server(stale);
}

/// The environment that points a process on `data` at its store: nothing on
/// SQLite; `DATABASE_URL` of the data directory's database (created on first
/// use) on PostgreSQL.
pub(crate) fn env_for(data: &Path) -> Vec<(&'static str, String)> {
    if !on_postgres() || SQLITE_ONLY.lock().expect("lock").iter().any(|d| d == data) {
        return Vec::new();
    }
    SWEEP.call_once(sweep_stale);
    let name = name_for(data);
    let fresh = CREATED
        .lock()
        .expect("lock")
        .get_or_insert_with(HashSet::new)
        .insert(name.clone());
    if fresh && let Err(e) = on_server(vec![format!("CREATE DATABASE {name}")]) {
        panic!("{e}");
    }
    vec![(
        "DATABASE_URL",
        url_of(&crate::replicas::postgres_server(), &name),
    )]
}

/// Applies [`env_for`] to `cmd`, and keeps a `DATABASE_URL` of the test's own
/// environment away from it on SQLite runs.
pub(crate) fn apply(cmd: &mut Command, data: &Path) {
    cmd.env_remove("DATABASE_URL");
    cmd.envs(env_for(data));
}

/// Drops the database of `data`, if this process created one.
pub(crate) fn drop_for(data: &Path) {
    let name = name_for(data);
    let known = CREATED
        .lock()
        .expect("lock")
        .as_mut()
        .is_some_and(|set| set.remove(&name));
    if known {
        // Best effort: the next run's sweep drops what is left.
        let _ = on_server(vec![format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")]);
    }
}
