//! `mcpgate signing-keys`: list and rotate the authorization server's token
//! signing keys.
//!
//! Rotation stores a new sealed key as the active one; the previous keys stay
//! in the JWKS for the overlap, so tokens they signed keep verifying, and are
//! dropped after it. A running server re-reads the keys every
//! `authserver.maintenance_interval` (a minute by default).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mcpgate_authserver::SigningAlg;
use mcpgate_store::{MasterKey, format_utc};

use crate::keys::{StoreArgs, exit};

/// `mcpgate signing-keys …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SigningKeysCommand {
    /// List the signing keys (kid, algorithm, dates, state; never the key).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Generate a new signing key; the previous one stays published for the overlap.
    Rotate {
        /// ES256, EdDSA or RS256 (default: the algorithm of the current key).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<SigningAlg>,
        /// How long the previous keys stay in the JWKS (e.g. 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_overlap)]
        overlap: Duration,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `signing-keys` subcommand.
pub(crate) async fn run(command: SigningKeysCommand) -> ExitCode {
    exit(match command {
        SigningKeysCommand::List { store } => list(&store).await,
        SigningKeysCommand::Rotate {
            alg,
            overlap,
            store,
        } => rotate(alg, overlap, &store).await,
    })
}

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(s).ok_or_else(|| format!("{s:?}: use ES256, EdDSA or RS256"))
}

fn parse_overlap(s: &str) -> Result<Duration, String> {
    mcpgate_guard::time::parse_duration(s)
        .map_err(|_| "expected e.g. 24h, 7d, 0s (a number, then s, m, h, d or w)".to_owned())
}

/// The master key the server uses; never created here (a new one could not
/// open the keys already stored).
fn master(args: &StoreArgs) -> Result<MasterKey, String> {
    let dir = args.data_dir()?;
    if std::env::var_os("MCPGATE_MASTER_KEY").is_none() && !dir.join("master.key").is_file() {
        return Err(format!(
            "no master key: {} has no master.key and MCPGATE_MASTER_KEY is not set (start the server once with [authserver] enabled, or set MCPGATE_MASTER_KEY as the server does)",
            dir.display()
        ));
    }
    MasterKey::load(&dir).map_err(|e| format!("master key: {e}"))
}

async fn list(args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let keys = store.list_signing_keys().await.map_err(|e| e.to_string());
    store.close().await;
    let keys = keys?;
    if keys.is_empty() {
        eprintln!(
            "no signing keys in {} (the server generates one when it first starts with [authserver] enabled)",
            args.dir()
        );
        return Ok(());
    }
    let now = SystemTime::now();
    let mut rows = Vec::new();
    for k in &keys {
        let state = match (k.superseded_at, k.retire_at) {
            (None, _) => "active".to_owned(),
            (Some(_), Some(t)) if t > now => format!("retiring until {}", format_utc(t)),
            (Some(_), _) => "retired".to_owned(),
        };
        rows.push([
            k.kid.clone(),
            k.alg.clone(),
            format_utc(k.created_at),
            state,
        ]);
    }
    print!(
        "{}",
        crate::table::render(["KID", "ALG", "CREATED", "STATE"], rows)
    );
    Ok(())
}

async fn rotate(
    alg: Option<SigningAlg>,
    overlap: Duration,
    args: &StoreArgs,
) -> Result<(), String> {
    let store = args.existing().await?;
    let result = async {
        let master = master(args)?;
        let current = store
            .list_signing_keys()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|k| k.superseded_at.is_none());
        let alg = alg
            .or_else(|| current.as_ref().and_then(|k| SigningAlg::parse(&k.alg)))
            .unwrap_or_default();
        let kid = mcpgate_authserver::rotate_signing_key(&store, &master, alg, overlap)
            .await
            .map_err(|e| e.to_string())?;
        let previous = current.as_ref().map(|k| k.kid.as_str());
        crate::audit_record::signing_key_rotated(&store, &kid, previous).await;
        Ok::<_, String>((kid, current.map(|k| k.kid), alg))
    }
    .await;
    store.close().await;
    let (kid, previous, alg) = result?;
    println!("{kid}");
    match previous {
        Some(p) => eprintln!(
            "New {} signing key {kid} is active. The previous key {p} stays in the JWKS until {} so its tokens keep verifying.\nA running server picks the new key up within its maintenance interval (a minute by default).",
            alg.as_str(),
            format_utc(SystemTime::now() + overlap)
        ),
        None => eprintln!("New {} signing key {kid} is active.", alg.as_str()),
    }
    Ok(())
}
