//! The vault's slots: which upstreams take a personal secret, what a valid
//! one looks like, and what the account and consent pages show of them.

use mcpgate_store::VaultError;

use crate::Inner;
use crate::error::Error;

/// An upstream whose credential is each user's own secret (`kind = "vault"`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VaultSlot {
    /// The upstream's name.
    pub upstream: String,
    /// What the secret is ("Weather API key").
    pub label: String,
    /// The whole secret must match this, when set.
    pub format: Option<regex::Regex>,
    /// What to tell a user whose secret does not match.
    pub format_hint: Option<String>,
}

impl VaultSlot {
    /// A slot; `format` is a regular expression the whole secret must match.
    pub fn new(
        upstream: &str,
        label: &str,
        format: Option<&str>,
        format_hint: Option<&str>,
    ) -> Result<VaultSlot, Error> {
        let format = format
            .map(|f| {
                regex::Regex::new(&format!("^(?:{f})$")).map_err(|e| {
                    Error::Config(format!(
                        "upstream {upstream}: format is not a valid regular expression: {e}"
                    ))
                })
            })
            .transpose()?;
        Ok(VaultSlot {
            upstream: upstream.to_owned(),
            label: label.to_owned(),
            format,
            format_hint: format_hint.map(str::to_owned),
        })
    }

    /// Why `secret` cannot be stored, as the user should read it.
    pub(crate) fn refuse(&self, secret: &str) -> Option<String> {
        if secret.is_empty() {
            return Some(format!("Paste your {} first.", self.label));
        }
        match &self.format {
            Some(re) if !re.is_match(secret) => Some(match &self.format_hint {
                Some(h) => format!(
                    "That does not look like {} {}: {h}",
                    indefinite_article(&self.label),
                    self.label
                ),
                None => format!(
                    "That does not look like {} {}: it must match {}",
                    indefinite_article(&self.label),
                    self.label,
                    re.as_str()
                ),
            }),
            _ => None,
        }
    }

    /// Stores `subject`'s `secret` for this slot, unless it is refused.
    pub(crate) async fn save(
        &self,
        inner: &Inner,
        subject: &str,
        secret: &str,
    ) -> Result<(), NotSaved> {
        if let Some(why) = self.refuse(secret) {
            return Err(NotSaved::Refused(why));
        }
        inner
            .store
            .vault_put(&inner.master, subject, &self.upstream, secret)
            .await
            .map_err(|e| match e {
                VaultError::InvalidSecret(why) => NotSaved::Refused(format!("Not saved: {why}.")),
                other => NotSaved::Unavailable(other),
            })?;
        // Who stored a secret for which upstream; never the secret.
        let mut e =
            mcpgate_telemetry::AuditEvent::new(mcpgate_telemetry::AuditKind::VaultSecretSet)
                .subject(subject);
        e.upstream = Some(self.upstream.clone());
        mcpgate_telemetry::audit(e);
        Ok(())
    }
}

/// Why a secret was not stored.
pub(crate) enum NotSaved {
    /// The value is refused; the message is for the user.
    Refused(String),
    /// The store cannot take it now.
    Unavailable(VaultError),
}

/// "a" or "an" before `label`, by how its first word sounds: acronyms by
/// their first letter's name ("an SSH key", "a URL"), words by their first
/// letter, with the common exceptions ("a user", "an hour").
fn indefinite_article(label: &str) -> &'static str {
    let word = label.split_whitespace().next().unwrap_or_default();
    let Some(first) = word.chars().next() else {
        return "a";
    };
    let acronym = word.chars().count() > 1
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if acronym {
        // Letter names that start with a vowel sound: A E F H I L M N O R S X.
        return if "AEFHILMNORSX".contains(first) {
            "an"
        } else {
            "a"
        };
    }
    let lower = word.to_lowercase();
    let consonant_sound = [
        "uni", "use", "usu", "uti", "ure", "uro", "eu", "one", "once",
    ];
    let vowel_sound = ["hour", "honest", "honor", "honour", "heir"];
    if vowel_sound.iter().any(|p| lower.starts_with(p)) {
        "an"
    } else if consonant_sound.iter().any(|p| lower.starts_with(p)) {
        "a"
    } else if matches!(lower.chars().next(), Some('a' | 'e' | 'i' | 'o' | 'u')) {
        "an"
    } else {
        "a"
    }
}

/// One slot as the account page shows it.
pub(crate) struct CredentialLine {
    pub(crate) upstream: String,
    pub(crate) label: String,
    pub(crate) hint: String,
    pub(crate) stored: Option<String>,
}

/// The account page's credential lines for `subject`.
pub(crate) async fn lines(inner: &Inner, subject: &str) -> Vec<CredentialLine> {
    let Some(slots) = inner.vault.get() else {
        return Vec::new();
    };
    let stored = inner.store.vault_list(subject).await.unwrap_or_default();
    slots
        .iter()
        .map(|s| CredentialLine {
            upstream: s.upstream.clone(),
            label: s.label.clone(),
            hint: s.format_hint.clone().unwrap_or_default(),
            stored: stored
                .iter()
                .find(|e| e.upstream == s.upstream)
                .map(|e| mcpgate_store::format_utc(e.updated_at)),
        })
        .collect()
}

/// The consent page's field for the secret the requested upstream needs.
pub(crate) struct ConsentField {
    pub(crate) upstream: String,
    pub(crate) label: String,
    pub(crate) hint: String,
    /// Why the value sent was refused.
    pub(crate) error: Option<String>,
}

/// The upstream a token audience names (`<public URL>/mcp/<upstream>`).
fn upstream_of(resource: &str) -> Option<String> {
    let u = url::Url::parse(resource).ok()?;
    let name = u.path().trim_end_matches('/').rsplit_once("/mcp/")?.1;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_owned())
}

/// A field for the consent page when `resource`'s upstream takes a vault
/// secret and `subject` has none stored yet.
pub(crate) async fn consent_field(
    inner: &Inner,
    subject: &str,
    resource: &str,
    error: Option<String>,
) -> Option<ConsentField> {
    let upstream = upstream_of(resource)?;
    let slot = inner.vault.get()?.iter().find(|s| s.upstream == upstream)?;
    let stored = inner.store.vault_list(subject).await.ok()?;
    if error.is_none() && stored.iter().any(|e| e.upstream == upstream) {
        return None;
    }
    Some(ConsentField {
        upstream,
        label: slot.label.clone(),
        hint: slot.format_hint.clone().unwrap_or_default(),
        error,
    })
}

/// Stores the secret entered on the consent page; the message when refused.
pub(crate) async fn store_from_consent(
    inner: &Inner,
    subject: &str,
    field: &ConsentField,
    secret: &str,
) -> Result<(), String> {
    let Some(slot) = inner
        .vault
        .get()
        .and_then(|v| v.iter().find(|s| s.upstream == field.upstream))
    else {
        return Ok(());
    };
    slot.save(inner, subject, secret)
        .await
        .map_err(|e| match e {
            NotSaved::Refused(why) => why,
            NotSaved::Unavailable(e) => {
                tracing::error!("vault: {e}");
                "The credential store is unavailable; try again later.".into()
            }
        })
}

#[cfg(test)]
mod tests;
