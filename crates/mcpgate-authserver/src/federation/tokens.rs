//! A user's tokens from an identity provider, for upstreams that act as the
//! user there (`kind = "federated"` credentials): read, renewed with the
//! IdP's refresh token when they expire or an upstream refuses them, and
//! marked revoked when the IdP refuses the refresh.

use std::time::{Duration, SystemTime};

use mcpgate_store::federation::{FederatedTokens, NewTokens};

use super::idp::{Idp, RefreshError};
use crate::error::Error;
use crate::{AuthServer, Inner};

/// An access token is renewed this long before it expires, so that it does
/// not expire on its way to the upstream.
const EARLY_RENEWAL: Duration = Duration::from_secs(30);

/// A renewed access token, and whether it could be stored.
struct Renewed {
    access: String,
    stored: bool,
}

/// Renews `t`, `subject`'s tokens from provider `name`, with its `refresh`
/// token and stores the result; when the IdP refuses the refresh token, marks
/// the tokens revoked so the user is asked to sign in again. The caller holds
/// the provider's renewal lock.
async fn renew(
    inner: &Inner,
    idp: &Idp,
    subject: &str,
    name: &str,
    t: &FederatedTokens,
    refresh: &str,
) -> Result<Renewed, RefreshError> {
    match idp.refresh(refresh).await {
        Ok(new) => {
            let stored = inner
                .store
                .put_federated_tokens(
                    &inner.master,
                    subject,
                    name,
                    NewTokens {
                        access: &new.access_token,
                        refresh: new.refresh_token.as_deref(),
                        scopes: &t.scopes,
                        expires_at: new.expires_at(),
                        keep_refresh: true,
                    },
                )
                .await
                .map_err(|e| tracing::error!("federation: {e}"))
                .is_ok();
            Ok(Renewed {
                access: new.access_token,
                stored,
            })
        }
        Err(RefreshError::Revoked(why)) => {
            let _ = inner.store.mark_federated_revoked(subject, name).await;
            tracing::info!(provider = %name, user = %subject, "the IdP refused the refresh token ({why}): marked revoked");
            Err(RefreshError::Revoked(why))
        }
        Err(e) => Err(e),
    }
}

impl AuthServer {
    /// `subject`'s current access token from provider `name`, refreshed with
    /// the IdP's refresh token when expired. When the IdP refuses the refresh
    /// (revoked), the tokens are marked revoked and the error tells the user
    /// to sign in again; their next authorization goes through the IdP.
    pub async fn federated_token(&self, subject: &str, name: &str) -> Result<String, Error> {
        let inner = &self.inner;
        let Some(idp) = inner.federation.get(name) else {
            return Err(Error::Federated(format!(
                "no identity provider named {name:?} is configured ([[authserver.federation]])"
            )));
        };
        let who = idp.display_name();
        let again = format!("sign in again with {who} at {}", inner.url("/account"));
        let revoked = || {
            Error::Federated(format!(
                "{who} revoked mcpgate's access to your account: {again}"
            ))
        };
        // Held across the read and any refresh: a request that waited finds
        // the token its predecessor renewed.
        let lock = inner.federation.renewal_lock(subject, name);
        let _renewing = lock.lock().await;
        let stored = inner
            .store
            .federated_tokens(&inner.master, subject, name)
            .await
            .map_err(Error::vault("the federated token store"))?;
        let Some(t) = stored else {
            return Err(Error::Federated(format!(
                "this upstream acts with your {who} account, which you have not signed in with: {again}"
            )));
        };
        if t.revoked_at.is_some() {
            return Err(revoked());
        }
        if t.expires_at
            .is_none_or(|e| e > SystemTime::now() + EARLY_RENEWAL)
        {
            return Ok(t.access.into_inner());
        }
        let Some(refresh) = &t.refresh else {
            return Err(Error::Federated(format!(
                "your {who} sign-in expired: {again}"
            )));
        };
        match renew(inner, idp, subject, name, &t, refresh.expose()).await {
            Ok(r) => Ok(r.access),
            Err(RefreshError::Revoked(_)) => Err(revoked()),
            Err(RefreshError::Other(e)) => Err(Error::Federated(format!(
                "{who} cannot renew your token right now: {e}"
            ))),
        }
    }

    /// An upstream refused `sent`, `subject`'s token from provider `name`:
    /// refresh it (true: retry with the new one), or, when the IdP says it is
    /// revoked, mark it so the next call tells the user to sign in again.
    pub async fn federated_rejected(&self, subject: &str, name: &str, sent: &str) -> bool {
        let inner = &self.inner;
        let Some(idp) = inner.federation.get(name) else {
            return false;
        };
        let lock = inner.federation.renewal_lock(subject, name);
        let _renewing = lock.lock().await;
        let Ok(Some(t)) = inner
            .store
            .federated_tokens(&inner.master, subject, name)
            .await
        else {
            return false;
        };
        if t.revoked_at.is_some() {
            return false;
        }
        if t.access.expose() != sent {
            // Renewed meanwhile by another request.
            return true;
        }
        if let Some(refresh) = &t.refresh {
            return renew(inner, idp, subject, name, &t, refresh.expose())
                .await
                .is_ok_and(|r| r.stored);
        }
        if idp.still_valid(sent).await == Some(false) {
            tracing::info!(provider = %name, user = %subject, "the IdP no longer accepts the user's token: marked revoked");
            let _ = inner.store.mark_federated_revoked(subject, name).await;
        }
        false
    }
}
