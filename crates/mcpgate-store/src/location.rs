//! Where a store lives: a SQLite file or a PostgreSQL database, named by a URL
//! (`[store] url`, `--store-url`, `DATABASE_URL`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// The database file's name inside the data directory (the default store).
pub const DB_FILE: &str = "mcpgate.sqlite";

/// A store's location. Its `Display` hides a PostgreSQL password, so it may
/// be logged and shown in errors.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `sqlite://<path>`: one file, one node (the default,
    /// `sqlite://<data_dir>/mcpgate.sqlite`).
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database?sslmode=…`: shared by any
    /// number of replicas.
    Postgres(String),
}

impl StoreUrl {
    /// Parses `sqlite://path`, `sqlite:path`, `postgres://…` or `postgresql://…`.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err(StoreError::Url(format!(
                    "{url:?} names no file: use sqlite:///absolute/path/mcpgate.sqlite or sqlite://relative/path"
                )));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Url(format!(
            "unsupported store URL scheme {scheme:?}: use sqlite://<path> or postgres://user:password@host/database"
        )))
    }

    /// The default store: `<data_dir>/mcpgate.sqlite`.
    pub fn in_data_dir(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.join(DB_FILE))
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, StoreUrl::Postgres(_))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreUrl::Sqlite(p) => Some(p),
            StoreUrl::Postgres(_) => None,
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => f.write_str(&redact(u)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***`.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_backends() {
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/mcpgate/mcpgate.sqlite").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("/var/lib/mcpgate/mcpgate.sqlite"))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:data/x.sqlite?mode=rwc").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("data/x.sqlite"))
        );
        assert!(
            StoreUrl::parse("postgresql://u@h/db")
                .unwrap()
                .is_postgres()
        );
        let e = StoreUrl::parse("mysql://h/db").unwrap_err().to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(StoreUrl::parse("sqlite::memory:").is_err());
    }

    #[test]
    fn display_hides_passwords() {
        let u =
            StoreUrl::parse("postgres://app:s3cr3t@db:5432/mcpgate?sslmode=require&password=p2")
                .unwrap();
        let shown = u.to_string();
        assert_eq!(
            shown,
            "postgres://app:***@db:5432/mcpgate?sslmode=require&password=***"
        );
        assert!(!format!("{u:?}").contains("s3cr3t"));
        assert_eq!(
            StoreUrl::parse("postgres://app@db/m").unwrap().to_string(),
            "postgres://app@db/m"
        );
    }
}
