//! `mcpgate keys`: create, list and revoke API keys in the data directory's store.
//!
//! A key is printed once, alone on stdout, so it can be captured by a script;
//! everything else goes to stderr. Only its digest is stored.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use mcpgate_store::{ApiKeyRecord, Store, StoreUrl, format_utc};

/// Where the store lives (shared by every store command).
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// Data directory holding mcpgate.sqlite and the master key (default: the
    /// configuration's server.data_dir, else ./mcpgate-data).
    #[arg(long, env = "MCPGATE_SERVER__DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The server's configuration file, to find its server.data_dir and [store] url.
    #[arg(long, short, env = "MCPGATE_CONFIG")]
    config: Option<PathBuf>,
    /// The store: sqlite://<path> or postgres://user:password@host/database
    /// (default: the configuration's [store] url, else DATABASE_URL, else
    /// <data-dir>/mcpgate.sqlite).
    #[arg(long, env = "MCPGATE_STORE__URL", hide_env_values = true)]
    store_url: Option<String>,
}

impl StoreArgs {
    /// The configuration file named by --config, else ./mcpgate.toml when present.
    fn config(&self) -> Result<Option<crate::config::Config>, String> {
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("mcpgate.toml")).filter(|p| p.is_file()),
        };
        match path {
            Some(p) => crate::config::load(Some(&p))
                .map(Some)
                .map_err(|problems| problems.join("\n")),
            None => Ok(None),
        }
    }

    /// The data directory: --data-dir, else the config's server.data_dir, else the default.
    pub(crate) fn data_dir(&self) -> Result<PathBuf, String> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        Ok(self
            .config()?
            .map_or_else(|| PathBuf::from("./mcpgate-data"), |c| c.server.data_dir))
    }

    /// The store: --store-url, else the config's [store] url, else
    /// DATABASE_URL, else mcpgate.sqlite in the data directory.
    pub(crate) fn url(&self) -> Result<StoreUrl, String> {
        let from_config = match &self.store_url {
            Some(_) => None,
            None => self.config()?.and_then(|c| c.store.url),
        };
        let url = self.store_url.clone().or(from_config);
        crate::config::store_url(url.as_deref(), &self.data_dir()?).map_err(|e| e.to_string())
    }

    /// Opens the store, creating a SQLite directory (0700) and database if missing.
    pub(crate) async fn create(&self) -> Result<Store, String> {
        Store::connect(&self.url()?)
            .await
            .map_err(|e| e.to_string())
    }

    /// Opens the store, which must exist (a mistyped --data-dir is not silently created).
    pub(crate) async fn existing(&self) -> Result<Store, String> {
        let url = self.url()?;
        if let Some(path) = url.sqlite_path()
            && !path.is_file()
        {
            return Err(format!(
                "no mcpgate database in {}: pass --data-dir (or --config, or --store-url) with the server's store",
                path.parent().unwrap_or(path).display()
            ));
        }
        Store::connect(&url).await.map_err(|e| e.to_string())
    }

    /// Where the store is, for messages: the data directory of a SQLite
    /// store, the URL (password hidden) of a PostgreSQL one.
    pub(crate) fn dir(&self) -> String {
        match self.url() {
            Ok(StoreUrl::Sqlite(p)) => p
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            Ok(u) => u.to_string(),
            Err(_) => String::new(),
        }
    }
}

/// `mcpgate keys …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Create an API key and print it on stdout (it is shown only this once).
    Create {
        /// A unique name for the key (letters, digits, . _ - @ +).
        #[arg(long)]
        name: String,
        /// Space-separated scopes the key grants ("notes:read notes:write"), or '*' for all.
        #[arg(long, default_value = "")]
        scopes: String,
        /// The subject requests with this key act as (default: the key's name).
        #[arg(long)]
        subject: Option<String>,
        /// Lifetime, e.g. 30d, 12h, 90m, 2w (default: no expiry).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<Duration>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List API keys (never the keys themselves).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API key; a running server refuses it within a second.
    Revoke {
        /// The key's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs a `keys` subcommand.
pub(crate) async fn run(command: KeysCommand) -> ExitCode {
    let result = match command {
        KeysCommand::Create {
            name,
            scopes,
            subject,
            expires_in,
            store,
        } => create(&name, &scopes, subject, expires_in, &store).await,
        KeysCommand::List { store } => list(&store).await,
        KeysCommand::Revoke { name, store } => revoke(&name, &store).await,
    };
    exit(result)
}

/// Prints the error, if any, and turns it into the exit code.
/// `mcpgate migrate`: applies the migrations the store lacks and says how many.
pub(crate) async fn migrate(args: &StoreArgs) -> Result<(), String> {
    let url = args.url()?;
    let store = Store::connect_unmigrated(&url)
        .await
        .map_err(|e| e.to_string())?;
    // Under PostgreSQL's advisory lock: a replica starting meanwhile waits.
    let applied = store.migrate().await.map_err(|e| e.to_string())?;
    store.close().await;
    eprintln!("The store {url} is up to date: {applied} migration(s) applied.");
    Ok(())
}

pub(crate) fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn create(
    name: &str,
    scopes: &str,
    subject: Option<String>,
    expires_in: Option<Duration>,
    args: &StoreArgs,
) -> Result<(), String> {
    let expires_at = expires_in
        .map(|d| {
            SystemTime::now()
                .checked_add(d)
                .ok_or_else(|| "--expires-in is too far in the future".to_owned())
        })
        .transpose()?;
    let subject: mcpgate_types::Subject = subject
        .unwrap_or_else(|| name.to_owned())
        .parse()
        .map_err(|e| format!("--subject: {e}"))?;
    let scopes: mcpgate_types::ScopeSet = scopes.parse().map_err(|e| format!("--scopes: {e}"))?;
    let store = args.create().await?;
    let key = store
        .create_api_key(name, &subject, &scopes, expires_at)
        .await
        .map_err(|e| e.to_string())?;
    crate::audit_record::key_created(&store, name, subject.as_str()).await;
    store.close().await;
    println!("{key}");
    eprintln!(
        "Created API key {name:?} for subject {:?} in {}{}.\nThis is the only time the key is shown: store it now.",
        subject.as_str(),
        args.dir(),
        expires_at.map_or(String::new(), |t| format!(", expiring {}", format_utc(t)))
    );
    Ok(())
}

async fn list(args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let keys = store.list_api_keys().await.map_err(|e| e.to_string())?;
    store.close().await;
    crate::table::print(
        HEADER,
        rows(&keys),
        &format!(
            "no API keys in {} (create one with `mcpgate keys create --name NAME`)",
            args.dir()
        ),
    );
    Ok(())
}

async fn revoke(name: &str, args: &StoreArgs) -> Result<(), String> {
    let store = args.existing().await?;
    let newly = store
        .revoke_api_key(name)
        .await
        .map_err(|e| e.to_string())?;
    crate::audit_record::key_revoked(&store, name, newly).await;
    store.close().await;
    if newly {
        eprintln!("Revoked API key {name:?}; a running server refuses it within a second.");
    } else {
        eprintln!("API key {name:?} was already revoked.");
    }
    Ok(())
}

const HEADER: [&str; 7] = [
    "NAME", "PREFIX", "SUBJECT", "SCOPES", "CREATED", "EXPIRES", "REVOKED",
];

/// The keys as rows under [`HEADER`].
fn rows(keys: &[ApiKeyRecord]) -> Vec<[String; 7]> {
    let time = |t: Option<SystemTime>| t.map_or_else(|| "-".to_owned(), format_utc);
    keys.iter()
        .map(|k| {
            [
                k.name.clone(),
                format!("{}…", k.prefix),
                k.subject.to_string(),
                crate::table::or_dash(k.scopes.to_string()),
                format_utc(k.created_at),
                time(k.expires_at),
                time(k.revoked_at),
            ]
        })
        .collect()
}

/// `30d`, `12h`, `90m`, `45s`, `2w` (humantime's units), more than zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match mcpgate_guard::time::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the duration must be more than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(_) => Err("expected e.g. 30d, 12h (a number, then s, m, h, d or w)".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "-1d", "soon", "99999999999999999999w"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.starts_with("expected e.g. 30d, 12h"), "{bad:?}: {e}");
        }
        assert!(parse_duration("0d").is_err());
    }
}
