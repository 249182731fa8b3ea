//! Static bearer tokens and API keys from configuration, a file, or an
//! environment variable — each with its own subject and scopes.
//!
//! Only SHA-256 digests of the tokens are kept in memory. A presented token is
//! hashed and compared in constant time (`subtle`) against every configured
//! digest, so neither the comparison nor the position of a match shows in the
//! timing. Tokens shorter than 32 characters are refused when the verifier is
//! built (the message names the entry, never the token) unless `allow_short`.
//!
//! ## The compact form
//!
//! `tokens_env` (an `MCPGATE_API_KEYS=a,b` style variable, entries separated by
//! commas) and `tokens_file` (one entry per line; blank lines and lines starting
//! with `#` are ignored) use the form
//!
//! ```text
//! token[:subject[:scope1 scope2 …]]
//! ```
//!
//! A missing or empty subject becomes `static-<n>`, numbered from 1 over the
//! compact entries in order (the variable's first, then the file's); missing
//! or empty scopes mean `*` (every scope). Tokens in this form cannot contain
//! `:` or (in the variable) `,`.
//!
//! A token that matches no entry is [`VerifyError::NotMine`]: a static list
//! cannot tell a mistyped token from another verifier's credential, so the chain
//! goes on (and answers 401 if nothing accepts it).

use secrecy::{ExposeSecret as _, SecretString};
use std::path::PathBuf;
use std::time::Duration;

use mcpgate_types::{ScopeSet, Subject};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::credential::Credential;
use crate::error::GuardError;
use crate::policy::Scopes;
use crate::principal::{AuthMethod, Principal};
use crate::verifier::{BoxFuture, Verified, Verifier, VerifyError};

/// Shortest token accepted without `allow_short`.
pub const MIN_TOKEN_CHARS: usize = 32;

/// How long the chain may reuse a verified static token.
const CACHE_FOR: Duration = Duration::from_secs(300);

/// The `[auth.static_tokens]` section.
///
/// ```toml
/// tokens_env = "MCPGATE_API_KEYS"          # "tok1,tok2:ci:notes:read"
/// tokens_file = "/etc/mcpgate/tokens"      # one compact entry per line
///
/// [[tokens]]
/// token_env = "CI_TOKEN"                   # or token = "…", or token_file = "…"
/// subject = "ci"
/// scopes = "notes:read notes:write"        # or a list; "*" = every scope (the default)
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokensConfig {
    /// Tokens written out one by one.
    #[serde(default)]
    pub tokens: Vec<StaticTokenEntry>,
    /// An environment variable holding comma-separated compact entries
    /// (e.g. `MCPGATE_API_KEYS`). Naming an unset variable is an error.
    #[serde(default)]
    pub tokens_env: Option<String>,
    /// A file holding one compact entry per line, `#` comment lines allowed.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Accepts tokens under 32 characters. Only for tests and legacy clients.
    #[serde(default)]
    pub allow_short: bool,
}

/// One `[[tokens]]` entry: exactly one of `token`, `token_env`, `token_file`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokenEntry {
    /// The token, inline (prefer `token_env` or `token_file`).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Who presents it.
    pub subject: String,
    /// Its scopes: a space-separated string or a list; `"*"` (the default) = every scope.
    #[serde(default = "every_scope")]
    pub scopes: Scopes,
}

fn every_scope() -> Scopes {
    Scopes::Text("*".to_owned())
}

impl std::fmt::Debug for StaticTokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokenEntry")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("subject", &self.subject)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// One configured token, as kept: its digest, never the token.
struct Entry {
    digest: [u8; 32],
    subject: Subject,
    scopes: ScopeSet,
}

/// The static-token verifier.
pub struct StaticTokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

/// A token read from somewhere, with a label naming where for messages.
struct Loaded {
    label: String,
    token: SecretString,
    subject: Subject,
    scopes: ScopeSet,
}

impl StaticTokens {
    /// The verifier for `cfg`, reading variables from the process environment.
    pub fn new(cfg: &StaticTokensConfig) -> Result<Self, GuardError> {
        Self::with_env(cfg, |name| std::env::var(name).ok())
    }

    // Each verifier that reads secrets from the environment has this `new` /
    // `with_env` pair: setting process variables in a threaded test is unsound
    // (`set_var` is unsafe), so tests and embedders pass their own lookup.
    /// The verifier for `cfg`, reading environment variables through `env`.
    /// Every problem found is reported, one per line.
    pub fn with_env(
        cfg: &StaticTokensConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GuardError> {
        let mut problems = Vec::new();
        let mut loaded = Vec::new();
        for (i, e) in cfg.tokens.iter().enumerate() {
            let label = format!("static token #{} (subject {:?})", i + 1, e.subject);
            match entry_token(e, &env, &label) {
                Err(p) => problems.push(p),
                Ok(_) if e.subject.trim().is_empty() => {
                    problems.push(format!("static token #{}: subject is empty", i + 1));
                }
                Ok(token) => match (e.subject.trim().parse(), e.scopes.to_set()) {
                    (Ok(subject), Ok(scopes)) => loaded.push(Loaded {
                        label,
                        token,
                        subject,
                        scopes,
                    }),
                    (Err(why), _) => problems.push(format!("{label}: {why}")),
                    (_, Err(why)) => problems.push(format!("{label}: scopes: {why}")),
                },
            }
        }
        let mut numbered = 0;
        if let Some(var) = &cfg.tokens_env {
            match env(var) {
                Some(text) => {
                    let entries = text.split(',').enumerate().map(|(i, s)| (i + 1, s));
                    for (n, item) in entries {
                        let label = format!("{var} entry {n}");
                        match compact(item, label, &mut numbered) {
                            Some(Ok(l)) => loaded.push(l),
                            Some(Err(p)) => problems.push(p),
                            None => {}
                        }
                    }
                }
                None => problems.push(format!("tokens_env names {var}, which is not set")),
            }
        }
        if let Some(path) = &cfg.tokens_file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for (n, line) in text.lines().enumerate() {
                        if line.trim_start().starts_with('#') {
                            continue;
                        }
                        let label = format!("{} line {}", path.display(), n + 1);
                        match compact(line, label, &mut numbered) {
                            Some(Ok(l)) => loaded.push(l),
                            Some(Err(p)) => problems.push(p),
                            None => {}
                        }
                    }
                }
                Err(e) => problems.push(format!(
                    "tokens_file {}: cannot read it: {e}",
                    path.display()
                )),
            }
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(loaded.len());
        let mut labels: Vec<String> = Vec::with_capacity(loaded.len());
        for l in loaded {
            let chars = l.token.expose_secret().chars().count();
            if !cfg.allow_short && chars < MIN_TOKEN_CHARS {
                problems.push(format!(
                    "{}: the token is {chars} characters; tokens under {MIN_TOKEN_CHARS} characters are refused (make one with `openssl rand -hex 32`), or set allow_short = true",
                    l.label
                ));
                continue;
            }
            let digest: [u8; 32] = Sha256::digest(l.token.expose_secret().as_bytes()).into();
            if let Some(i) = entries.iter().position(|e| e.digest == digest) {
                problems.push(format!(
                    "{}: the same token as {}; each token must name one subject",
                    l.label, labels[i]
                ));
                continue;
            }
            labels.push(l.label);
            entries.push(Entry {
                digest,
                subject: l.subject,
                scopes: l.scopes,
            });
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push(
                "no static tokens are configured: add [[tokens]], tokens_env or tokens_file"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(GuardError::Config(problems.join("\n")));
        }
        Ok(StaticTokens { entries })
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is configured (never true of a built verifier).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry whose digest equals the token's. Every entry is compared, in
    /// constant time, whether or not an earlier one matched.
    fn find(&self, token: &str) -> Option<&Entry> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: u64 = 0; // index + 1 of the match; 0 = none
        for (i, e) in self.entries.iter().enumerate() {
            let candidate = i as u64 + 1;
            found.conditional_assign(&candidate, digest.ct_eq(&e.digest));
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.entries.get(index)
    }
}

/// Reads the token of a `[[tokens]]` entry.
fn entry_token(
    e: &StaticTokenEntry,
    env: &impl Fn(&str) -> Option<String>,
    label: &str,
) -> Result<SecretString, String> {
    let token = match (&e.token, &e.token_env, &e.token_file) {
        (Some(t), None, None) => t.expose_secret().to_owned(),
        (None, Some(var), None) => {
            env(var).ok_or_else(|| format!("{label}: token_env names {var}, which is not set"))?
        }
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("{label}: cannot read token_file {}: {e}", path.display()))?,
        (None, None, None) => {
            return Err(format!(
                "{label}: set one of token, token_env or token_file"
            ));
        }
        _ => {
            return Err(format!(
                "{label}: set only one of token, token_env or token_file"
            ));
        }
    };
    let token = SecretString::from(token.trim());
    if token.expose_secret().is_empty() {
        return Err(format!("{label}: the token is empty"));
    }
    Ok(token)
}

/// Parses `token[:subject[:scopes]]`; `None` for a blank entry, a problem
/// (naming the entry, never the token) for a subject or scope that does not parse.
fn compact(item: &str, label: String, numbered: &mut usize) -> Option<Result<Loaded, String>> {
    let mut parts = item.trim().splitn(3, ':');
    let token = parts.next().unwrap_or("").trim();
    if token.is_empty() {
        return None;
    }
    *numbered += 1;
    let subject = match parts.next().map(str::trim) {
        Some(s) if !s.is_empty() => s.parse(),
        _ => format!("static-{numbered}").parse(),
    };
    let subject = match subject {
        Ok(s) => s,
        Err(why) => return Some(Err(format!("{label}: {why}"))),
    };
    let scopes = match parts.next().map(str::parse::<ScopeSet>) {
        Some(Ok(s)) if !s.is_empty() => s,
        Some(Err(why)) => return Some(Err(format!("{label}: scopes: {why}"))),
        _ => ScopeSet::from_words_lossy(["*"]),
    };
    Some(Ok(Loaded {
        label,
        token: SecretString::from(token),
        subject,
        scopes,
    }))
}

impl Verifier for StaticTokens {
    fn name(&self) -> &str {
        "static_tokens"
    }

    // `accepts` and `verify` as `UpstreamKey` writes them: each verifier says
    // itself which credentials are its own (no default that takes every
    // token), and `dyn Verifier` needs the boxed signature.
    /// Bearer tokens and API-key headers.
    fn accepts(&self, credential: &Credential) -> bool {
        credential.token().is_some()
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        let found = credential.token().and_then(|t| self.find(t));
        let result = match found {
            None => Err(VerifyError::NotMine),
            Some(e) => Ok(Verified::new(
                Principal::new(e.subject.clone(), AuthMethod::StaticToken)
                    .with_scopes(e.scopes.clone()),
                CACHE_FOR,
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests;
