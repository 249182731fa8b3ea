//! Browser sessions of the login and consent pages (digests of the cookie only).

use std::time::SystemTime;

use crate::Row as SqliteRow;
use mcpgate_types::Subject;
use sqlx::Row as _;

use crate::Store;
use crate::error::StoreError;
use crate::time::{from_unix, to_unix};

/// A browser session: anonymous until someone signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRow {
    /// Hex SHA-256 of the cookie value.
    pub digest: String,
    /// The signed-in user.
    pub subject: Option<Subject>,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// When the user signed in.
    pub auth_time: Option<SystemTime>,
    /// When the session began.
    pub created_at: SystemTime,
    /// When it ends.
    pub expires_at: SystemTime,
}

impl SessionRow {
    /// A new session.
    pub fn new(
        digest: String,
        subject: Option<Subject>,
        csrf: String,
        expires_at: SystemTime,
    ) -> SessionRow {
        let now = SystemTime::now();
        SessionRow {
            digest,
            auth_time: subject.as_ref().map(|_| now),
            subject,
            csrf,
            created_at: now,
            expires_at,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<SessionRow, sqlx::Error> {
        Ok(SessionRow {
            digest: row.try_get("digest")?,
            subject: crate::decode::parsed_opt(row, "subject")?,
            csrf: row.try_get("csrf")?,
            auth_time: row.try_get::<Option<i64>, _>("auth_time")?.map(from_unix),
            created_at: from_unix(row.try_get("created_at")?),
            expires_at: from_unix(row.try_get("expires_at")?),
        })
    }
}

impl Store {
    /// Stores a session.
    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_sessions (digest, subject, csrf, auth_time, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.digest)
        .bind(s.subject.as_deref())
        .bind(&s.csrf)
        .bind(s.auth_time.map(to_unix))
        .bind(to_unix(s.created_at))
        .bind(to_unix(s.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unexpired session with this digest.
    pub async fn find_session(
        &self,
        digest: &str,
        now: SystemTime,
    ) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, subject, csrf, auth_time, created_at, expires_at
             FROM oauth_sessions WHERE digest = $1 AND expires_at > $2",
        )
        .bind(digest)
        .bind(to_unix(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(SessionRow::from_row).transpose()?)
    }

    /// Ends a session.
    pub async fn delete_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_sessions WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
