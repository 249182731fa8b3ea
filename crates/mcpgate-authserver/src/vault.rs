//! The per-user credential vault's pages: the account page's "Credentials"
//! section, where a signed-in user stores, replaces or deletes their own
//! secret for each vault-backed upstream (format-checked), and the lookup the
//! gateway uses to inject that secret into the user's requests only.
//!
//! The secrets are sealed by the store under the master key; this module never
//! logs or echoes one (a refused value is not put back into the form).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_store::VaultSecret;

use crate::params::Params;
use crate::{AuthServer, Inner, account, pages, session};

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
    ) -> Result<VaultSlot, String> {
        let format = format
            .map(|f| {
                regex::Regex::new(&format!("^(?:{f})$")).map_err(|e| {
                    format!("upstream {upstream}: format is not a valid regular expression: {e}")
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
    if let Some(why) = slot.refuse(secret) {
        return Err(why);
    }
    inner
        .store
        .vault_put(&inner.master, subject, &field.upstream, secret)
        .await
        .map_err(|e| match e {
            mcpgate_store::VaultError::InvalidSecret(why) => format!("Not saved: {why}."),
            other => {
                tracing::error!("vault: {other}");
                "The credential store is unavailable; try again later.".into()
            }
        })
}

/// `POST /account/credentials`: stores (`action=save`) or deletes
/// (`action=delete`) the user's secret for one upstream.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = Params::parse(&body).unwrap_or_default();
    let s = match session::current(&inner, &headers).await {
        Ok(Some(s)) if s.subject.is_some() => s,
        Ok(_) => return account::to_login(&inner),
        Err(e) => return e.into_response(),
    };
    if !session::csrf_ok(&s, form.get("csrf")) {
        return pages::error_page(
            &inner.route("/assets/style.css"),
            StatusCode::FORBIDDEN,
            "Cannot save",
            "The form expired; reload the page.",
        );
    }
    let subject = s.subject.clone().unwrap_or_default();
    let upstream = form.get("upstream").unwrap_or_default();
    let Some(slot) = inner
        .vault
        .get()
        .and_then(|v| v.iter().find(|v| v.upstream == upstream))
    else {
        return account::render_with(
            &inner,
            &subject,
            &s.csrf,
            Some("No such service takes a personal credential here."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let (notice, status) = if form.get("action") == Some("delete") {
        match inner.store.vault_delete(&subject, upstream).await {
            Ok(true) => (format!("Your {} was deleted.", slot.label), StatusCode::OK),
            Ok(false) => (format!("You had no {} stored.", slot.label), StatusCode::OK),
            Err(e) => return store_failed(&inner, &e),
        }
    } else {
        let secret = form.get("secret").unwrap_or_default().trim();
        match slot.refuse(secret) {
            Some(why) => (why, StatusCode::UNPROCESSABLE_ENTITY),
            None => match inner
                .store
                .vault_put(&inner.master, &subject, upstream, secret)
                .await
            {
                Ok(()) => (
                    format!("Your {} was saved (encrypted).", slot.label),
                    StatusCode::OK,
                ),
                Err(mcpgate_store::VaultError::InvalidSecret(why)) => (
                    format!("Not saved: {why}."),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
                Err(e) => return store_failed(&inner, &e),
            },
        }
    };
    account::render_for_field(&inner, &subject, &s.csrf, Some(&notice), status, upstream).await
}

fn store_failed(inner: &Inner, e: &mcpgate_store::VaultError) -> Response {
    tracing::error!("vault: {e}");
    pages::error_page(
        &inner.route("/assets/style.css"),
        StatusCode::SERVICE_UNAVAILABLE,
        "Cannot save",
        "The credential store is unavailable; try again later.",
    )
}

impl AuthServer {
    /// Offers the account page's "Credentials" section for these upstreams
    /// (the first call wins).
    pub fn offer_vault(&self, slots: Vec<VaultSlot>) {
        let _ = self.inner.vault.set(slots);
    }

    /// `subject`'s secret for `upstream`, `Ok(None)` when they stored none.
    /// The error names what failed, never a value.
    pub async fn vault_secret(
        &self,
        subject: &str,
        upstream: &str,
    ) -> Result<Option<VaultSecret>, String> {
        self.inner
            .store
            .vault_get(&self.inner.master, subject, upstream)
            .await
            .map_err(|e| format!("the credential vault: {e}"))
    }

    /// Refuses to start with a master key that does not open the vault (the
    /// error names both key ids and what to do; nothing is changed).
    pub async fn check_vault_key(&self) -> Result<(), String> {
        self.inner
            .store
            .check_master_key(&self.inner.master)
            .await
            .map_err(|e| format!("authserver: {e}"))
    }

    /// Where a user stores their credentials (the account page's URL).
    pub fn account_url(&self) -> String {
        self.inner.url("/account")
    }

    /// The label of `upstream`'s vault slot, if it has one.
    pub fn vault_label(&self, upstream: &str) -> Option<String> {
        self.inner
            .vault
            .get()?
            .iter()
            .find(|s| s.upstream == upstream)
            .map(|s| s.label.clone())
    }
}

#[cfg(test)]
mod tests;
