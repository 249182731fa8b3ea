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
use axum::response::Response;
use mcpgate_store::VaultSecret;

mod slots;

pub use slots::VaultSlot;
pub(crate) use slots::{
    ConsentField, CredentialLine, NotSaved, consent_field, lines, store_from_consent,
};

use crate::error::Error;
use crate::{AuthServer, Inner, account, pages, session};

/// `POST /account/credentials`: stores (`action=save`) or deletes
/// (`action=delete`) the user's secret for one upstream.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    // Each signed-in form handler starts so (axum's extractors, then
    // `session::user_form`); only the page for a refusal is its own.
    let (s, subject, form) = match session::user_form(&inner, &headers, &body).await {
        Ok(f) => (f.session, f.subject, f.form),
        Err(e) => return e.respond(&inner, "Cannot save", |_| account::to_login(&inner)),
    };
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
        match slot.save(&inner, &subject, secret).await {
            Ok(()) => (
                format!("Your {} was saved (encrypted).", slot.label),
                StatusCode::OK,
            ),
            Err(NotSaved::Refused(why)) => (why, StatusCode::UNPROCESSABLE_ENTITY),
            Err(NotSaved::Unavailable(e)) => return store_failed(&inner, &e),
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
    ) -> Result<Option<VaultSecret>, Error> {
        self.inner
            .store
            .vault_get(&self.inner.master, subject, upstream)
            .await
            .map_err(Error::vault("the credential vault"))
    }

    /// Refuses to start with a master key that does not open the vault (the
    /// error names both key ids and what to do; nothing is changed).
    pub async fn check_vault_key(&self) -> Result<(), Error> {
        self.inner
            .store
            .check_master_key(&self.inner.master)
            .await
            .map_err(Error::vault("authserver"))
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
