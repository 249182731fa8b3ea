//! Appending to the chain in one transaction, and the long-lived appender
//! the server's writer keeps so that a batch costs fewer round trips to the
//! database: no pool checkout and release check per batch, and, while no
//! other process appended since, no read of the head before linking.

use std::time::SystemTime;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection as _, Row as _};

use super::{AuditRecord, INSERT_ROWS, NewAuditRecord, chain_hash, multi_row_insert};
use crate::time::{from_unix, to_unix};
use crate::{Store, StoreError};

/// The chain's newest record, as this appender last wrote it.
#[derive(Debug, Clone)]
pub(super) struct Head {
    seq: i64,
    hash: String,
}

/// Appends batches for one writer, holding a connection between them.
///
/// It remembers the head it wrote last; the next batch links to it and moves
/// the head in one conditional `UPDATE` that only applies if the head is still
/// that one. If another process (a CLI command, another replica) appended in
/// between, that `UPDATE` changes nothing and the batch is linked to the head
/// read back, as [`Store::audit_append_all`] does: the chain is the same
/// either way. After an error the connection goes back to the pool (whose
/// release check closes it if SQLite left it inside a transaction) and the
/// next batch starts afresh.
#[derive(Debug)]
pub struct AuditAppender {
    store: Store,
    conn: Option<PoolConnection<Any>>,
    head: Option<Head>,
}

impl AuditAppender {
    pub(super) fn new(store: Store) -> AuditAppender {
        AuditAppender {
            store,
            conn: None,
            head: None,
        }
    }

    /// Appends `records` in order, each linked to the one before, in one
    /// transaction: all are written or none.
    pub async fn append(
        &mut self,
        records: Vec<NewAuditRecord>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.store.pool.acquire().await?),
        };
        let postgres = self.store.url.is_postgres();
        let written = append(conn, postgres, &mut self.head, records).await;
        if written.is_err() {
            self.conn = None;
        }
        written
    }
}

/// Appends `records` in one transaction on `conn`, a PostgreSQL connection
/// if `postgres`, else SQLite. `known` is the head this caller wrote last
/// (taken; set again on success).
pub(super) async fn append(
    conn: &mut AnyConnection,
    postgres: bool,
    known: &mut Option<Head>,
    records: Vec<NewAuditRecord>,
) -> Result<Vec<AuditRecord>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let at = to_unix(SystemTime::now());
    let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
    let mut tx = conn.begin().await?;
    // Linked after the head this caller knows, or the records back when it
    // knows none or the head moved.
    let linked = match known.take() {
        None => Err(records),
        Some(head) => {
            let (out, new_head) = link(head.seq, head.hash.clone(), at, records);
            // A write first, as below: it takes SQLite's write lock before
            // anything is read, so no other appender can move the head meanwhile.
            let moved = sqlx::query(
            "UPDATE audit_chain SET head_seq = $1, head_hash = $2 WHERE id = 1 AND head_seq = $3 AND head_hash = $4",
        )
        .bind(new_head.seq)
        .bind(&new_head.hash)
        .bind(head.seq)
        .bind(&head.hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
            if moved == 1 {
                Ok((out, new_head))
            } else {
                Err(out.into_iter().map(|w| w.event).collect())
            }
        }
    };
    let (out, head, head_moved) = match linked {
        Ok((out, head)) => (out, head, true),
        Err(records) => {
            // Writing first takes SQLite's write lock before anything is read, so
            // two processes appending cannot both link to the same head.
            let row = sqlx::query(
                "UPDATE audit_chain SET head_seq = head_seq + $1 WHERE id = 1 RETURNING head_seq, head_hash",
            )
            .bind(n)
            .fetch_one(&mut *tx)
            .await?;
            let last_seq: i64 = row.try_get("head_seq")?;
            let prev: String = row.try_get("head_hash")?;
            let (out, head) = link(last_seq - n, prev, at, records);
            (out, head, false)
        }
    };
    // One statement per INSERT_ROWS records: a statement's round trip
    // through the driver costs more than a row.
    for chunk in out.chunks(INSERT_ROWS) {
        // Placeholders written out per backend (sqlx's query builder would
        // write SQLite's `?` for PostgreSQL too through the Any driver).
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(multi_row_insert(chunk.len(), postgres)));
        for w in chunk {
            let r = &w.event;
            insert = insert
                .bind(w.seq)
                .bind(at)
                .bind(&r.kind)
                .bind(&r.subject)
                .bind(&r.client_id)
                .bind(&r.upstream)
                .bind(&r.tool)
                .bind(&r.outcome)
                .bind(&r.detail)
                .bind(&w.prev_hash)
                .bind(&w.hash);
        }
        insert.execute(&mut *tx).await?;
    }
    if !head_moved {
        sqlx::query("UPDATE audit_chain SET head_hash = $1 WHERE id = 1")
            .bind(&head.hash)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    *known = Some(head);
    Ok(out)
}

/// Links `records` after the record `seq` whose hash is `prev`: the records
/// with their numbers and hashes, and the new head.
fn link(
    seq: i64,
    mut prev: String,
    at: i64,
    records: Vec<NewAuditRecord>,
) -> (Vec<AuditRecord>, Head) {
    let mut out = Vec::with_capacity(records.len());
    let mut last = seq;
    for (seq, r) in (seq + 1..).zip(records) {
        let hash = chain_hash(seq, at, &r, &prev);
        out.push(AuditRecord {
            seq,
            at: from_unix(at),
            event: r,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
        last = seq;
    }
    (
        out,
        Head {
            seq: last,
            hash: prev,
        },
    )
}
