//! Who a request acts for.
//!
//! The demo does no authentication of its own: it trusts whoever started it.
//! Behind `mcpgate` over HTTP the gateway has already verified the caller and
//! names them in the `x-mcpgate-subject` header; a stdio child is started once
//! per user with `MCPGATE_SUBJECT` in its environment. With neither, the
//! caller is `anonymous`. This is why the demo must only ever be reachable
//! through the gateway or on loopback.

use std::fmt;

use http::HeaderMap;

use crate::error::DemoError;

/// The HTTP header the gateway uses to name the verified caller.
pub(crate) const SUBJECT_HEADER: &str = "x-mcpgate-subject";
/// The environment variable that names the user a stdio child serves.
pub(crate) const SUBJECT_ENV: &str = "MCPGATE_SUBJECT";
/// The subject of a caller nobody named.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// Long enough for any IdP's `sub` or an email address; short enough that a
/// bogus header cannot bloat the database.
const MAX_SUBJECT_BYTES: usize = 256;

/// A validated user name: non-blank, at most 256 bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject(String);

impl Subject {
    /// Checks `raw`; the error says what is wrong with it.
    pub(crate) fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.trim().is_empty() {
            return Err("it is empty");
        }
        if raw.len() > MAX_SUBJECT_BYTES {
            return Err("it is longer than 256 bytes");
        }
        if raw.chars().any(char::is_control) {
            return Err("it contains control characters");
        }
        Ok(Self(raw.to_owned()))
    }

    fn anonymous() -> Self {
        Self(ANONYMOUS.to_owned())
    }

    /// The subject as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a request's subject came from; `whoami` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `x-mcpgate-subject` HTTP header.
    Header,
    /// The `MCPGATE_SUBJECT` environment variable of this process.
    Environment,
    /// Neither was set.
    Anonymous,
}

impl Source {
    /// A short, stable label for tool output.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Environment => "environment",
            Self::Anonymous => "anonymous",
        }
    }

    /// A sentence for humans.
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Self::Header => "from the x-mcpgate-subject header set by the mcpgate gateway",
            Self::Environment => "from the MCPGATE_SUBJECT environment variable of this server",
            Self::Anonymous => {
                "nobody named you: no x-mcpgate-subject header and no MCPGATE_SUBJECT variable"
            }
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// Whose notes and usage this request touches.
    pub(crate) subject: Subject,
    /// How we learned it.
    pub(crate) source: Source,
}

/// Reads `MCPGATE_SUBJECT` once at start-up, so a bad value stops the server
/// with a clear message instead of failing every request.
pub(crate) fn subject_from_env() -> Result<Option<Subject>, DemoError> {
    let Some(raw) = std::env::var_os(SUBJECT_ENV) else {
        return Ok(None);
    };
    let Some(raw) = raw.to_str() else {
        return Err(DemoError::Start(format!(
            "{SUBJECT_ENV} is not valid UTF-8"
        )));
    };
    if raw.is_empty() {
        return Ok(None);
    }
    Subject::parse(raw)
        .map(Some)
        .map_err(|why| DemoError::start(format_args!("{SUBJECT_ENV} cannot name a user"), why))
}

/// Decides who a request acts for: the header (HTTP requests), else the
/// process's subject (stdio children), else anonymous.
///
/// `headers` is `None` when the request did not arrive over HTTP. A header
/// that is present but unusable is an error rather than a silent fallback:
/// falling back would file one user's notes under another name.
pub(crate) fn resolve(
    headers: Option<&HeaderMap>,
    process_subject: Option<&Subject>,
) -> Result<Identity, DemoError> {
    if let Some(value) = headers.and_then(|headers| headers.get(SUBJECT_HEADER)) {
        let raw = value
            .to_str()
            .map_err(|_| DemoError::BadSubjectHeader("it is not visible ASCII"))?;
        let subject = Subject::parse(raw).map_err(DemoError::BadSubjectHeader)?;
        return Ok(Identity {
            subject,
            source: Source::Header,
        });
    }
    Ok(match process_subject {
        Some(subject) => Identity {
            subject: subject.clone(),
            source: Source::Environment,
        },
        None => Identity {
            subject: Subject::anonymous(),
            source: Source::Anonymous,
        },
    })
}

#[cfg(test)]
mod tests;
