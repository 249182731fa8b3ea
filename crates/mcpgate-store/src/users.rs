//! Basic users: a name, an argon2id password hash, scopes.

use mcpgate_types::{ScopeSet, Subject};
use std::fmt;
use std::time::SystemTime;

use crate::Row as SqliteRow;
use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _, password_hash};
use sqlx::Row as _;

use crate::api_keys::split_scopes;
use crate::error::{Kind, StoreError};
use crate::time::{from_unix, to_unix};
use crate::{Store, check_name};

/// An argon2id hash (default parameters) of a random password nobody knows.
/// Unknown users are checked against it so that they take as long as known
/// ones (a test keeps its parameters equal to the defaults).
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$gqtpyXxzdZEMAN0gfa2i2Q$2s7Jot02V2sCKMQwMwEAzSt4B92fnjU5YH3PlJIJUcc";

/// A user as stored. `Debug` does not show the hash.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecord {
    /// Unique user name (the Basic user): the subject of the sessions and
    /// tokens it signs in to.
    pub name: Subject,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Granted scopes (`*` grants every scope).
    pub scopes: ScopeSet,
    /// When the user was added.
    pub created_at: SystemTime,
    /// When the password or scopes last changed.
    pub updated_at: SystemTime,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl UserRecord {
    fn from_row(row: &SqliteRow) -> Result<UserRecord, sqlx::Error> {
        Ok(UserRecord {
            name: crate::decode::parsed(row, "name")?,
            password_hash: row.try_get("password_hash")?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            created_at: from_unix(row.try_get("created_at")?),
            updated_at: from_unix(row.try_get("updated_at")?),
        })
    }
}

impl Store {
    /// Adds a user with `password` (hashed with argon2id) and `scopes`.
    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        scopes: &ScopeSet,
    ) -> Result<(), StoreError> {
        check_name(Kind::User, name)?;
        let scopes = scopes.to_string();
        let hash = self.hash_password(password).await?;
        let now = to_unix(SystemTime::now());
        // Spelt-out SQL, shaped like other tables' (why: the crate docs).
        sqlx::query(
            "INSERT INTO users (name, password_hash, scopes, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(hash)
        .bind(scopes)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert(e, Kind::User, name))?;
        Ok(())
    }

    /// Replaces the password of user `name`.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let hash = self.hash_password(password).await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3")
                .bind(hash)
                .bind(to_unix(SystemTime::now()))
                .bind(name)
                .execute(&self.pool)
                .await?;
        not_found_if_none(done.rows_affected(), name)
    }

    /// Removes user `name`, and with it everything that lets them in: their
    /// authorization-server grants are revoked (so their refresh tokens stop at
    /// once and their access tokens at the next verification), their
    /// remembered consents and browser sessions deleted. One transaction: a
    /// crash leaves either the user with all of it or none of it.
    pub async fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        not_found_if_none(done.rows_affected(), name)?;
        sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1, revoked_why = 'user removed' \
             WHERE subject = $2 AND revoked_at IS NULL",
        )
        .bind(crate::time::to_unix(std::time::SystemTime::now()))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM oauth_consents WHERE subject = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oauth_sessions WHERE subject = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, password_hash, scopes, created_at, updated_at FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, UserRecord::from_row)
    }

    /// User `name`, if there is one.
    pub async fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, password_hash, scopes, created_at, updated_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(UserRecord::from_row).transpose()?)
    }

    /// User `name` if `password` is theirs; `None` for an unknown user or a
    /// wrong password, which take the same time (an unknown user is checked
    /// against a dummy hash).
    pub async fn check_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let user = self.find_user(name).await?;
        let hash = user
            .as_ref()
            .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
            .to_owned();
        let password = password.to_owned();
        let matches = self
            .blocking_hash_work(move || {
                match Argon2::default().verify_password(password.as_bytes(), hash.as_str()) {
                    Ok(()) => Ok(true),
                    Err(password_hash::Error::PasswordInvalid) => Ok(false),
                    Err(e) => Err(StoreError::Hash(e.to_string())),
                }
            })
            .await?;
        Ok(user.filter(|_| matches))
    }

    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        if password.is_empty() {
            return Err(StoreError::EmptyPassword);
        }
        let password = password.to_owned();
        self.blocking_hash_work(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| StoreError::Hash(e.to_string()))
        })
        .await
    }

    /// Runs argon2 work on the blocking pool, at most a few at a time.
    async fn blocking_hash_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn not_found_if_none(rows: u64, name: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound {
            kind: Kind::User,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
