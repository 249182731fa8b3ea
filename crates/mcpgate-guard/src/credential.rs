//! Finding the one credential a request carries.

use base64::Engine;
use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};

use crate::rejection::AuthRejection;

/// Longest credential accepted; anything longer is refused before any work is done.
const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

/// Query parameters that look like credentials; their presence is refused.
const QUERY_CREDENTIALS: &[&str] = &["access_token", "token", "api_key", "apikey", "key", "auth"];

/// A credential as sent. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>` (or `DPoP <token>`).
    Bearer(String),
    /// The API-key header.
    ApiKey(String),
    /// `Authorization: Basic` with user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// The shape of a credential, for verifiers' cheap "could this be mine" checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A bearer token.
    Bearer,
    /// An API-key header value.
    ApiKey,
    /// A Basic user and password.
    Basic,
}

impl Credential {
    /// Its shape.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::Bearer(_) => CredentialKind::Bearer,
            Credential::ApiKey(_) => CredentialKind::ApiKey,
            Credential::Basic { .. } => CredentialKind::Basic,
        }
    }

    /// The token of a bearer credential.
    pub fn bearer(&self) -> Option<&str> {
        match self {
            Credential::Bearer(t) => Some(t),
            Credential::ApiKey(_) | Credential::Basic { .. } => None,
        }
    }

    /// The token of a bearer or API-key credential.
    pub fn token(&self) -> Option<&str> {
        match self {
            Credential::Bearer(t) | Credential::ApiKey(t) => Some(t),
            Credential::Basic { .. } => None,
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
        }
    }
}

/// Where credentials may come from.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// The API-key header (default `x-api-key`).
    pub api_key_header: HeaderName,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            api_key_header: HeaderName::from_static("x-api-key"),
        }
    }
}

/// The request's credential, `None` when it carries none, or a 400 when it is
/// malformed, ambiguous, or in the URL.
pub fn extract(
    headers: &HeaderMap,
    query: Option<&str>,
    opts: &ExtractOptions,
) -> Result<Option<Credential>, AuthRejection> {
    if let Some(q) = query {
        let leaked = url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, _)| k.to_ascii_lowercase())
            .find(|k| QUERY_CREDENTIALS.contains(&k.as_str()));
        if let Some(k) = leaked {
            return Err(AuthRejection::BadRequest(format!(
                "credentials are not accepted in the URL (query parameter {k:?}): send Authorization: Bearer <token>, or the {} header",
                opts.api_key_header
            )));
        }
    }
    let mut auth = headers.get_all(AUTHORIZATION).iter();
    let authorization = auth.next();
    if auth.next().is_some() {
        return Err(AuthRejection::BadRequest(
            "send one Authorization header, not several".into(),
        ));
    }
    let mut keys = headers.get_all(&opts.api_key_header).iter();
    let api_key = keys.next();
    if keys.next().is_some() {
        return Err(AuthRejection::BadRequest(format!(
            "send one {} header, not several",
            opts.api_key_header
        )));
    }
    match (authorization, api_key) {
        (Some(_), Some(_)) => Err(AuthRejection::BadRequest(format!(
            "the request carries both an Authorization and an {} header; send one credential",
            opts.api_key_header
        ))),
        (None, None) => Ok(None),
        (None, Some(v)) => {
            let key = visible(v.as_bytes(), opts.api_key_header.as_str())?;
            Ok(Some(Credential::ApiKey(key)))
        }
        (Some(v), None) => parse_authorization(v.as_bytes()).map(Some),
    }
}

fn parse_authorization(value: &[u8]) -> Result<Credential, AuthRejection> {
    let text = visible(value, "Authorization")?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    let rest = rest.trim();
    // A DPoP-bound token is verified like a bearer token; its proof is the
    // layer's to check (`dpop.rs`), which also refuses a bound token sent as
    // Bearer.
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop") {
        if rest.is_empty() || !rest.bytes().all(is_token68) {
            return Err(AuthRejection::BadRequest(format!(
                "malformed {scheme} token: send Authorization: {scheme} <token>"
            )));
        }
        return Ok(Credential::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                AuthRejection::BadRequest(
                    "malformed Basic credentials: expected base64 of user:password".into(),
                )
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            AuthRejection::BadRequest("malformed Basic credentials: expected user:password".into())
        })?;
        if user.is_empty() {
            return Err(AuthRejection::BadRequest(
                "malformed Basic credentials: the user name is empty".into(),
            ));
        }
        return Ok(Credential::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    Err(AuthRejection::BadRequest(format!(
        "unsupported Authorization scheme {scheme:?}: use Bearer or DPoP (or Basic for user accounts)"
    )))
}

fn visible(value: &[u8], what: &str) -> Result<String, AuthRejection> {
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(AuthRejection::BadRequest(format!(
            "the {what} header is longer than {MAX_CREDENTIAL_BYTES} bytes"
        )));
    }
    let s = std::str::from_utf8(value)
        .ok()
        .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .ok_or_else(|| {
            AuthRejection::BadRequest(format!(
                "the {what} header holds characters a credential cannot contain"
            ))
        })?;
    Ok(s.trim().to_owned())
}

/// RFC 6750 b64token characters.
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests;
