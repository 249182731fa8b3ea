//! Grants, and the authorization codes and refresh tokens issued from them.
//!
//! A grant is created with its code; the code's single use, the refresh
//! token's rotation and the revocation of a whole grant are single statements
//! (or one transaction), so two concurrent redemptions can never both win.

use mcpgate_types::{ClientId, RedirectUri, ResourceUri, ScopeSet, Subject};
use std::time::{Duration, SystemTime};

use crate::Row as SqliteRow;
use sqlx::{AssertSqlSafe, Row as _};

use crate::Store;
use crate::api_keys::{decode_subject, split_scopes};
use crate::decode::parsed;
use crate::error::StoreError;
use crate::time::{from_unix, to_unix};

/// What one user allowed one client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantRow {
    /// Random id (the `gid` claim of its access tokens).
    pub id: String,
    /// The client.
    pub client_id: ClientId,
    /// The user (or, for client credentials, the client).
    pub subject: Subject,
    /// The scopes granted (refreshes may narrow, never widen).
    pub scopes: ScopeSet,
    /// The audience of its access tokens.
    pub resource: ResourceUri,
    /// When it was granted.
    pub created_at: SystemTime,
    /// When it last issued a token.
    pub last_used_at: SystemTime,
    /// The absolute end of its refresh tokens.
    pub expires_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
    /// Why it was revoked.
    pub revoked_why: Option<String>,
    /// The thumbprint of the DPoP key its refresh tokens are bound to.
    pub dpop_jkt: Option<String>,
}

impl GrantRow {
    /// A new grant created now.
    pub fn new(
        id: String,
        client_id: ClientId,
        subject: Subject,
        scopes: ScopeSet,
        resource: ResourceUri,
        expires_at: SystemTime,
    ) -> GrantRow {
        let now = SystemTime::now();
        GrantRow {
            id,
            client_id,
            subject,
            scopes,
            resource,
            created_at: now,
            last_used_at: now,
            expires_at,
            revoked_at: None,
            revoked_why: None,
            dpop_jkt: None,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<GrantRow, sqlx::Error> {
        Ok(GrantRow {
            id: row.try_get("id")?,
            client_id: parsed(row, "client_id")?,
            subject: decode_subject(row.try_get("subject")?)?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            resource: parsed(row, "resource")?,
            created_at: from_unix(row.try_get("created_at")?),
            last_used_at: from_unix(row.try_get("last_used_at")?),
            expires_at: from_unix(row.try_get("expires_at")?),
            revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(from_unix),
            revoked_why: row.try_get("revoked_why")?,
            dpop_jkt: row.try_get("dpop_jkt")?,
        })
    }

    /// Whether tokens from it are valid at `now`.
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// An authorization code as stored (its digest, never the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// Hex SHA-256 of the code.
    pub digest: String,
    /// The grant it belongs to.
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI it was sent to (the token request must repeat it).
    pub redirect_uri: RedirectUri,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Scopes granted.
    pub scopes: ScopeSet,
    /// The audience.
    pub resource: ResourceUri,
    /// The user.
    pub subject: Subject,
    /// The OpenID `nonce`, if one was sent.
    pub nonce: Option<String>,
    /// When it was issued.
    pub created_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
}

impl CodeRow {
    fn from_row(row: &SqliteRow) -> Result<CodeRow, sqlx::Error> {
        Ok(CodeRow {
            digest: row.try_get("digest")?,
            grant_id: row.try_get("grant_id")?,
            client_id: parsed(row, "client_id")?,
            redirect_uri: parsed(row, "redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            resource: parsed(row, "resource")?,
            subject: decode_subject(row.try_get("subject")?)?,
            nonce: row.try_get("nonce")?,
            created_at: from_unix(row.try_get("created_at")?),
            expires_at: from_unix(row.try_get("expires_at")?),
        })
    }
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeOutcome {
    /// First use: it is now spent.
    Fresh(CodeRow),
    /// It was used before: a replay.
    Replayed(CodeRow),
    /// No such code.
    Unknown,
}

/// A refresh token as stored (its digest, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshRow {
    /// Hex SHA-256 of the token.
    pub digest: String,
    /// The grant it belongs to.
    pub grant_id: String,
    /// The token it replaced.
    pub parent_digest: Option<String>,
    /// Its scopes (a refresh keeps them, even when it narrows the access token).
    pub scopes: ScopeSet,
    /// When it was issued.
    pub created_at: SystemTime,
    /// When it expires (idle limit, capped by the grant's).
    pub expires_at: SystemTime,
    /// When it was exchanged for a successor.
    pub rotated_at: Option<SystemTime>,
}

impl RefreshRow {
    /// A new token issued now.
    pub fn new(
        digest: String,
        grant_id: String,
        parent_digest: Option<String>,
        scopes: ScopeSet,
        expires_at: SystemTime,
    ) -> RefreshRow {
        RefreshRow {
            digest,
            grant_id,
            parent_digest,
            scopes,
            created_at: SystemTime::now(),
            expires_at,
            rotated_at: None,
        }
    }

    fn from_row(row: &SqliteRow) -> Result<RefreshRow, sqlx::Error> {
        Ok(RefreshRow {
            digest: row.try_get("digest")?,
            grant_id: row.try_get("grant_id")?,
            parent_digest: row.try_get("parent_digest")?,
            scopes: split_scopes(&row.try_get::<String, _>("scopes")?),
            created_at: from_unix(row.try_get("created_at")?),
            expires_at: from_unix(row.try_get("expires_at")?),
            rotated_at: row.try_get::<Option<i64>, _>("rotated_at")?.map(from_unix),
        })
    }
}

macro_rules! grant_columns {
    () => {
        "id, client_id, subject, scopes, resource, created_at, last_used_at, expires_at, revoked_at, revoked_why, dpop_jkt"
    };
}
macro_rules! code_columns {
    () => {
        "digest, grant_id, client_id, redirect_uri, code_challenge, scopes, resource, subject, nonce, created_at, expires_at"
    };
}
macro_rules! refresh_columns {
    () => {
        "digest, grant_id, parent_digest, scopes, created_at, expires_at, rotated_at"
    };
}

impl Store {
    /// Records a grant.
    pub async fn insert_grant(&self, g: &GrantRow) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth_grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&g.id)
        .bind(g.client_id.as_str())
        .bind(g.subject.as_str())
        .bind(g.scopes.to_string())
        .bind(g.resource.as_str())
        .bind(to_unix(g.created_at))
        .bind(to_unix(g.last_used_at))
        .bind(to_unix(g.expires_at))
        .bind(g.revoked_at.map(to_unix))
        .bind(&g.revoked_why)
        .bind(&g.dpop_jkt)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The grant with this id (revoked ones included).
    pub async fn find_grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                grant_columns!(),
                " FROM oauth_grants WHERE id = $1"
            ),
            id,
            GrantRow::from_row,
        )
        .await
    }

    /// A user's grants that are still active, newest first.
    pub async fn list_grants_for(
        &self,
        subject: &str,
        now: SystemTime,
    ) -> Result<Vec<GrantRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM oauth_grants
             WHERE subject = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY last_used_at DESC, id"
        ))
        .bind(subject)
        .bind(to_unix(now))
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, GrantRow::from_row)
    }

    /// Revokes a grant: its refresh tokens stop working, and its access tokens
    /// with the next verification. Returns whether it was active.
    pub async fn revoke_grant(&self, id: &str, why: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_grants SET revoked_at = $1, revoked_why = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(to_unix(SystemTime::now()))
        .bind(why)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Binds a grant's refresh tokens to the DPoP key `jkt`, unless it is
    /// bound already. Returns the key it is bound to now.
    pub async fn bind_grant_dpop(&self, id: &str, jkt: &str) -> Result<String, StoreError> {
        sqlx::query("UPDATE oauth_grants SET dpop_jkt = $1 WHERE id = $2 AND dpop_jkt IS NULL")
            .bind(jkt)
            .bind(id)
            .execute(&self.pool)
            .await?;
        let bound: Option<Option<String>> =
            sqlx::query_scalar("SELECT dpop_jkt FROM oauth_grants WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(bound.flatten().unwrap_or_else(|| jkt.to_owned()))
    }

    /// Records that a grant issued a token now.
    pub async fn touch_grant(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2")
            .bind(to_unix(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores an authorization code (its digest).
    pub async fn insert_code(&self, c: &CodeRow) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth_codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&c.digest)
        .bind(&c.grant_id)
        .bind(c.client_id.as_str())
        .bind(c.redirect_uri.as_str())
        .bind(&c.code_challenge)
        .bind(c.scopes.to_string())
        .bind(c.resource.as_str())
        .bind(c.subject.as_str())
        .bind(&c.nonce)
        .bind(to_unix(c.created_at))
        .bind(to_unix(c.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The code with this digest, spent or not, without spending it: the
    /// authserver checks the client and PKCE first, so that a request that
    /// fails them never counts as a use (and never makes the real
    /// client's redemption look like a replay).
    pub async fn find_code(&self, digest: &str) -> Result<Option<CodeRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                code_columns!(),
                " FROM oauth_codes WHERE digest = $1"
            ),
            digest,
            CodeRow::from_row,
        )
        .await
    }

    /// Spends the code with this digest: the first call gets
    /// [`CodeOutcome::Fresh`], every later one [`CodeOutcome::Replayed`].
    pub async fn redeem_code(&self, digest: &str) -> Result<CodeOutcome, StoreError> {
        let first = sqlx::query(
            "UPDATE oauth_codes SET used_at = $1 WHERE digest = $2 AND used_at IS NULL",
        )
        .bind(to_unix(SystemTime::now()))
        .bind(digest)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        let row = sqlx::query(concat!(
            "SELECT ",
            code_columns!(),
            " FROM oauth_codes WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row.as_ref().map(CodeRow::from_row).transpose()? {
            Some(c) if first => CodeOutcome::Fresh(c),
            Some(c) => CodeOutcome::Replayed(c),
            None => CodeOutcome::Unknown,
        })
    }

    /// Looks a code up without spending it: [`CodeOutcome::Fresh`] while
    /// unused, [`CodeOutcome::Replayed`] once spent. Spend it with
    /// [`Store::spend_code`].
    pub async fn peek_code(&self, digest: &str) -> Result<CodeOutcome, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            code_columns!(),
            ", used_at FROM oauth_codes WHERE digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(CodeOutcome::Unknown);
        };
        let used: Option<i64> = row.try_get("used_at")?;
        let code = CodeRow::from_row(&row)?;
        Ok(if used.is_some() {
            CodeOutcome::Replayed(code)
        } else {
            CodeOutcome::Fresh(code)
        })
    }

    /// Spends the code and stores the refresh token it bought, in one
    /// transaction: both happen or neither (a storage failure leaves the code
    /// unspent, so the client can retry). Returns `false`, storing nothing,
    /// when the code was spent meanwhile (a concurrent redemption: a replay).
    pub async fn spend_code(
        &self,
        digest: &str,
        refresh: Option<&RefreshRow>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let won = sqlx::query(
            "UPDATE oauth_codes SET used_at = $1 WHERE digest = $2 AND used_at IS NULL",
        )
        .bind(to_unix(SystemTime::now()))
        .bind(digest)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !won {
            return Ok(false);
        }
        if let Some(r) = refresh {
            insert_refresh_row(&mut *tx, r).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a refresh token (its digest).
    pub async fn insert_refresh(&self, r: &RefreshRow) -> Result<(), StoreError> {
        insert_refresh_row(&self.pool, r).await
    }

    /// The refresh token with this digest.
    pub async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                refresh_columns!(),
                " FROM oauth_refresh_tokens WHERE digest = $1"
            ),
            digest,
            RefreshRow::from_row,
        )
        .await
    }

    /// Rotates the refresh token `old` to `new`, deciding under a lock on
    /// `old`'s row (`BEGIN IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on
    /// PostgreSQL) so that two requests with the same token, on one process or
    /// on two replicas, are ordered:
    ///
    /// - not yet rotated: it is now, and `new` is stored ([`Rotation::Rotated`]);
    /// - rotated less than `grace` ago (and `grace` is not zero): `new` is
    ///   stored as a sibling ([`Rotation::Sibling`]);
    /// - rotated longer ago, or `grace` is zero: nothing is stored
    ///   ([`Rotation::Reused`]; the caller revokes the grant);
    /// - no such token: [`Rotation::Unknown`].
    ///
    /// When `new` is stored, its grant is marked used now (`last_used_at`), in
    /// the same transaction.
    ///
    /// On PostgreSQL the common case, a token not yet rotated, is one statement
    /// (one round trip, one commit): a conditional update, which takes the same
    /// row lock `FOR UPDATE` would and, when a concurrent rotation committed
    /// first, sees its `rotated_at` and matches nothing. Only then, or for an
    /// unknown token, does the locked transaction below decide.
    pub async fn rotate_refresh(
        &self,
        old: &str,
        new: &RefreshRow,
        grace: Duration,
        now: SystemTime,
    ) -> Result<Rotation, StoreError> {
        if self.url().is_postgres() && rotate_unrotated(&self.pool, old, new, now).await? {
            return Ok(Rotation::Rotated);
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT rotated_at FROM oauth_refresh_tokens WHERE digest = $1{}",
            self.for_update()
        )))
        .bind(old)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Rotation::Unknown);
        };
        let outcome = match row.try_get::<Option<i64>, _>("rotated_at")? {
            None => {
                sqlx::query("UPDATE oauth_refresh_tokens SET rotated_at = $1 WHERE digest = $2")
                    .bind(to_unix(now))
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                Rotation::Rotated
            }
            Some(at) if !grace.is_zero() && within(at, now, grace) => Rotation::Sibling,
            Some(at) => {
                tx.rollback().await?;
                return Ok(Rotation::Reused {
                    rotated_at: from_unix(at),
                });
            }
        };
        insert_refresh_row(&mut *tx, new).await?;
        sqlx::query("UPDATE oauth_grants SET last_used_at = $1 WHERE id = $2")
            .bind(to_unix(now))
            .bind(&new.grant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// PostgreSQL's one-statement rotation of a token not yet rotated: marks
/// `old` rotated, stores `new` and marks the grant used, or does nothing and
/// answers `false` (already rotated, or no such token).
async fn rotate_unrotated(
    pool: &sqlx::AnyPool,
    old: &str,
    new: &RefreshRow,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let stored = bind_refresh_row(
        sqlx::query(concat!(
            "WITH rotated AS (UPDATE oauth_refresh_tokens SET rotated_at = $8 \
         WHERE digest = $9 AND rotated_at IS NULL RETURNING grant_id), \
         touched AS (UPDATE oauth_grants SET last_used_at = $8 \
         WHERE id IN (SELECT grant_id FROM rotated)) \
         INSERT INTO oauth_refresh_tokens (",
            refresh_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7 FROM rotated"
        )),
        new,
    )
    .bind(to_unix(now))
    .bind(old)
    .execute(pool)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// Whether `now` is no more than `grace` after `at`, counted in whole
/// seconds as the times are stored.
fn within(at: i64, now: SystemTime, grace: Duration) -> bool {
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    to_unix(now).saturating_sub(at) <= grace
}

/// What [`Store::rotate_refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was current: it is rotated and its successor stored.
    Rotated,
    /// The token was rotated within the grace window: a sibling successor is stored.
    Sibling,
    /// The token was rotated before the grace window (or there is none): a
    /// reuse; nothing is stored.
    Reused {
        /// When it was rotated.
        rotated_at: SystemTime,
    },
    /// No such token.
    Unknown,
}

/// The one INSERT of a refresh-token row, on the pool or inside a transaction
/// (code redemption and rotation store theirs atomically with another write).
async fn insert_refresh_row<'e, E>(exec: E, r: &RefreshRow) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let insert = sqlx::query(concat!(
        "INSERT INTO oauth_refresh_tokens (",
        refresh_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ));
    bind_refresh_row(insert, r).execute(exec).await?;
    Ok(())
}

/// Binds `r` to `$1`…`$7` in the order of `refresh_columns!()`.
fn bind_refresh_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    r: &'q RefreshRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&r.digest)
        .bind(&r.grant_id)
        .bind(&r.parent_digest)
        .bind(r.scopes.to_string())
        .bind(to_unix(r.created_at))
        .bind(to_unix(r.expires_at))
        .bind(r.rotated_at.map(to_unix))
}
