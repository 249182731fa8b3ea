//! OAuth clients: pre-registered, dynamically registered, or cached client
//! ID metadata documents.

use mcpgate_types::ClientId;
use std::time::SystemTime;

use crate::Row as SqliteRow;
use sqlx::Row as _;

use crate::Store;
use crate::error::{Kind, StoreError};
use crate::time::{from_unix, to_unix};

/// Where a client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientKind {
    /// `mcpgate clients add`.
    Static,
    /// RFC 7591 dynamic registration.
    Dynamic,
    /// A fetched client ID metadata document (the `client_id` is its URL).
    Cimd,
}

/// How stale a client's `last_used_at` may get before a token request writes it
/// again (`mcpgate clients list` shows it to the minute; expiries are days away).
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl ClientKind {
    fn as_str(self) -> &'static str {
        match self {
            ClientKind::Static => "static",
            ClientKind::Dynamic => "dynamic",
            ClientKind::Cimd => "cimd",
        }
    }

    fn parse(s: &str) -> Result<ClientKind, sqlx::Error> {
        match s {
            "static" => Ok(ClientKind::Static),
            "dynamic" => Ok(ClientKind::Dynamic),
            "cimd" => Ok(ClientKind::Cimd),
            other => Err(sqlx::Error::Decode(
                format!("unknown client kind {other:?}").into(),
            )),
        }
    }
}

/// A client as stored. Secrets appear as digests only.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientRow {
    /// The `client_id`.
    pub client_id: ClientId,
    /// Where it came from.
    pub kind: ClientKind,
    /// Its RFC 7591 metadata as accepted (redirect URIs, name, auth method…).
    pub metadata: serde_json::Value,
    /// Hex SHA-256 of the client secret (confidential clients).
    pub secret_digest: Option<String>,
    /// Hex SHA-256 of the RFC 7592 registration access token (dynamic clients).
    pub registration_token_digest: Option<String>,
    /// When it was registered or fetched.
    pub created_at: SystemTime,
    /// When it last obtained a token.
    pub last_used_at: SystemTime,
    /// When it may be purged (unused dynamic clients, stale documents).
    pub expires_at: Option<SystemTime>,
}

impl ClientRow {
    /// A new row, created and last used now.
    pub fn new(client_id: ClientId, kind: ClientKind, metadata: serde_json::Value) -> ClientRow {
        let now = SystemTime::now();
        ClientRow {
            client_id,
            kind,
            metadata,
            secret_digest: None,
            registration_token_digest: None,
            created_at: now,
            last_used_at: now,
            expires_at: None,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<ClientRow, sqlx::Error> {
        let metadata: String = row.try_get("metadata")?;
        Ok(ClientRow {
            client_id: crate::decode::parsed(row, "client_id")?,
            kind: ClientKind::parse(&row.try_get::<String, _>("kind")?)?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            secret_digest: row.try_get("secret_digest")?,
            registration_token_digest: row.try_get("registration_token_digest")?,
            created_at: from_unix(row.try_get("created_at")?),
            last_used_at: from_unix(row.try_get("last_used_at")?),
            expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(from_unix),
        })
    }
}

macro_rules! columns {
    () => {
        "client_id, kind, metadata, secret_digest, registration_token_digest, created_at, last_used_at, expires_at"
    };
}

/// The parameters of an insert of `columns!()`.
macro_rules! values {
    () => {
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
}

impl Store {
    /// Adds a client; a taken `client_id` is [`StoreError::Duplicate`].
    pub async fn insert_client(&self, c: &ClientRow) -> Result<(), StoreError> {
        self.write_client(
            c,
            concat!("INSERT INTO oauth_clients (", columns!(), ") ", values!()),
        )
        .await
        .map_err(|e| StoreError::on_insert(e, Kind::Client, c.client_id.as_str()))
    }

    /// Inserts or replaces a client (RFC 7592 updates, refreshed metadata documents).
    pub async fn upsert_client(&self, c: &ClientRow) -> Result<(), StoreError> {
        Ok(self
            .write_client(
                c,
                concat!(
                    "INSERT INTO oauth_clients (",
                    columns!(),
                    ") ",
                    values!(),
                    " ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind,
                      metadata = excluded.metadata, secret_digest = excluded.secret_digest,
                      registration_token_digest = excluded.registration_token_digest,
                      last_used_at = excluded.last_used_at, expires_at = excluded.expires_at"
                ),
            )
            .await?)
    }

    /// Runs `sql`, an `INSERT` of `columns!()` with `values!()`, for `c`.
    async fn write_client(&self, c: &ClientRow, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql)
            .bind(c.client_id.as_str())
            .bind(c.kind.as_str())
            .bind(c.metadata.to_string())
            .bind(&c.secret_digest)
            .bind(&c.registration_token_digest)
            .bind(to_unix(c.created_at))
            .bind(to_unix(c.last_used_at))
            .bind(c.expires_at.map(to_unix))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The client with this id.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                columns!(),
                " FROM oauth_clients WHERE client_id = $1"
            ),
            client_id,
            ClientRow::from_row,
        )
        .await
    }

    /// Every client of `kind` (all when `None`), oldest first.
    pub async fn list_clients(
        &self,
        kind: Option<ClientKind>,
    ) -> Result<Vec<ClientRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM oauth_clients WHERE $1 IS NULL OR kind = $1 ORDER BY created_at, client_id"
        ))
        .bind(kind.map(ClientKind::as_str))
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, ClientRow::from_row)
    }

    /// Removes a client, its grants (so its tokens stop working) and consents.
    /// Returns whether it existed.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        for q in [
            "DELETE FROM oauth_refresh_tokens WHERE grant_id IN (SELECT id FROM oauth_grants WHERE client_id = $1)",
            "DELETE FROM oauth_codes WHERE client_id = $1",
            "DELETE FROM oauth_grants WHERE client_id = $1",
            "DELETE FROM oauth_consents WHERE client_id = $1",
            "DELETE FROM oauth_device_codes WHERE client_id = $1",
        ] {
            sqlx::query(q).bind(client_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records that a client obtained a token now, and pushes its expiry out;
    /// at most once a minute (`TOUCH_EVERY`), and always on its first use and
    /// while its expiry is less than a minute away.
    ///
    /// Every token a client obtains would otherwise write its one row: under
    /// load all of a client's token requests queue on that row's lock, one
    /// commit after the other (the refresh benchmark on PostgreSQL). A row
    /// touched within the interval matches nothing: no lock, no write.
    pub async fn touch_client(
        &self,
        client_id: &str,
        now: SystemTime,
        expires_at: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let due = now
            .checked_sub(TOUCH_EVERY)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // A stored expiry less than an interval away is pushed out at every use:
        // with a `dynamic_client_ttl` shorter than the interval, a client in use
        // would otherwise expire between two writes.
        let expiring = now + TOUCH_EVERY;
        sqlx::query(
            "UPDATE oauth_clients SET last_used_at = $1, expires_at = $2 WHERE client_id = $3 \
             AND (last_used_at <= $4 OR last_used_at = created_at \
                  OR (expires_at IS NOT NULL AND expires_at <= $5))",
        )
        .bind(to_unix(now))
        .bind(expires_at.map(to_unix))
        .bind(client_id)
        .bind(to_unix(due))
        .bind(to_unix(expiring))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
