//! Secret values and where they come from (config, the environment, a file),
//! with messages that name the source and never the value.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};

/// A secret value (zeroed when the last copy is dropped). `Debug` never shows
/// it; only [`Secret::expose`] does.
#[derive(Clone)]
pub(crate) struct Secret(Arc<SecretString>);

impl Secret {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Secret(Arc::new(SecretString::from(s.into())))
    }

    /// The value, for the one place it is sent.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a secret is read from.
#[derive(Clone)]
pub(crate) enum SecretRef {
    /// Written in the configuration.
    Value(Secret),
    /// The gateway's environment variable.
    Env(String),
    /// A file; trailing newlines are dropped.
    File(PathBuf),
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Value(_) => f.write_str("Value(<redacted>)"),
            SecretRef::Env(n) => write!(f, "Env({n})"),
            SecretRef::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

impl SecretRef {
    /// Exactly one of `<field>`, `<field>_env`, `<field>_file`; `None` when none is set.
    pub(crate) fn one_of(
        field: &str,
        value: Option<&str>,
        env: Option<&String>,
        file: Option<&PathBuf>,
    ) -> Result<Option<SecretRef>, String> {
        let set = [value.is_some(), env.is_some(), file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            return Err(format!(
                "set only one of {field}, {field}_env and {field}_file"
            ));
        }
        Ok(if let Some(v) = value {
            Some(SecretRef::Value(Secret::new(v)))
        } else if let Some(e) = env {
            if e.is_empty() {
                return Err(format!("{field}_env: name an environment variable"));
            }
            Some(SecretRef::Env(e.clone()))
        } else {
            file.map(|f| SecretRef::File(f.clone()))
        })
    }

    /// Like [`SecretRef::one_of`], but one must be set; `inline` says whether
    /// the configuration may hold the value itself.
    pub(crate) fn required(
        field: &str,
        value: Option<&str>,
        env: Option<&String>,
        file: Option<&PathBuf>,
        inline: bool,
    ) -> Result<SecretRef, String> {
        Self::one_of(field, value, env, file)?.ok_or_else(|| {
            if inline {
                format!("set {field}_env, {field}_file or {field}")
            } else {
                format!("set {field}_env or {field}_file")
            }
        })
    }

    /// Like [`SecretRef::required`] for a key that has no inline form: `<field>_env`
    /// or `<field>_file`.
    pub(crate) fn env_or_file(
        field: &str,
        env: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Result<SecretRef, String> {
        Self::required(field, None, env.as_ref(), file.as_ref(), false)
    }

    /// What the secret is called in reports: the variable, the file, or "inline".
    pub(crate) fn label(&self) -> String {
        match self {
            SecretRef::Value(_) => "inline value".into(),
            SecretRef::Env(n) => n.clone(),
            SecretRef::File(p) => p.display().to_string(),
        }
    }

    /// The secret, or the message an operator acts on.
    pub(crate) fn load(&self, upstream: &str) -> Result<Secret, String> {
        let label = self.label();
        match self {
            SecretRef::Value(v) if v.expose().is_empty() => Err(format!(
                "Missing credential {label} for upstream {upstream}: the configured value is empty"
            )),
            SecretRef::Value(v) => Ok(v.clone()),
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                Ok(_) => Err(format!(
                    "Missing credential {label} for upstream {upstream}: the environment variable {name} is empty"
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                    "Missing credential {label} for upstream {upstream}: the environment variable {name} is not valid UTF-8"
                )),
                Err(std::env::VarError::NotPresent) => Err(format!(
                    "Missing credential {label} for upstream {upstream}: set the environment variable {name}"
                )),
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(s) => {
                    let s = s.trim_end_matches(['\r', '\n']);
                    if s.is_empty() {
                        Err(format!(
                            "Missing credential {label} for upstream {upstream}: the file {} is empty",
                            path.display()
                        ))
                    } else {
                        Ok(Secret::new(s))
                    }
                }
                Err(e) => Err(format!(
                    "Missing credential {label} for upstream {upstream}: cannot read the file {}: {e}",
                    path.display()
                )),
            },
        }
    }
}

/// A header value made from a template such as `"Token {secret}"`.
#[derive(Debug, Clone)]
pub(crate) struct Template(String);

/// What a template replaces.
const PLACEHOLDER: &str = "{secret}";

impl Template {
    pub(crate) fn parse(t: &str) -> Result<Self, String> {
        if !t.contains(PLACEHOLDER) {
            return Err(format!(
                "template {t:?} must contain {PLACEHOLDER}, e.g. \"Token {PLACEHOLDER}\""
            ));
        }
        Ok(Template(t.to_owned()))
    }

    /// The header value, marked sensitive (never shown by `Debug`, never indexed by HPACK).
    pub(crate) fn render(&self, secret: &Secret) -> Result<http::HeaderValue, String> {
        let mut v = http::HeaderValue::try_from(self.0.replace(PLACEHOLDER, secret.expose()))
            .map_err(|_| {
                "the credential contains characters a header value cannot carry".to_owned()
            })?;
        v.set_sensitive(true);
        Ok(v)
    }
}
