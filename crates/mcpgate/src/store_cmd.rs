//! `mcpgate store copy`: moves a whole store between backends (a single-node
//! SQLite installation onto PostgreSQL, or back), verified by row counts and
//! by opening every sealed value in the target with the master key.

use std::path::PathBuf;
use std::process::ExitCode;

use mcpgate_store::seal::{MASTER_KEY_ENV, MASTER_KEY_FILE};
use mcpgate_store::{MasterKey, Store, StoreUrl};

use crate::keys::exit;

/// `mcpgate store …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy every row of one store into another, empty one, and verify it.
    Copy {
        /// The store to read: sqlite://<path> or postgres://user:password@host/database.
        #[arg(long)]
        from: String,
        /// The store to write (its schema is created or brought up to date).
        #[arg(long)]
        to: String,
        /// Empty a target that holds rows first (its rows are lost).
        #[arg(long)]
        replace: bool,
        /// The data directory holding master.key (the key the sealed values
        /// are sealed under; MCPGATE_MASTER_KEY takes precedence).
        #[arg(
            long,
            env = "MCPGATE_SERVER__DATA_DIR",
            default_value = "./mcpgate-data"
        )]
        data_dir: PathBuf,
    },
}

pub(crate) async fn run(command: StoreCommand) -> ExitCode {
    exit(match command {
        StoreCommand::Copy {
            from,
            to,
            replace,
            data_dir,
        } => copy(&from, &to, replace, &data_dir).await,
    })
}

async fn copy(
    from: &str,
    to: &str,
    replace: bool,
    data_dir: &std::path::Path,
) -> Result<(), String> {
    let from = StoreUrl::parse(from).map_err(|e| format!("--from: {e}"))?;
    let to = StoreUrl::parse(to).map_err(|e| format!("--to: {e}"))?;
    if from == to {
        return Err("--from and --to name the same store".into());
    }
    if let Some(p) = from.sqlite_path()
        && !p.is_file()
    {
        return Err(format!("--from: there is no database at {}", p.display()));
    }
    // Never create a master key here: one that exists must open the source's
    // sealed values; without one, a source that has some is refused.
    let master =
        if std::env::var_os(MASTER_KEY_ENV).is_some() || data_dir.join(MASTER_KEY_FILE).is_file() {
            Some(MasterKey::load(data_dir).map_err(|e| format!("master key: {e}"))?)
        } else {
            None
        };
    let source = Store::connect(&from)
        .await
        .map_err(|e| format!("--from: {e}"))?;
    let target = Store::connect(&to)
        .await
        .map_err(|e| format!("--to: {e}"))?;
    let result = source
        .copy_into(
            &target,
            replace,
            master.as_ref(),
            &mcpgate_authserver::signing_key_aad,
        )
        .await;
    source.close().await;
    target.close().await;
    let report = result.map_err(|e| e.to_string())?;
    let mut total = 0;
    for t in &report.tables {
        eprintln!("  {:<24} {:>8} rows", t.table, t.rows);
        total += t.rows;
    }
    let sealed = match report.sealed_opened {
        0 => "there are no sealed values".to_owned(),
        n => format!("all {n} sealed values open with the master key"),
    };
    eprintln!(
        "Copied {total} rows from {from} to {to}: every table's count matches, and {sealed}."
    );
    Ok(())
}
