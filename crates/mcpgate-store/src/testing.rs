//! The store the unit tests run on: SQLite in a temporary directory, or, when
//! `MCPGATE_TEST_STORE=postgres`, a database of its own on the PostgreSQL
//! server `MCPGATE_TEST_POSTGRES_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), created for the test and
//! dropped after it. `scripts/test` runs the store's tests both ways.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection as _;

use crate::{Store, StoreUrl};

/// The environment variable naming the PostgreSQL server tests may use.
const PG_ENV: &str = "MCPGATE_TEST_POSTGRES_URL";

/// The environment variable choosing the backend (`sqlite`, the default, or `postgres`).
const BACKEND_ENV: &str = "MCPGATE_TEST_STORE";

/// The PostgreSQL server to create test databases on, when the run asks for it.
fn postgres_server() -> Option<String> {
    let backend = std::env::var(BACKEND_ENV).unwrap_or_default();
    match backend.as_str() {
        "" | "sqlite" => None,
        "postgres" => Some(
            std::env::var(PG_ENV)
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        ),
        other => panic!("{BACKEND_ENV}={other:?}: use sqlite or postgres"),
    }
}

/// A test's database; dropping it drops a PostgreSQL database.
pub(crate) struct TestDb {
    /// Holds the SQLite file (removed on drop).
    _dir: tempfile::TempDir,
    url: StoreUrl,
    /// The server URL and the database name, for dropping it.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database (not yet opened).
    pub(crate) async fn new() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match postgres_server() {
            None => {
                let url = StoreUrl::in_data_dir(&dir.path().join("data"));
                TestDb {
                    _dir: dir,
                    url,
                    pg: None,
                }
            }
            Some(server) => {
                static N: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "mcpgate_t{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed),
                    crate::random::string_from(b"abcdefghijklmnopqrstuvwxyz0123456789", 6)
                );
                let mut c = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("connect to MCPGATE_TEST_POSTGRES_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut c)
                    .await
                    .expect("create the test database");
                let _ = c.close().await;
                let url = StoreUrl::Postgres(with_database(&server, &name));
                TestDb {
                    _dir: dir,
                    url,
                    pg: Some((server, name)),
                }
            }
        }
    }

    /// Its URL.
    pub(crate) fn url(&self) -> &StoreUrl {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.pg.take() else {
            return;
        };
        // Drop may run inside the test's runtime: drop the database from a
        // thread of its own, with a runtime of its own, and wait for it.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `postgres://u@h:5432/postgres?x=y` with its database replaced by `name`.
pub(crate) fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A store on the backend the run asks for (see the module's text).
pub(crate) async fn test_store() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = Store::connect(db.url()).await.expect("open store");
    (db, store)
}

/// A SQLite store in a fresh temporary directory (`<dir>/data`), for the
/// tests of what only SQLite has (files, modes, its failure modes).
pub(crate) async fn test_sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("data"))
        .await
        .expect("open store");
    (dir, store)
}
