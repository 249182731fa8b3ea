//! The pass a replica sends with a request it forwards to a session's owner:
//! the caller it verified, sealed under the shared session key and bound to
//! one HTTP method, one upstream path and one session, valid for a few
//! seconds and once. The owner takes it instead of the client's credential,
//! which never crosses the internal hop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpgate_guard::{AuthMethod, Principal};
use mcpgate_types::{Audience, ClientId, ScopeSet, Subject};
use serde::{Deserialize, Serialize};

use crate::session_key::{SessionKeys, random_hex};

const PREFIX: &str = "f1.";
/// Keeps a pass from opening as a session id or a `requestState`.
const AAD: &[u8] = b"mcpgate forwarded request v1";
/// How long a pass is good for: the forward is sent at once, so this is the
/// replicas' clock difference allowed, not a working time.
pub(crate) const VALIDITY: Duration = Duration::from_secs(30);

/// What the request is, so that a pass taken off one request cannot carry
/// another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) session: &'a str,
}

impl<'a> Binding<'a> {
    /// The binding of a `method` request to `path` with `headers`: the sender
    /// and the owner build it alike, so a pass opens only where it was meant
    /// to. No (or no readable) session header binds the empty session.
    pub(crate) fn of(
        method: &'a axum::http::Method,
        path: &'a str,
        headers: &'a axum::http::HeaderMap,
    ) -> Self {
        let session = headers
            .get(crate::protocol::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Binding {
            method: method.as_str(),
            path,
            session,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "m")]
    method: String,
    #[serde(rename = "a")]
    path: String,
    /// A digest of the session id (the id itself is long).
    #[serde(rename = "s")]
    session: String,
    /// Unix milliseconds.
    #[serde(rename = "t")]
    issued: u64,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "p")]
    caller: Caller,
}

/// A [`Principal`] in a form that reads back (its own serialization does not).
#[derive(Debug, Serialize, Deserialize)]
struct Caller {
    sub: Subject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cid: Option<ClientId>,
    sc: ScopeSet,
    aud: Vec<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    am: AuthMethod,
    cl: serde_json::Map<String, serde_json::Value>,
}

/// Why a pass was refused (logged by the owner, never sent on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("not sealed by this deployment's session key")]
    NotSealed,
    #[error("expired or issued in the future")]
    Stale,
    #[error("already used")]
    Replayed,
    #[error("issued for another request (method, path or session)")]
    OtherRequest,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn digest(session: &str) -> String {
    use base64::Engine as _;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// A pass for `caller` on the request `binding` names; `None` only without randomness.
pub(crate) fn issue(
    keys: &SessionKeys,
    caller: &Principal,
    binding: &Binding<'_>,
) -> Option<String> {
    let sealed = Sealed {
        method: binding.method.to_owned(),
        path: binding.path.to_owned(),
        session: digest(binding.session),
        issued: now_ms(),
        nonce: random_hex(),
        caller: Caller {
            sub: caller.subject().clone(),
            cid: caller.client_id().cloned(),
            sc: caller.scopes().clone(),
            aud: caller.audience().to_vec(),
            exp: caller
                .expires_at()
                .and_then(|e| e.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            am: caller.method(),
            cl: caller.claims().clone(),
        },
    };
    keys.seal_as(PREFIX, AAD, &sealed)
}

/// Whether `token` looks like a pass at all (no cryptography).
pub(crate) fn is_pass(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The nonces of passes used, each kept until its pass is stale anyway.
#[derive(Debug, Default)]
pub(crate) struct Used(Mutex<UsedInner>);

#[derive(Debug, Default)]
struct UsedInner {
    seen: HashMap<String, u64>,
    pruned: u64,
}

impl Used {
    /// False if `nonce` was seen before; remembers it until `until` (ms).
    fn first_use(&self, nonce: &str, until: u64) -> bool {
        let mut inner = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_ms();
        // Pruned at most once a second: under load the set holds VALIDITY's
        // worth of passes, and is not scanned for each one.
        if inner.seen.len() >= 4096 && now >= inner.pruned.saturating_add(1000) {
            inner.seen.retain(|_, t| *t > now);
            inner.pruned = now;
        }
        inner.seen.insert(nonce.to_owned(), until).is_none()
    }
}

/// The caller a pass carries, if it is good for `binding`. With `used`, the
/// pass is spent: a second presentation is [`Refused::Replayed`].
pub(crate) fn open(
    keys: &SessionKeys,
    token: &str,
    binding: Option<&Binding<'_>>,
    used: Option<&Used>,
) -> Result<Principal, Refused> {
    let sealed: Sealed = keys
        .open_as(PREFIX, AAD, token)
        .map_err(|_| Refused::NotSealed)?;
    let now = now_ms();
    let validity = u64::try_from(VALIDITY.as_millis()).unwrap_or(u64::MAX);
    if sealed.issued.saturating_add(validity) < now || sealed.issued > now.saturating_add(validity)
    {
        return Err(Refused::Stale);
    }
    if let Some(b) = binding
        && (b.method != sealed.method
            || b.path != sealed.path
            || digest(b.session) != sealed.session)
    {
        return Err(Refused::OtherRequest);
    }
    if let Some(used) = used
        && !used.first_use(&sealed.nonce, sealed.issued.saturating_add(validity))
    {
        return Err(Refused::Replayed);
    }
    Ok(principal(sealed.caller))
}

fn principal(c: Caller) -> Principal {
    let p = if c.am == AuthMethod::Anonymous {
        Principal::anonymous()
    } else {
        Principal::new(c.sub, c.am)
    };
    p.with_client_id(c.cid)
        .with_scopes(c.sc)
        .with_audience(c.aud)
        .with_expires_at(c.exp.map(|s| UNIX_EPOCH + Duration::from_secs(s)))
        .with_claims(c.cl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding<'static> {
        Binding {
            method: "POST",
            path: "/mcp/everything",
            session: "s1.abc",
        }
    }

    #[test]
    fn a_pass_carries_the_caller_once_and_only_for_its_request() {
        let keys = SessionKeys::random();
        let caller = Principal::new("alice".parse().unwrap(), AuthMethod::ApiKey)
            .with_scopes("a b".parse().unwrap())
            .with_client_id(Some("cli".parse().unwrap()));
        let pass = issue(&keys, &caller, &binding()).unwrap();
        assert!(is_pass(&pass) && !pass.contains("alice"));
        let used = Used::default();
        let other = Binding {
            session: "s1.other",
            ..binding()
        };
        assert_eq!(
            open(&keys, &pass, Some(&other), Some(&used)).unwrap_err(),
            Refused::OtherRequest
        );
        let p = open(&keys, &pass, Some(&binding()), Some(&used)).unwrap();
        assert_eq!(p.subject(), "alice");
        assert_eq!(p.method(), AuthMethod::ApiKey);
        assert_eq!(p.client_id().map(ClientId::as_str), Some("cli"));
        assert!(p.has_scope("b"));
        assert_eq!(
            open(&keys, &pass, Some(&binding()), Some(&used)).unwrap_err(),
            Refused::Replayed
        );
        assert_eq!(
            open(&SessionKeys::random(), &pass, None, None).unwrap_err(),
            Refused::NotSealed
        );
    }

    #[test]
    fn an_anonymous_caller_stays_anonymous() {
        let keys = SessionKeys::random();
        let caller = mcpgate_guard::danger::superuser_for_disabled_auth();
        let pass = issue(&keys, &caller, &binding()).unwrap();
        let p = open(&keys, &pass, Some(&binding()), None).unwrap();
        assert!(p.is_anonymous() && p.has_scope("*"));
    }
}
