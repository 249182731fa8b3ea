//! Device authorization (RFC 8628): device codes (digests) and their user codes.

use mcpgate_types::{ClientId, ResourceUri, ScopeSet, Subject};
use std::time::SystemTime;

use crate::Row as SqliteRow;
use sqlx::Row as _;

use crate::Store;
use crate::api_keys::split_scopes;
use crate::decode::parsed;
use crate::error::StoreError;
use crate::time::{from_unix, to_unix};

/// Where a device authorization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; the next poll gets tokens.
    Approved,
    /// The user refused.
    Denied,
    /// Tokens were issued.
    Used,
}

impl DeviceStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Used => "used",
        }
    }

    fn parse(s: &str) -> Result<DeviceStatus, sqlx::Error> {
        Ok(match s {
            "pending" => DeviceStatus::Pending,
            "approved" => DeviceStatus::Approved,
            "denied" => DeviceStatus::Denied,
            "used" => DeviceStatus::Used,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown device status {other:?}").into(),
                ));
            }
        })
    }
}

/// A device authorization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceRow {
    /// Hex SHA-256 of the device code.
    pub digest: String,
    /// The code the user types (stored normalized, without the dash).
    pub user_code: String,
    /// The client.
    pub client_id: ClientId,
    /// Scopes asked for.
    pub scopes: ScopeSet,
    /// The audience.
    pub resource: ResourceUri,
    /// When it was issued.
    pub created_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
    /// The polling interval in seconds (grows on `slow_down`).
    pub poll_interval: i64,
    /// The last poll.
    pub last_poll_at: Option<SystemTime>,
    /// Where it stands.
    pub status: DeviceStatus,
    /// Who approved or denied it.
    pub subject: Option<Subject>,
    /// The grant made on approval.
    pub grant_id: Option<String>,
}

impl DeviceRow {
    /// A pending authorization issued now.
    pub fn new(
        digest: String,
        user_code: String,
        client_id: ClientId,
        scopes: ScopeSet,
        resource: ResourceUri,
        expires_at: SystemTime,
        poll_interval: i64,
    ) -> DeviceRow {
        DeviceRow {
            digest,
            user_code,
            client_id,
            scopes,
            resource,
            created_at: SystemTime::now(),
            expires_at,
            poll_interval,
            last_poll_at: None,
            status: DeviceStatus::Pending,
            subject: None,
            grant_id: None,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<DeviceRow, sqlx::Error> {
        Ok(DeviceRow {
            digest: row.try_get("digest")?,
            user_code: row.try_get("user_code")?,
            client_id: parsed(row, "client_id")?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            resource: parsed(row, "resource")?,
            created_at: from_unix(row.try_get("created_at")?),
            expires_at: from_unix(row.try_get("expires_at")?),
            poll_interval: row.try_get("poll_interval")?,
            last_poll_at: row
                .try_get::<Option<i64>, _>("last_poll_at")?
                .map(from_unix),
            status: DeviceStatus::parse(&row.try_get::<String, _>("status")?)?,
            subject: crate::decode::parsed_opt(row, "subject")?,
            grant_id: row.try_get("grant_id")?,
        })
    }
}

macro_rules! columns {
    () => {
        "digest, user_code, client_id, scopes, resource, created_at, expires_at, poll_interval, last_poll_at, status, subject, grant_id"
    };
}

impl Store {
    /// Stores a device authorization; a taken user code is [`StoreError::Duplicate`].
    pub async fn insert_device(&self, d: &DeviceRow) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth_device_codes (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&d.digest)
        .bind(&d.user_code)
        .bind(d.client_id.as_str())
        .bind(d.scopes.to_string())
        .bind(d.resource.as_str())
        .bind(to_unix(d.created_at))
        .bind(to_unix(d.expires_at))
        .bind(d.poll_interval)
        .bind(d.last_poll_at.map(to_unix))
        .bind(d.status.as_str())
        .bind(d.subject.as_deref())
        .bind(&d.grant_id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert(e, crate::error::Kind::Client, "user code"))?;
        Ok(())
    }

    /// The authorization with this device-code digest.
    pub async fn find_device(&self, digest: &str) -> Result<Option<DeviceRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                columns!(),
                " FROM oauth_device_codes WHERE digest = $1"
            ),
            digest,
            DeviceRow::from_row,
        )
        .await
    }

    /// The authorization with this (normalized) user code.
    pub async fn find_device_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                columns!(),
                " FROM oauth_device_codes WHERE user_code = $1"
            ),
            user_code,
            DeviceRow::from_row,
        )
        .await
    }

    /// Records a poll at `now`, with the (possibly raised) interval.
    pub async fn device_polled(
        &self,
        digest: &str,
        now: SystemTime,
        poll_interval: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE oauth_device_codes SET last_poll_at = $1, poll_interval = $2 WHERE digest = $3",
        )
        .bind(to_unix(now))
        .bind(poll_interval)
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Settles a pending authorization: approved (with the grant) or denied.
    /// Returns `false` when it was no longer pending.
    pub async fn settle_device(
        &self,
        digest: &str,
        status: DeviceStatus,
        subject: &str,
        grant_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_device_codes SET status = $1, subject = $2, grant_id = $3
             WHERE digest = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(subject)
        .bind(grant_id)
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks an approved authorization used; `false` if it was not approved (or used already).
    pub async fn use_device(&self, digest: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_device_codes SET status = 'used' WHERE digest = $1 AND status = 'approved'",
        )
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
