//! Master key rotation: every sealed value moves to the new key in one
//! transaction, or nothing changes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::Row as _;

use super::{VaultError, open_b64, seal_b64, vault_aad};
use crate::Store;
use crate::federation::token_aad;
use crate::seal::MasterKey;

/// How many values one rotation re-sealed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotated {
    /// Vault secrets.
    pub vault_secrets: u64,
    /// Federated IdP tokens (access and refresh tokens count once per row).
    pub federated_tokens: u64,
    /// The authorization server's signing keys.
    pub signing_keys: u64,
    /// Sign-ins in flight toward an IdP, dropped (the user starts again).
    pub dropped_logins: u64,
}

impl Store {
    /// Re-seals every value sealed under `old` under `new`, atomically: if any
    /// value does not open with `old`, the error names it and no row changes.
    /// Signing keys are sealed by the authorization server with
    /// `signing_key_aad(kid)` as additional data.
    pub async fn rotate_master_key(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        signing_key_aad: &(dyn Fn(&str) -> Vec<u8> + Sync),
    ) -> Result<Rotated, VaultError> {
        if old.id() == new.id() {
            return Err(VaultError::InvalidSecret(
                "the new master key has the same id as the current one; generate a fresh key"
                    .into(),
            ));
        }
        let mut out = Rotated::default();
        let mut tx = self.pool.begin().await?;
        // A write first, so this transaction holds the write lock before it
        // reads what it will rewrite.
        out.dropped_logins = sqlx::query("DELETE FROM federation_logins")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let new_id = i64::from(new.id());

        let rows = sqlx::query("SELECT subject, upstream, sealed FROM vault_secrets")
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let (subject, upstream, sealed): (String, String, String) = (
                r.try_get("subject")?,
                r.try_get("upstream")?,
                r.try_get("sealed")?,
            );
            let aad = vault_aad(&subject, &upstream);
            let what = || {
                format!(
                    "the vault secret of {subject:?} for upstream {upstream:?} (nothing was changed)"
                )
            };
            let plain = open_b64(old, &sealed, &aad, what)?;
            let resealed = seal_b64(new, &plain, &aad, what)?;
            sqlx::query(
                "UPDATE vault_secrets SET sealed = $1, key_id = $2 WHERE subject = $3 AND upstream = $4",
            )
            .bind(resealed)
            .bind(new_id)
            .bind(&subject)
            .bind(&upstream)
            .execute(&mut *tx)
            .await?;
            out.vault_secrets += 1;
        }

        let rows = sqlx::query(
            "SELECT subject, provider, access_sealed, refresh_sealed FROM federated_tokens",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let subject: String = r.try_get("subject")?;
            let provider: String = r.try_get("provider")?;
            let what = || format!("the {provider} tokens of {subject:?} (nothing was changed)");
            let aad = token_aad(&subject, &provider, "access");
            let access = open_b64(old, &r.try_get::<String, _>("access_sealed")?, &aad, what)?;
            let access = seal_b64(new, &access, &aad, what)?;
            let refresh = match r.try_get::<Option<String>, _>("refresh_sealed")? {
                Some(s) => {
                    let aad = token_aad(&subject, &provider, "refresh");
                    let plain = open_b64(old, &s, &aad, what)?;
                    Some(seal_b64(new, &plain, &aad, what)?)
                }
                None => None,
            };
            sqlx::query(
                "UPDATE federated_tokens SET access_sealed = $1, refresh_sealed = $2, key_id = $3
                 WHERE subject = $4 AND provider = $5",
            )
            .bind(access)
            .bind(refresh)
            .bind(new_id)
            .bind(&subject)
            .bind(&provider)
            .execute(&mut *tx)
            .await?;
            out.federated_tokens += 1;
        }

        let rows = sqlx::query("SELECT kid, sealed FROM oauth_signing_keys")
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let kid: String = r.try_get("kid")?;
            let what = || format!("signing key {kid:?} (nothing was changed)");
            let aad = signing_key_aad(&kid);
            let plain = open_b64(old, &r.try_get::<String, _>("sealed")?, &aad, what)?;
            let sealed = new.seal(&plain, &aad).map_err(|source| VaultError::Seal {
                what: what(),
                source,
            })?;
            sqlx::query("UPDATE oauth_signing_keys SET sealed = $1 WHERE kid = $2")
                .bind(STANDARD.encode(sealed))
                .bind(&kid)
                .execute(&mut *tx)
                .await?;
            out.signing_keys += 1;
        }
        tx.commit().await?;
        Ok(out)
    }
}
