//! Authentication and policy in front of every MCP request: who is calling
//! (the guard's verifier chain), may they use this upstream and this tool, and
//! what the upstream is told about them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::{
    AuthMethod, AuthRejection, Chain, Challenge, Credential, ExtractOptions, IdentitySigner,
    Policy, Principal, Target, UpstreamKey,
};
use serde_json::Value;

use crate::front::Rewrite;
use crate::jsonrpc::{Kind, Message};

/// `auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    /// Every request needs a valid credential.
    #[default]
    Required,
    /// Anonymous callers get what needs no scope; the rest answers the sign-in challenge.
    Optional,
    /// Nobody is checked (development, loopback only).
    Disabled,
}

/// How the gateway authenticates and what it tells upstreams.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Required, optional or disabled.
    pub mode: AccessMode,
    /// The verifiers, in order.
    pub chain: Chain,
    /// Where credentials are read from.
    pub extract: ExtractOptions,
    /// Issuers named in protected-resource metadata.
    pub authorization_servers: Vec<String>,
    /// The claim that lists a principal's groups.
    pub groups_claim: String,
    /// Users' own upstream keys: delivered to their upstream only.
    pub upstream_keys: Vec<Arc<UpstreamKey>>,
    /// Signs the short-lived identity token HTTP upstreams receive.
    pub identity_signer: Option<Arc<IdentitySigner>>,
    /// Send `X-Mcpgate-Subject`/`-Scopes`/`-Client-Id` to HTTP upstreams.
    pub identity_headers: bool,
    /// Which tokens are accepted only where their `aud` says (RFC 8707).
    pub audiences: crate::AudienceBinding,
}

impl AuthSettings {
    /// No authentication.
    pub fn disabled() -> Self {
        AuthSettings {
            mode: AccessMode::Disabled,
            chain: Chain::new(Vec::new()),
            extract: ExtractOptions::default(),
            authorization_servers: Vec::new(),
            groups_claim: "groups".into(),
            upstream_keys: Vec::new(),
            identity_signer: None,
            identity_headers: true,
            audiences: crate::AudienceBinding::default(),
        }
    }
}

/// Headers the gateway sets towards HTTP upstreams; never taken from clients.
pub(crate) const SUBJECT_HEADER: &str = "x-mcpgate-subject";
const SCOPES_HEADER: &str = "x-mcpgate-scopes";
const CLIENT_HEADER: &str = "x-mcpgate-client-id";

/// The principal everyone is when authentication is disabled.
fn everyone() -> Principal {
    let mut p = Principal::anonymous();
    p.scopes.insert("*".into());
    p
}

/// What the front needs of the guard for one upstream.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) settings: AuthSettings,
    pub(crate) policies: BTreeMap<String, Policy>,
    pub(crate) public_url: url::Url,
    pub(crate) audiences: crate::audience::Audiences,
}

impl Guard {
    /// The challenge for an endpoint path (`/mcp` or `/mcp/<name>`).
    pub(crate) fn challenge(&self, upstream: &str, endpoint_path: &str) -> Challenge {
        let resource_metadata = (!self.settings.authorization_servers.is_empty()).then(|| {
            let mut u = self.public_url.clone();
            u.set_path(&format!(
                "/.well-known/oauth-protected-resource{}",
                endpoint_path.trim_end_matches('/')
            ));
            u.to_string()
        });
        let default_scopes = self
            .policies
            .get(upstream)
            .map(|p| p.required().to_vec())
            .unwrap_or_default();
        Challenge {
            resource_metadata,
            default_scopes,
        }
    }

    fn reject(&self, r: AuthRejection, upstream: &str, path: &str) -> Response {
        r.into_response(&self.challenge(upstream, path))
            .map(axum::body::Body::from)
            .into_response()
    }

    /// Who is calling, or the 400/401/503 answer.
    pub(crate) async fn authenticate(
        &self,
        upstream: &str,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Authenticated, Response> {
        if self.settings.mode == AccessMode::Disabled {
            return Ok(Authenticated {
                principal: everyone(),
                delivery: Delivery::default(),
            });
        }
        let credential = mcpgate_guard::extract(headers, query, &self.settings.extract)
            .map_err(|r| self.reject(r, upstream, path))?;
        let (principal, delivery) = match credential {
            None if self.settings.mode == AccessMode::Optional => {
                (Principal::anonymous(), Delivery::default())
            }
            None => return Err(self.reject(AuthRejection::Missing, upstream, path)),
            Some(c) => {
                let p = match self.settings.chain.authenticate(&c).await {
                    Ok(p) => p,
                    // On an upstream that takes users' own keys, an unrecognized
                    // credential is most likely a mistyped key: say what a key looks like.
                    Err(AuthRejection::InvalidToken(why)) if why == mcpgate_guard::UNRECOGNIZED => {
                        let why = self
                            .settings
                            .upstream_keys
                            .iter()
                            .find(|k| k.upstream() == upstream)
                            .map(|k| k.format_error())
                            .unwrap_or(why);
                        return Err(self.reject(AuthRejection::InvalidToken(why), upstream, path));
                    }
                    Err(r) => return Err(self.reject(r, upstream, path)),
                };
                let mut presented_at = self.public_url.clone();
                presented_at.set_path(path);
                self.audiences
                    .check(&p, upstream, presented_at.as_str())
                    .map_err(|r| self.reject(r, upstream, path))?;
                let delivery = self
                    .upstream_key_delivery(&p, &c, upstream)
                    .map_err(|r| self.reject(r, upstream, path))?;
                (p, delivery)
            }
        };
        if let Some(policy) = self.policies.get(upstream) {
            policy
                .admits(&principal)
                .map_err(|why| self.reject(AuthRejection::Forbidden(why), upstream, path))?;
        }
        Ok(Authenticated {
            principal,
            delivery,
        })
    }

    /// A user's own upstream key works only for its upstream, and travels only there.
    fn upstream_key_delivery(
        &self,
        p: &Principal,
        c: &Credential,
        upstream: &str,
    ) -> Result<Delivery, AuthRejection> {
        if p.method != AuthMethod::UpstreamKey {
            return Ok(Delivery::default());
        }
        let owner = UpstreamKey::upstream_of(p).unwrap_or_default();
        if owner != upstream {
            return Err(AuthRejection::InvalidToken(format!(
                "this API key is for upstream {owner}, not {upstream}"
            )));
        }
        let secret = self
            .settings
            .upstream_keys
            .iter()
            .find_map(|k| k.key_for_upstream(c));
        Ok(match secret {
            Some(s) => Delivery {
                header: s.header(),
                env: s.env_var().map(|(k, v)| (k.to_owned(), v.to_owned())),
            },
            None => Delivery::default(),
        })
    }

    /// Everything an upstream may be told about the caller.
    pub(crate) fn identity(&self, a: &Authenticated, upstream: &str) -> crate::upstream::Identity {
        let p = &a.principal;
        let mut headers = if self.settings.identity_headers {
            identity_headers(p)
        } else {
            HeaderMap::new()
        };
        let mut env = identity_env(p);
        if let Some((k, v)) = &a.delivery.header {
            headers.insert(k.clone(), v.clone());
        }
        if let Some(kv) = &a.delivery.env {
            env.push(kv.clone());
        }
        let token = match &self.settings.identity_signer {
            Some(signer) if p.method != AuthMethod::Anonymous => Some(Arc::new(IdentityToken {
                signer: signer.clone(),
                principal: p.clone(),
                audience: upstream.to_owned(),
                current: std::sync::Mutex::new(None),
            })),
            _ => None,
        };
        let caller = crate::credentials::Caller {
            subject: (p.method != AuthMethod::Anonymous).then(|| p.subject.clone()),
            identity: token.clone(),
        };
        crate::upstream::Identity {
            subject: p.subject.clone(),
            env,
            headers,
            token,
            caller,
        }
    }

    /// Whether the principal may send this message; a 401 (anonymous: sign in)
    /// or 403 `insufficient_scope` naming the scopes the operation needs.
    pub(crate) fn authorize(
        &self,
        upstream: &str,
        path: &str,
        p: &Principal,
        msg: &Message,
    ) -> Result<(), Response> {
        let Some(policy) = self.policies.get(upstream) else {
            return Ok(());
        };
        let target = target_of(msg);
        let target = match &target {
            Some((kind, name)) => match *kind {
                "tool" => Target::Tool(name),
                "prompt" => Target::Prompt(name),
                _ => Target::Resource(name),
            },
            None => Target::Upstream,
        };
        if policy.missing(p, target).is_empty() {
            return Ok(());
        }
        let needed = policy.needed(target);
        mcpgate_telemetry::note_denied(&format!("insufficient_scope: needs {needed:?}"));
        if p.method == AuthMethod::Anonymous {
            let challenge = self.challenge(upstream, path);
            let mut r = AuthRejection::Missing.into_response(&challenge);
            if let Ok(v) = HeaderValue::try_from(challenge.sign_in(Some(&needed))) {
                r.headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, v);
            }
            return Err(r.map(axum::body::Body::from).into_response());
        }
        Err(self.reject(AuthRejection::InsufficientScope(needed), upstream, path))
    }

    /// For list results: hides what the principal may not use.
    pub(crate) fn list_filter(
        &self,
        upstream: &str,
        p: &Principal,
        method: &str,
    ) -> Option<Rewrite> {
        let policy = self.policies.get(upstream)?;
        if !policy.filters_lists() {
            return None;
        }
        let (field, key, kind) = match method {
            "tools/list" => ("tools", "name", "tool"),
            "prompts/list" => ("prompts", "name", "prompt"),
            "resources/list" => ("resources", "uri", "resource"),
            _ => return None,
        };
        let policy = policy.clone();
        let p = p.clone();
        Some(Arc::new(move |m: &mut Message| {
            let Some(result) = m.result.as_deref() else {
                return;
            };
            let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, Value>>(result.get())
            else {
                return;
            };
            if let Some(Value::Array(items)) = map.get_mut(field) {
                items.retain(|item| {
                    let name = item.get(key).and_then(Value::as_str).unwrap_or_default();
                    let target = match kind {
                        "tool" => Target::Tool(name),
                        "prompt" => Target::Prompt(name),
                        _ => Target::Resource(name),
                    };
                    policy.missing(&p, target).is_empty()
                });
            }
            m.result = Some(crate::jsonrpc::raw(&map));
        }))
    }

    /// Every scope the upstream's policy mentions.
    pub(crate) fn scopes_for(&self, upstream: &str) -> Vec<String> {
        self.policies
            .get(upstream)
            .map(Policy::scopes)
            .unwrap_or_default()
    }
}

/// (kind, name) of a named request: tools/call, prompts/get, resources/read.
fn target_of(msg: &Message) -> Option<(&'static str, String)> {
    if msg.kind() != Some(Kind::Request) {
        return None;
    }
    let (kind, field) = match msg.method.as_deref()? {
        "tools/call" => ("tool", "name"),
        "prompts/get" => ("prompt", "name"),
        "resources/read" => ("resource", "uri"),
        _ => return None,
    };
    let params: Value = msg.params_as()?;
    Some((kind, params.get(field)?.as_str()?.to_owned()))
}

/// What HTTP upstreams are told about the caller (nothing for anonymous callers).
pub(crate) fn identity_headers(p: &Principal) -> HeaderMap {
    let mut h = HeaderMap::new();
    if p.method == AuthMethod::Anonymous {
        return h;
    }
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::try_from(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put(SUBJECT_HEADER, &p.subject);
    put(
        SCOPES_HEADER,
        &p.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
    );
    if let Some(c) = &p.client_id {
        put(CLIENT_HEADER, c);
    }
    h
}

/// A caller the guard let through, and what travels with it to its upstream.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) principal: Principal,
    pub(crate) delivery: Delivery,
}

/// A user's own upstream key, on its way to that upstream only.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    header: Option<(HeaderName, HeaderValue)>,
    env: Option<(String, String)>,
}

/// A short-lived identity token for one principal and upstream, re-signed
/// before it expires so long sessions keep sending a valid one.
#[derive(Debug)]
pub(crate) struct IdentityToken {
    signer: Arc<IdentitySigner>,
    principal: Principal,
    audience: String,
    current: std::sync::Mutex<Option<(HeaderValue, std::time::Instant)>>,
}

/// Re-sign when the token is older than this (it lives 60 s).
const RESIGN_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl IdentityToken {
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
        *cur = Some((v.clone(), std::time::Instant::now()));
        Some(v)
    }

    /// A fresh token about the same principal for another audience (a security
    /// token service), so that it cannot be replayed to the upstream.
    pub(crate) fn sign_for(&self, audience: &str) -> Result<String, String> {
        self.signer.sign(&self.principal, audience)
    }
}

/// The header HTTP upstreams find the identity token in.
pub(crate) const IDENTITY_HEADER: &str = "x-mcpgate-identity";

/// What a per-session stdio child is told about its user.
pub(crate) fn identity_env(p: &Principal) -> Vec<(String, String)> {
    if p.method == AuthMethod::Anonymous {
        return Vec::new();
    }
    let mut env = vec![
        ("MCPGATE_SUBJECT".to_owned(), p.subject.clone()),
        (
            "MCPGATE_SCOPES".to_owned(),
            p.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        ),
    ];
    if let Some(c) = &p.client_id {
        env.push(("MCPGATE_CLIENT_ID".to_owned(), c.clone()));
    }
    env
}
