//! Extra request headers from `--header NAME:VALUE` and `--header-file FILE`.
//! Error messages name the header and the line, never the value: values are
//! often secrets.

use std::path::Path;

use http::{HeaderName, HeaderValue};

/// Headers the bridge sets itself; a user-supplied one would break the protocol.
const MANAGED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    "transfer-encoding",
    "connection",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
];

/// A `--header` argument or a header-file line that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// No `:` between name and value.
    #[error("{at}: expected `Name: value`")]
    NoColon {
        /// Where: `--header` or `FILE line N`.
        at: String,
    },
    /// The name is not a valid HTTP header name.
    #[error("{at}: {name:?} is not a valid header name")]
    BadName {
        /// Where: `--header` or `FILE line N`.
        at: String,
        /// The offending name.
        name: String,
    },
    /// The value has characters a header cannot carry (the value is not shown).
    #[error(
        "{at}: the value of header {name} is not a valid header value (control characters or non-visible bytes)"
    )]
    BadValue {
        /// Where: `--header` or `FILE line N`.
        at: String,
        /// The header's name.
        name: String,
    },
    /// A header the bridge manages itself.
    #[error("{at}: {name} is set by the bridge itself and cannot be overridden")]
    Managed {
        /// Where: `--header` or `FILE line N`.
        at: String,
        /// The header's name.
        name: String,
    },
    /// The header file cannot be read.
    #[error("cannot read header file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Parses one `Name: value` (or `Name:value`) header.
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    parse_at(arg, "--header")
}

fn parse_at(line: &str, at: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(HeaderError::NoColon { at: at.to_owned() });
    };
    let name = name.trim();
    let parsed = HeaderName::try_from(name).map_err(|_| HeaderError::BadName {
        at: at.to_owned(),
        name: name.to_owned(),
    })?;
    if MANAGED.contains(&parsed.as_str()) {
        return Err(HeaderError::Managed {
            at: at.to_owned(),
            name: name.to_owned(),
        });
    }
    let mut value = HeaderValue::try_from(value.trim()).map_err(|_| HeaderError::BadValue {
        at: at.to_owned(),
        name: name.to_owned(),
    })?;
    // Keeps the value out of any debug output of the request.
    value.set_sensitive(true);
    Ok((parsed, value))
}

/// Reads a header file: one `Name: value` per line; blank lines and lines
/// starting with `#` are skipped.
pub fn read_header_file(path: &Path) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
    let text = std::fs::read_to_string(path).map_err(|source| HeaderError::File {
        path: path.display().to_string(),
        source,
    })?;
    parse_header_lines(&text, &path.display().to_string())
}

fn parse_header_lines(
    text: &str,
    file: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, HeaderError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        out.push(parse_at(trimmed, &format!("{file} line {}", n + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
