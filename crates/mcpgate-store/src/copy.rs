//! `mcpgate store copy`: every row of one store into another (SQLite to
//! PostgreSQL, or back), in one transaction on the target, then verified:
//! the row counts of every table match, and every sealed value in the target
//! opens with the master key.

use sqlx::{AssertSqlSafe, Row as _};

use crate::federation::{login_aad, token_aad};
use crate::seal::MasterKey;
use crate::vault::{VaultError, open_b64, vault_aad};
use crate::{Store, StoreError, StoreUrl};

/// Every table mcpgate keeps (the migrations' bookkeeping excepted).
const TABLES: [&str; 22] = [
    "api_keys",
    "users",
    "oauth_clients",
    "oauth_grants",
    "oauth_codes",
    "oauth_refresh_tokens",
    "oauth_consents",
    "oauth_signing_keys",
    "oauth_device_codes",
    "oauth_sessions",
    "oauth_pending_consents",
    "resource_servers",
    "vault_secrets",
    "federated_identities",
    "federated_tokens",
    "federation_logins",
    "login_throttles",
    "dpop_jtis",
    "assertion_jtis",
    "rate_quotas",
    "audit_log",
    "audit_chain",
];

/// The tables that hold sealed values.
const SEALED_TABLES: [&str; 4] = [
    "vault_secrets",
    "federated_tokens",
    "federation_logins",
    "oauth_signing_keys",
];

/// One table's rows, as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Its rows in the source, and (verified equal) in the target.
    pub rows: u64,
}

/// What [`Store::copy_into`] copied and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Every table, in copy order.
    pub tables: Vec<TableCount>,
    /// Sealed values opened in the target with the master key.
    pub sealed_opened: u64,
}

impl Store {
    /// Copies every row of this store into `target` (schema up to date on
    /// both). Without a master key, a source with sealed values is refused. A target that holds any row is refused unless `replace`, which
    /// empties it first. All of it happens in one transaction on the target:
    /// a failure leaves it as it was. Then the counts are compared, and every
    /// sealed value of the target is opened with `master` (signing keys with
    /// `signing_key_aad(kid)`, as the authorization server seals them).
    pub async fn copy_into(
        &self,
        target: &Store,
        replace: bool,
        master: Option<&MasterKey>,
        signing_key_aad: &(dyn Fn(&str) -> Vec<u8> + Sync),
    ) -> Result<CopyReport, VaultError> {
        if master.is_none() {
            let mut sealed = 0;
            for t in SEALED_TABLES {
                sealed += self.count_rows(t).await?;
            }
            if sealed > 0 {
                return Err(VaultError::InvalidSecret(format!(
                    "the source holds {sealed} rows with sealed values and no master key was given: nothing was copied"
                )));
            }
        }
        if !replace {
            for t in TABLES {
                // audit_chain's one row comes with the schema: it counts once it has moved.
                let n = if t == "audit_chain" {
                    target.count_rows("audit_chain WHERE head_seq > 0").await?
                } else {
                    target.count_rows(t).await?
                };
                if n > 0 {
                    return Err(VaultError::Store(StoreError::NotEmpty {
                        location: target.url.to_string(),
                        table: t,
                        rows: n,
                    }));
                }
            }
        }
        let mut report = CopyReport::default();
        let mut tx = target.begin_write().await.map_err(StoreError::from)?;
        for t in TABLES {
            // Every table is emptied: audit_chain's one row comes from the migration.
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {t}")))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        for t in TABLES {
            let columns = target.columns(t).await?;
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let select = format!("SELECT {} FROM {t}", names.join(", "));
            let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            let insert = format!(
                "INSERT INTO {t} ({}) VALUES ({})",
                names.join(", "),
                placeholders.join(", ")
            );
            let rows = sqlx::query(AssertSqlSafe(select))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from)?;
            for row in &rows {
                let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
                for (i, (_, integer)) in columns.iter().enumerate() {
                    q = if *integer {
                        q.bind(row.try_get::<Option<i64>, _>(i).map_err(StoreError::from)?)
                    } else {
                        q.bind(
                            row.try_get::<Option<String>, _>(i)
                                .map_err(StoreError::from)?,
                        )
                    };
                }
                q.execute(&mut *tx).await.map_err(StoreError::from)?;
            }
            report.tables.push(TableCount {
                table: t,
                rows: rows.len() as u64,
            });
        }
        tx.commit().await.map_err(StoreError::from)?;
        for c in &report.tables {
            let there = target.count_rows(c.table).await?;
            if there != c.rows {
                return Err(VaultError::Store(StoreError::Corrupt(format!(
                    "after the copy, {} holds {there} rows in the target and {} in the source",
                    c.table, c.rows
                ))));
            }
        }
        if let Some(master) = master {
            report.sealed_opened = target.open_every_sealed(master, signing_key_aad).await?;
        }
        Ok(report)
    }

    /// How many rows `table` holds.
    async fn count_rows(&self, table: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `table`'s columns in order, each with whether it holds integers.
    async fn columns(&self, table: &str) -> Result<Vec<(String, bool)>, StoreError> {
        let sql = match self.url {
            StoreUrl::Sqlite(_) => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            StoreUrl::Postgres(_) => {
                "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
        };
        let rows = sqlx::query(sql).bind(table).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get("name")?;
            let ty: String = r.try_get("type")?;
            out.push((name, ty.to_ascii_uppercase().contains("INT")));
        }
        if out.is_empty() {
            return Err(StoreError::Corrupt(format!("the table {table} is missing")));
        }
        Ok(out)
    }

    /// Opens every sealed value with `master`; how many there were.
    pub async fn open_every_sealed(
        &self,
        master: &MasterKey,
        signing_key_aad: &(dyn Fn(&str) -> Vec<u8> + Sync),
    ) -> Result<u64, VaultError> {
        let mut n = 0;
        let what = |w: String| move || w.clone();
        let rows = sqlx::query("SELECT subject, upstream, sealed FROM vault_secrets")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
        for r in &rows {
            let (s, u, sealed): (String, String, String) = (
                r.try_get("subject").map_err(StoreError::from)?,
                r.try_get("upstream").map_err(StoreError::from)?,
                r.try_get("sealed").map_err(StoreError::from)?,
            );
            let w = format!("the vault secret of {s:?} for {u:?}");
            open_b64(master, &sealed, &vault_aad(&s, &u), what(w))?;
            n += 1;
        }
        let rows = sqlx::query(
            "SELECT subject, provider, access_sealed, refresh_sealed FROM federated_tokens",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from)?;
        for r in &rows {
            let s: String = r.try_get("subject").map_err(StoreError::from)?;
            let p: String = r.try_get("provider").map_err(StoreError::from)?;
            let w = format!("the {p} tokens of {s:?}");
            let access: String = r.try_get("access_sealed").map_err(StoreError::from)?;
            open_b64(
                master,
                &access,
                &token_aad(&s, &p, "access"),
                what(w.clone()),
            )?;
            n += 1;
            if let Some(refresh) = r
                .try_get::<Option<String>, _>("refresh_sealed")
                .map_err(StoreError::from)?
            {
                open_b64(master, &refresh, &token_aad(&s, &p, "refresh"), what(w))?;
                n += 1;
            }
        }
        let rows = sqlx::query("SELECT state_digest, provider, sealed FROM federation_logins")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
        for r in &rows {
            let (d, p, sealed): (String, String, String) = (
                r.try_get("state_digest").map_err(StoreError::from)?,
                r.try_get("provider").map_err(StoreError::from)?,
                r.try_get("sealed").map_err(StoreError::from)?,
            );
            open_b64(
                master,
                &sealed,
                &login_aad(&d, &p),
                what(format!("a {p} sign-in")),
            )?;
            n += 1;
        }
        let rows = sqlx::query("SELECT kid, sealed FROM oauth_signing_keys")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
        for r in &rows {
            let kid: String = r.try_get("kid").map_err(StoreError::from)?;
            let sealed: String = r.try_get("sealed").map_err(StoreError::from)?;
            let w = format!("signing key {kid:?}");
            open_b64(master, &sealed, &signing_key_aad(&kid), what(w))?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
