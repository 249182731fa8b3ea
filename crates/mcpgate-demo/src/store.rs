//! The demo's SQLite database: notes and per-user tool usage.
//!
//! It lives at `<data_dir>/demo.sqlite`, in WAL mode so readers never wait
//! for the writer. The demo keeps its own small schema here rather than in
//! the gateway's own store (the demo is an upstream like any other and owns its data).
//! Queries are built at run time (`sqlx::query`), so building needs no
//! database.

use std::{
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::{
    Row as _,
    sqlite::{SqlitePool, SqliteRow},
};

use crate::{
    error::DemoError,
    identity::Subject,
    notes::{NoteContent, NoteTitle},
};

/// The database file's name inside the data directory.
pub(crate) const DB_FILE: &str = "demo.sqlite";

/// Each statement runs alone; `IF NOT EXISTS` makes opening idempotent.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS notes (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        subject    TEXT    NOT NULL,
        title      TEXT    NOT NULL,
        content    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS notes_by_subject ON notes (subject, id)",
    "CREATE TABLE IF NOT EXISTS tool_usage (
        subject TEXT    NOT NULL,
        tool    TEXT    NOT NULL,
        calls   INTEGER NOT NULL,
        PRIMARY KEY (subject, tool)
    ) WITHOUT ROWID",
];

/// One stored note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// Unique across all users; ownership is checked on every read.
    pub(crate) id: i64,
    /// The note's title.
    pub(crate) title: String,
    /// The note's text.
    pub(crate) content: String,
    /// Seconds since the Unix epoch.
    pub(crate) created_at: i64,
}

/// How often one user called one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The tool's name.
    pub(crate) tool: String,
    /// Completed and failed calls alike.
    pub(crate) calls: i64,
}

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: SqlitePool,
}

/// Creates `db` as 0600, or narrows it and its -wal/-shm files to 0600 when a
/// release before this one left them readable by others.
fn make_private(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    mcpgate_store::create_private_file(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let p = std::path::PathBuf::from(name);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
                tracing::info!(path = %p.display(), "narrowed the demo database file to 0600");
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the data directory and the database in it.
    pub(crate) async fn open(data_dir: &Path) -> Result<Self, DemoError> {
        mcpgate_store::create_private_dir(data_dir).map_err(|e| {
            DemoError::start(
                format!("cannot create the data directory {}", data_dir.display()),
                e,
            )
        })?;
        let path = data_dir.join(DB_FILE);
        // Notes are users' data: 0600 before SQLite opens the file, since SQLite
        // gives the -wal and -shm files the database file's mode.
        make_private(&path).map_err(|e| {
            DemoError::start(format!("cannot make {} private (0600)", path.display()), e)
        })?;
        // NORMAL: a crash of this process loses nothing; only a power loss
        // may drop the last commits, which a demo can afford.
        let pool = mcpgate_store::open_pool(&path, mcpgate_store::Durability::Normal)
            .await
            .map_err(|e| {
                DemoError::start(
                    format!("cannot open the demo database {}", path.display()),
                    e,
                )
            })?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await.map_err(|e| {
                DemoError::start(format!("cannot create the schema in {}", path.display()), e)
            })?;
        }
        Ok(Self { pool })
    }

    /// Waits for in-flight queries and closes every connection, so the WAL is
    /// checkpointed and the files can be reopened or removed.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a new note for `owner` and returns it.
    pub(crate) async fn insert_note(
        &self,
        owner: &Subject,
        title: &NoteTitle,
        content: &NoteContent,
    ) -> Result<Note, sqlx::Error> {
        let created_at = unix_now();
        let id: i64 = sqlx::query(
            "INSERT INTO notes (subject, title, content, created_at)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(owner.as_str())
        .bind(title.as_str())
        .bind(content.as_str())
        .bind(created_at)
        .fetch_one(&self.pool)
        .await?
        .try_get("id")?;
        Ok(Note {
            id,
            title: title.as_str().to_owned(),
            content: content.as_str().to_owned(),
            created_at,
        })
    }

    /// All of `owner`'s notes, oldest first.
    pub(crate) async fn notes_of(&self, owner: &Subject) -> Result<Vec<Note>, sqlx::Error> {
        sqlx::query(
            "SELECT id, title, content, created_at FROM notes
             WHERE subject = ?1 ORDER BY id",
        )
        .bind(owner.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(note_from_row)
        .collect()
    }

    /// Note `id` if, and only if, it belongs to `owner`.
    pub(crate) async fn note_of(
        &self,
        owner: &Subject,
        id: i64,
    ) -> Result<Option<Note>, sqlx::Error> {
        sqlx::query(
            "SELECT id, title, content, created_at FROM notes
             WHERE subject = ?1 AND id = ?2",
        )
        .bind(owner.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(note_from_row)
        .transpose()
    }

    /// How many notes `owner` has.
    pub(crate) async fn note_count(&self, owner: &Subject) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) AS n FROM notes WHERE subject = ?1")
            .bind(owner.as_str())
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }

    /// Counts one call of `tool` by `caller`.
    pub(crate) async fn record_call(
        &self,
        caller: &Subject,
        tool: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO tool_usage (subject, tool, calls) VALUES (?1, ?2, 1)
             ON CONFLICT (subject, tool) DO UPDATE SET calls = calls + 1",
        )
        .bind(caller.as_str())
        .bind(tool)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `caller`'s call counts, by tool name.
    pub(crate) async fn usage_of(&self, caller: &Subject) -> Result<Vec<Usage>, sqlx::Error> {
        sqlx::query("SELECT tool, calls FROM tool_usage WHERE subject = ?1 ORDER BY tool")
            .bind(caller.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Usage {
                    tool: row.try_get("tool")?,
                    calls: row.try_get("calls")?,
                })
            })
            .collect()
    }
}

fn note_from_row(row: &SqliteRow) -> Result<Note, sqlx::Error> {
    Ok(Note {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        content: row.try_get("content")?,
        created_at: row.try_get("created_at")?,
    })
}

fn unix_now() -> i64 {
    // A clock before 1970 is a broken host, not a reason to refuse a note.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests;
