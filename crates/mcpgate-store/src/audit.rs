//! The audit trail: security events, append-only and hash-chained.
//!
//! A record's hash is the SHA-256 of its canonical form, a JSON array of its
//! fields in a fixed order ending with the previous record's hash. The
//! `audit_chain` row keeps the newest record's hash (a deleted newest record
//! is noticed) and the last pruned one's (the oldest kept record still links
//! after `prune`). [`Store::audit_verify`] walks the chain and names the first
//! record that was edited or is missing. This detects tampering with the
//! database file by anyone who does not also recompute every later hash; it is
//! not a signature.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::Row as SqliteRow;
use sha2::{Digest, Sha256};
use sqlx::Row as _;

use crate::time::{from_unix, to_unix};
use crate::{Store, StoreError};

/// Records per INSERT statement (11 parameters each, far under SQLite's limit).
const INSERT_ROWS: usize = 64;

/// A record to append. `detail` is a JSON object's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewAuditRecord {
    /// The event kind (`sign_in`, `tool_called`, …).
    pub kind: String,
    /// Who. Text, not a `Subject`: a failed sign-in records the name as
    /// typed (cleaned), which no one vouched for and may be empty, and the
    /// hash chain covers the stored text byte for byte, so a record must read
    /// back whatever it holds.
    pub subject: Option<String>,
    /// Through which OAuth client.
    pub client_id: Option<String>,
    /// Which upstream.
    pub upstream: Option<String>,
    /// Which tool.
    pub tool: Option<String>,
    /// How it ended.
    pub outcome: Option<String>,
    /// The rest, as a JSON object (never a secret).
    pub detail: String,
}

impl NewAuditRecord {
    /// A record of this kind with no detail.
    pub fn new(kind: impl Into<String>) -> Self {
        NewAuditRecord {
            kind: kind.into(),
            detail: "{}".to_owned(),
            ..Default::default()
        }
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Its position in the chain, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: SystemTime,
    /// What was appended.
    pub event: NewAuditRecord,
    /// The previous record's hash (hex).
    pub prev_hash: String,
    /// This record's hash (hex).
    pub hash: String,
}

impl AuditRecord {
    fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(AuditRecord {
            seq: r.try_get("seq")?,
            at: from_unix(r.try_get("at")?),
            event: NewAuditRecord {
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                client_id: r.try_get("client_id")?,
                upstream: r.try_get("upstream")?,
                tool: r.try_get("tool")?,
                outcome: r.try_get("outcome")?,
                detail: r.try_get("detail")?,
            },
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }

    /// The hash this record's fields give; differs from `hash` when edited.
    pub fn computed_hash(&self) -> String {
        chain_hash(self.seq, to_unix(self.at), &self.event, &self.prev_hash)
    }
}

/// `INSERT INTO audit_log … VALUES (…), (…)` for `rows` records (1 to
/// [`INSERT_ROWS`]), written once per size and backend and kept: the usual
/// batch of one would otherwise build its statement's text every time.
///
/// PostgreSQL gets numbered `$N` placeholders. SQLite gets anonymous `?`:
/// for a named one, sqlx asks SQLite for each parameter's name, a walk of the
/// statement's list of names, so binding a full 64-row statement (704
/// parameters) took about a quarter of a million steps.
fn multi_row_insert(rows: usize, postgres: bool) -> Cow<'static, str> {
    static SQLITE: [OnceLock<String>; INSERT_ROWS] = [const { OnceLock::new() }; INSERT_ROWS];
    static POSTGRES: [OnceLock<String>; INSERT_ROWS] = [const { OnceLock::new() }; INSERT_ROWS];
    let texts = if postgres { &POSTGRES } else { &SQLITE };
    match texts.get(rows.saturating_sub(1)) {
        Some(text) => Cow::Borrowed(text.get_or_init(|| insert_text(rows, postgres)).as_str()),
        // Callers chunk by INSERT_ROWS; a larger count still gets its text.
        None => Cow::Owned(insert_text(rows, postgres)),
    }
}

fn insert_text(rows: usize, postgres: bool) -> String {
    use std::fmt::Write as _;
    const COLUMNS: usize = 11;
    let mut sql = String::from(
        "INSERT INTO audit_log (seq, at, kind, subject, client_id, upstream, tool, outcome, detail, prev_hash, hash) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            if postgres {
                let _ = write!(sql, "${}", row * COLUMNS + col + 1);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// The SHA-256 of a record's canonical form: a JSON array, fields in a fixed
/// order (serde_json writes arrays of strings and numbers one way only).
/// Serialized straight from a tuple into one buffer: the same bytes as a
/// `serde_json::json!` array, without building a `Value` per field.
fn chain_hash(seq: i64, at: i64, r: &NewAuditRecord, prev: &str) -> String {
    let canonical = (
        seq,
        at,
        &r.kind,
        &r.subject,
        &r.client_id,
        &r.upstream,
        &r.tool,
        &r.outcome,
        &r.detail,
        prev,
    );
    let mut text = Vec::with_capacity(256 + r.detail.len());
    // Writing strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut text, &canonical);
    hex(&Sha256::digest(&text))
}

/// Lower-case hex, without the formatting machinery per byte.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AuditFilter {
    /// At or after this time.
    pub since: Option<SystemTime>,
    /// This subject only.
    pub subject: Option<String>,
    /// This kind only.
    pub kind: Option<String>,
}

impl AuditFilter {
    /// No filter.
    pub fn new(since: Option<SystemTime>, subject: Option<String>, kind: Option<String>) -> Self {
        AuditFilter {
            since,
            subject,
            kind,
        }
    }
}

/// What `verify` found wrong first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainBreak {
    /// The record's fields no longer give its hash.
    Edited {
        /// The record.
        seq: i64,
    },
    /// The record's link does not match the record before it: that one (or a
    /// run of them) was deleted, or rewritten with its hash recomputed.
    Broken {
        /// The record whose link does not match.
        seq: i64,
        /// The first missing sequence number, when numbers are skipped.
        missing_from: Option<i64>,
    },
    /// The newest records are gone (the chain's head names a later one).
    TailMissing {
        /// The last record present.
        last: i64,
        /// The newest record the chain recorded.
        head: i64,
    },
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Edited { seq } => {
                write!(
                    f,
                    "record {seq} was edited: its fields do not give its hash"
                )
            }
            ChainBreak::Broken {
                seq,
                missing_from: Some(from),
            } if from + 1 == *seq => write!(
                f,
                "record {from} was deleted: record {seq} links to a record that is not there"
            ),
            ChainBreak::Broken {
                seq,
                missing_from: Some(from),
            } => write!(
                f,
                "records {from} to {} were deleted: record {seq} links to a record that is not there",
                seq - 1
            ),
            ChainBreak::Broken {
                seq,
                missing_from: None,
            } => write!(
                f,
                "record {} was rewritten: record {seq} does not link to it",
                seq - 1
            ),
            ChainBreak::TailMissing { last, head } if last + 1 == *head => {
                write!(f, "record {head} (the newest) was deleted")
            }
            ChainBreak::TailMissing { last, head } => {
                write!(
                    f,
                    "records {} to {head} (the newest) were deleted",
                    last + 1
                )
            }
        }
    }
}

/// The result of [`Store::audit_verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditVerification {
    /// Records checked.
    pub checked: u64,
    /// The first problem, if any.
    pub broken: Option<ChainBreak>,
}

impl Store {
    /// Appends one record, linked to the newest.
    pub async fn audit_append(&self, r: &NewAuditRecord) -> Result<AuditRecord, StoreError> {
        let mut out = self.audit_append_all(std::slice::from_ref(r)).await?;
        out.pop()
            .ok_or_else(|| StoreError::from(sqlx::Error::RowNotFound))
    }

    /// Appends records in order, each linked to the one before, in one
    /// transaction: all are written or none (the server's writer batches what
    /// queued while the previous batch was written).
    pub async fn audit_append_all(
        &self,
        records: &[NewAuditRecord],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_append_owned(records.to_vec()).await
    }

    /// [`Store::audit_append_all`] for records the caller gives up: they move
    /// into the result instead of being copied.
    pub async fn audit_append_owned(
        &self,
        records: Vec<NewAuditRecord>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        appender::append(&mut conn, self.url.is_postgres(), &mut None, records).await
    }

    /// An appender for one long-lived writer (the server's): it keeps a
    /// connection and the chain's head between batches (see [`AuditAppender`]).
    pub fn audit_appender(&self) -> AuditAppender {
        AuditAppender::new(self.clone())
    }

    /// Records matching `filter`, oldest first.
    pub async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE at >= $1 AND ($2 IS NULL OR subject = $3) \
             AND ($4 IS NULL OR kind = $5) ORDER BY seq",
        )
        .bind(filter.since.map_or(i64::MIN, to_unix))
        .bind(&filter.subject)
        .bind(&filter.subject)
        .bind(&filter.kind)
        .bind(&filter.kind)
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, AuditRecord::from_row)
    }

    /// Walks the whole chain and reports the first record edited or missing.
    pub async fn audit_verify(&self) -> Result<AuditVerification, StoreError> {
        let ends =
            sqlx::query("SELECT head_seq, pruned_seq, pruned_hash FROM audit_chain WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        let head: i64 = ends.try_get("head_seq")?;
        let mut expect_seq: i64 = ends.try_get::<i64, _>("pruned_seq")? + 1;
        let mut expect_prev: String = ends.try_get("pruned_hash")?;
        let records = self.audit_list(&AuditFilter::default()).await?;
        let mut checked = 0;
        for r in &records {
            if r.computed_hash() != r.hash {
                return Ok(AuditVerification {
                    checked,
                    broken: Some(ChainBreak::Edited { seq: r.seq }),
                });
            }
            if r.prev_hash != expect_prev || r.seq != expect_seq {
                return Ok(AuditVerification {
                    checked,
                    broken: Some(ChainBreak::Broken {
                        seq: r.seq,
                        missing_from: (r.seq > expect_seq).then_some(expect_seq),
                    }),
                });
            }
            expect_prev = r.hash.clone();
            expect_seq = r.seq + 1;
            checked += 1;
        }
        let broken = (expect_seq <= head).then_some(ChainBreak::TailMissing {
            last: expect_seq - 1,
            head,
        });
        Ok(AuditVerification { checked, broken })
    }

    /// Deletes the records written before `before`, and remembers the last
    /// one deleted so that the chain still verifies. Returns how many went.
    pub async fn audit_prune(&self, before: SystemTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locks first (see audit_append).
        sqlx::query("UPDATE audit_chain SET pruned_seq = pruned_seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let last =
            sqlx::query("SELECT seq, hash FROM audit_log WHERE at < $1 ORDER BY seq DESC LIMIT 1")
                .bind(to_unix(before))
                .fetch_optional(&mut *tx)
                .await?;
        let Some(last) = last else {
            return Ok(0);
        };
        let seq: i64 = last.try_get("seq")?;
        let hash: String = last.try_get("hash")?;
        let gone = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE audit_chain SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone)
    }
}

mod appender;
pub use appender::AuditAppender;

#[cfg(test)]
mod tests;
