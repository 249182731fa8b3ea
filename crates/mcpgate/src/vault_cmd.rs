//! The per-user credential vault in the binary: `mcpgate vault rotate-key`,
//! and the vault as the gateway's source of each user's own upstream secret
//! (`kind = "vault"` credentials).
//!
//! Rotation re-seals every sealed value (vault secrets, federated IdP tokens,
//! signing keys) under a fresh master key in one database transaction. With a
//! key file, the new key is written to `master.key.new` first and renamed over
//! `master.key` only after the transaction committed; an interrupted rotation
//! is finished by running the command again. With `MCPGATE_MASTER_KEY`, the new
//! key is printed once and the operator puts it into the environment.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mcpgate_authserver::{AuthServer, VaultSlot};
use mcpgate_gateway::{
    CredentialConfig, UpstreamConfig, UserSecret, UserSecretError, UserSecretSource, UserSources,
};
use mcpgate_store::seal::{MASTER_KEY_ENV, MASTER_KEY_FILE};
use mcpgate_store::{MasterKey, Store};

use crate::keys::{StoreArgs, exit};

/// `mcpgate vault …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum VaultCommand {
    /// Re-seal every stored secret under a new master key (stop the server first).
    RotateKey {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `vault` subcommand.
pub(crate) async fn run(command: VaultCommand) -> ExitCode {
    exit(match command {
        VaultCommand::RotateKey { store } => rotate(&store).await,
    })
}

const NEW_KEY_FILE: &str = "master.key.new";

async fn rotate(args: &StoreArgs) -> Result<(), String> {
    let dir = args.data_dir()?;
    let store = args.existing().await?;
    let result = rotate_in(&dir, &store).await;
    store.close().await;
    result
}

async fn rotate_in(dir: &Path, store: &Store) -> Result<(), String> {
    let from_env = std::env::var_os(MASTER_KEY_ENV).is_some();
    let key_file = dir.join(MASTER_KEY_FILE);
    let new_file = dir.join(NEW_KEY_FILE);
    if !from_env && !key_file.is_file() {
        return Err(format!(
            "no master key: {} has no {MASTER_KEY_FILE} and {MASTER_KEY_ENV} is not set; there is nothing to rotate",
            dir.display()
        ));
    }
    let old = MasterKey::load(dir).map_err(|e| format!("master key: {e}"))?;
    if !from_env && new_file.is_file() {
        // An earlier rotation stopped after writing the new key: finish it if
        // the data already moved, else start over with a fresh key.
        let text = std::fs::read_to_string(&new_file)
            .map_err(|e| format!("{}: {e}", new_file.display()))?;
        let pending = MasterKey::from_base64(&text, &new_file.display().to_string())
            .map_err(|e| e.to_string())?;
        if store.check_master_key(&old).await.is_err()
            && store.check_master_key(&pending).await.is_ok()
        {
            std::fs::rename(&new_file, &key_file)
                .map_err(|e| format!("cannot replace {}: {e}", key_file.display()))?;
            println!(
                "mcpgate: finished an interrupted rotation: {} now holds the key the data is sealed with",
                key_file.display()
            );
            return Ok(());
        }
        std::fs::remove_file(&new_file)
            .map_err(|e| format!("cannot remove {}: {e}", new_file.display()))?;
    }
    store
        .check_master_key(&old)
        .await
        .map_err(|e| format!("{e}\nnothing was changed"))?;
    let (bytes, new) = fresh_key(&old, |b| {
        aws_lc_rs::rand::fill(b).map_err(|_| "no randomness for a new key".to_owned())
    })?;
    let text = STANDARD.encode(bytes);
    if !from_env {
        write_private(&new_file, &format!("{text}\n"))
            .map_err(|e| format!("cannot write {}: {e}", new_file.display()))?;
    }
    let done = match store
        .rotate_master_key(&old, &new, &mcpgate_authserver::signing_key_aad)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            if !from_env {
                let _ = std::fs::remove_file(&new_file);
            }
            return Err(format!("{e}\nthe master key was not rotated"));
        }
    };
    let summary = format!(
        "re-sealed {} vault secret(s), {} federated token set(s) and {} signing key(s); dropped {} sign-in(s) in progress",
        done.vault_secrets, done.federated_tokens, done.signing_keys, done.dropped_logins
    );
    if from_env {
        println!("mcpgate: {summary}");
        println!(
            "mcpgate: the new master key (shown once; set it as {MASTER_KEY_ENV} before starting the server, the old one no longer opens the data):"
        );
        println!("{text}");
    } else {
        std::fs::rename(&new_file, &key_file)
            .map_err(|e| format!("the data is sealed under the key in {} but it could not replace {}: {e}; run `mcpgate vault rotate-key` again to finish", new_file.display(), key_file.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        println!(
            "mcpgate: {summary}; the new master key is in {}",
            key_file.display()
        );
    }
    Ok(())
}

/// Draws keys from `random` until one's id differs from `old`'s. The id is one
/// byte (the first of the key's SHA-256, stored in every sealed value), so one
/// fresh key in 256 shares it, and a rotation to it could not tell the two apart.
fn fresh_key(
    old: &MasterKey,
    mut random: impl FnMut(&mut [u8; 32]) -> Result<(), String>,
) -> Result<([u8; 32], MasterKey), String> {
    // Sixteen draws all sharing the id is a broken random source, not chance.
    for _ in 0..16 {
        let mut bytes = [0u8; 32];
        random(&mut bytes)?;
        let new = MasterKey::from_bytes(&bytes, "the new master key").map_err(|e| e.to_string())?;
        if new.id() != old.id() {
            return Ok((bytes, new));
        }
    }
    Err("the random source keeps giving keys with the current key's id; nothing was changed".into())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The vault slots of the configured upstreams (their `kind = "vault"` credentials).
pub(crate) fn slots(upstreams: &[UpstreamConfig]) -> Result<Vec<VaultSlot>, String> {
    let mut out = Vec::new();
    for u in upstreams {
        for c in &u.credentials {
            if let CredentialConfig::Vault(v) = c {
                let label = v
                    .label
                    .clone()
                    .unwrap_or_else(|| format!("credential for {}", u.name));
                out.push(
                    VaultSlot::new(
                        &u.name,
                        &label,
                        v.format.as_deref(),
                        v.format_hint.as_deref(),
                    )
                    .map_err(|e| e.to_string())?,
                );
            }
        }
    }
    Ok(out)
}

/// Offers the vault on the authserver's pages, checks its master key, and
/// returns the gateway's per-user sources (the vault, and each federated
/// provider's tokens). A `kind = "federated"` credential naming a provider
/// that is not configured is refused here.
pub(crate) async fn wire(
    authserver: Option<&AuthServer>,
    upstreams: &[UpstreamConfig],
    providers: &[String],
) -> Result<UserSources, String> {
    for u in upstreams {
        for c in &u.credentials {
            if let CredentialConfig::Federated(f) = c
                && (authserver.is_none() || !providers.contains(&f.provider))
            {
                return Err(format!(
                    "upstream {}: kind = \"federated\" names provider {:?}, but no [[authserver.federation]] has that name (and [authserver] must be enabled)",
                    u.name, f.provider
                ));
            }
        }
    }
    let Some(a) = authserver else {
        return Ok(UserSources::default());
    };
    a.check_vault_key().await.map_err(|e| e.to_string())?;
    a.offer_vault(slots(upstreams)?);
    let mut sources = UserSources::with_vault(Arc::new(Vault(a.clone())));
    for p in providers {
        sources.federated.insert(
            p.clone(),
            Arc::new(Federated {
                authserver: a.clone(),
                provider: p.clone(),
            }),
        );
    }
    Ok(sources)
}

/// One provider's federated tokens as a [`UserSecretSource`].
#[derive(Debug)]
struct Federated {
    authserver: AuthServer,
    provider: String,
}

// This impl and `Vault`'s repeat the trait's boxed-future signatures, which a
// `dyn UserSecretSource` needs (see the trait).
impl UserSecretSource for Federated {
    fn secret_for<'a>(
        &'a self,
        subject: &'a str,
        _upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, UserSecretError>> {
        Box::pin(async move {
            self.authserver
                .federated_token(subject, &self.provider)
                .await
                .map(|t| Some(UserSecret::new(t)))
                .map_err(|e| UserSecretError::Failed(Box::new(e)))
        })
    }

    fn rejected<'a>(
        &'a self,
        subject: &'a str,
        _upstream: &'a str,
        sent: &'a UserSecret,
    ) -> mcpgate_guard::BoxFuture<'a, bool> {
        Box::pin(async move {
            self.authserver
                .federated_rejected(subject, &self.provider, sent.expose())
                .await
        })
    }
}

/// The vault as a [`UserSecretSource`].
#[derive(Debug)]
struct Vault(AuthServer);

// The trait's boxed-future signatures again (see `Federated`'s impl above).
impl UserSecretSource for Vault {
    fn secret_for<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, UserSecretError>> {
        Box::pin(async move {
            match self
                .0
                .vault_secret(subject, upstream)
                .await
                .map_err(|e| UserSecretError::Failed(Box::new(e)))?
            {
                Some(s) => Ok(Some(UserSecret::new(s.into_inner()))),
                // Said here rather than as `None`, to tell the user where to add it.
                None => Err(UserSecretError::NotStored(format!(
                    "upstream {upstream} needs your own {}, and you have not stored one yet: add it under \"Credentials\" at {}",
                    self.0
                        .vault_label(upstream)
                        .unwrap_or_else(|| "credential".into()),
                    self.0.account_url()
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_key_never_shares_the_current_keys_id() {
        let old = MasterKey::from_bytes(&[7u8; 32], "old").expect("key");
        let other = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| MasterKey::from_bytes(k, "k").expect("key").id() != old.id())
            .expect("some key has another id");
        // The first draw repeats the current key (same id), the second does not.
        let mut draws = vec![other, [7u8; 32]];
        let (bytes, new) = fresh_key(&old, |b| {
            *b = draws.pop().expect("a draw");
            Ok(())
        })
        .expect("fresh key");
        assert!(draws.is_empty(), "the colliding draw was not taken");
        assert_eq!(bytes, other);
        assert_ne!(new.id(), old.id());

        let err = fresh_key(&old, |b| {
            *b = [7u8; 32];
            Ok(())
        })
        .expect_err("a source that only repeats the key is refused");
        assert!(err.contains("nothing was changed"), "{err}");
    }
}
