//! What an upstream is told about the caller of a request, in the forms
//! upstreams receive it: environment of a per-session child, headers, a signed
//! identity token, and the subject per-user credentials are resolved for.
//! The guard (`auth.rs`) builds it; the upstream links and the credentials read it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use mcpgate_guard::{IdentitySigner, Principal};

/// Who a link acts for, in the forms upstreams receive it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// Keys per-subject upstream sessions of stateless clients.
    pub(crate) subject: String,
    /// Environment of a per-session stdio child.
    pub(crate) env: Vec<(String, String)>,
    /// Headers to an HTTP upstream.
    pub(crate) headers: HeaderMap,
    /// The signed identity token HTTP upstreams receive, kept fresh.
    pub(crate) token: Option<Arc<IdentityToken>>,
    /// Whom per-user outbound credentials are resolved for.
    pub(crate) on_behalf_of: OnBehalfOf,
}

/// Whom an outbound credential is resolved for.
#[derive(Debug, Clone, Default)]
pub(crate) struct OnBehalfOf {
    /// The signed-in subject; `None` for anonymous callers and for the gateway
    /// itself (a shared child).
    pub(crate) subject: Option<String>,
    /// Signs identity tokens about the caller (token exchange's subject token).
    pub(crate) identity: Option<Arc<IdentityToken>>,
}

impl OnBehalfOf {
    /// The gateway acting for nobody in particular (shared children, readiness).
    pub(crate) fn gateway() -> Self {
        OnBehalfOf::default()
    }
}

/// The header HTTP upstreams find the identity token in.
pub(crate) const IDENTITY_HEADER: &str = "x-mcpgate-identity";

/// Re-sign when the token is older than this (it lives 60 s).
const RESIGN_AFTER: Duration = Duration::from_secs(30);

/// Signing an identity token failed (the signer's key is unusable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("signing the identity token failed: {0}")]
pub(crate) struct SigningFailed(String);

/// A short-lived identity token for one principal and upstream, re-signed
/// before it expires so long sessions keep sending a valid one.
#[derive(Debug)]
pub(crate) struct IdentityToken {
    signer: Arc<IdentitySigner>,
    principal: Principal,
    audience: String,
    current: Mutex<Option<(HeaderValue, Instant)>>,
}

impl IdentityToken {
    /// Tokens about `principal` for `audience` (an upstream's name).
    pub(crate) fn new(signer: Arc<IdentitySigner>, principal: Principal, audience: &str) -> Self {
        IdentityToken {
            signer,
            principal,
            audience: audience.to_owned(),
            current: Mutex::new(None),
        }
    }

    /// The token to send now.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, at)) = cur.as_ref()
            && at.elapsed() < RESIGN_AFTER
        {
            return Some(v.clone());
        }
        let token = self.signer.sign(&self.principal, &self.audience).ok()?;
        let mut v = HeaderValue::try_from(token).ok()?;
        v.set_sensitive(true);
        *cur = Some((v.clone(), Instant::now()));
        Some(v)
    }

    /// A fresh token about the same principal for another audience (a security
    /// token service), so that it cannot be replayed to the upstream.
    pub(crate) fn sign_for(&self, audience: &str) -> Result<String, SigningFailed> {
        self.signer
            .sign(&self.principal, audience)
            .map_err(|e| SigningFailed(e.to_string()))
    }
}
