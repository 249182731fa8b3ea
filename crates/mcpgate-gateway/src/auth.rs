//! Authentication and policy in front of every MCP request: who is calling
//! (the guard's verifier chain), may they use this upstream and this tool, and
//! what the upstream is told about them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::{
    Access, Admission, AuthMethod, AuthRejection, Authenticated, Authorized, Chain, Challenge,
    Credential, DpopCheck, DpopMode, DpopNonces, DpopReplay, ExtractOptions, IdentitySigner,
    Policy, Principal, RequireAuthLayer, Target, UpstreamKey,
};
use serde_json::Value;

use crate::error::GatewayError;
use crate::identity::{Identity, IdentityToken, OnBehalfOf};
use crate::jsonrpc::{Kind, Message};
use crate::rewrite::Rewrite;

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
    pub authorization_servers: Vec<mcpgate_types::Issuer>,
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
    /// The replay cache every replica shares (the store on PostgreSQL), so a
    /// DPoP proof is accepted once across them; `None`: per process.
    pub dpop_replay: Option<Arc<dyn DpopReplay>>,
    /// The nonces upstreams with `dpop_nonce = true` ask for; the same
    /// master-key-derived ones as the authorization server's, so any replica
    /// accepts a nonce another issued.
    pub dpop_nonces: Option<DpopNonces>,
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
            dpop_replay: None,
            dpop_nonces: None,
        }
    }
}

/// Headers the gateway sets towards HTTP upstreams; never taken from clients.
pub(crate) const SUBJECT_HEADER: &str = "x-mcpgate-subject";
const SCOPES_HEADER: &str = "x-mcpgate-scopes";
const CLIENT_HEADER: &str = "x-mcpgate-client-id";

/// The guard's side of the gateway: the policies and audience bindings of
/// every upstream. It is the [`Admission`] of the one [`RequireAuthLayer`] in
/// front of every MCP route: the layer runs the verifier chain, this says
/// which upstream's challenge a refusal carries and what must hold of a
/// caller at that upstream.
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) settings: AuthSettings,
    pub(crate) policies: BTreeMap<String, Policy>,
    /// Each upstream's `dpop` mode.
    pub(crate) dpop: BTreeMap<String, DpopMode>,
    /// The upstreams whose proofs must carry a nonce (`dpop_nonce = true`).
    pub(crate) dpop_nonce: BTreeSet<String>,
    pub(crate) public_url: url::Url,
    pub(crate) audiences: crate::audience::Audiences,
    /// The `[policy]` rules (Cedar), when configured.
    pub(crate) rules: Option<Arc<mcpgate_policy::Rules>>,
    /// The tools' annotations learnt from lists, for the rules.
    pub(crate) hints: Arc<crate::rules::ToolHints>,
    /// The virtual servers' names: their calls are decided by the rules once
    /// routed to a member ([`Guard::decide_member`]), not here.
    pub(crate) virtual_servers: BTreeSet<String>,
}

/// Why [`Guard::decide`] refused a message.
pub(crate) enum Refused {
    /// Scopes (401/403, with the challenge): the answer as it goes out.
    Scope(Response),
    /// A `[policy]` rule: a JSON-RPC error for the message's id.
    Rule(GatewayError),
}

/// Which upstream a request is for and the endpoint path it came to (for
/// challenges and the audience check); the router puts it in the request's
/// extensions before the guard runs.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) upstream: Arc<str>,
    pub(crate) path: String,
    /// The upstream itself, so the era step does not look it up again;
    /// `None` for a virtual server (`upstream` is then its name).
    pub(crate) target: Option<Arc<crate::upstream::Upstream>>,
}

impl Guard {
    /// The layer that authenticates every MCP request, with this guard deciding
    /// per upstream.
    pub(crate) fn layer(self: &Arc<Self>) -> RequireAuthLayer {
        let access = match self.settings.mode {
            AccessMode::Required => Access::Required,
            AccessMode::Optional => Access::Optional,
            AccessMode::Disabled => Access::Disabled,
        };
        RequireAuthLayer::with_admission(
            self.settings.chain.clone(),
            access,
            self.settings.extract.clone(),
            self.clone(),
        )
    }

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
        // RFC 6750 §3 and MCP's scope selection: clients ask for the
        // challenge's scopes. Nothing required: the scopes the upstream's
        // tools, prompts and resources use, rather than none (then clients ask
        // for every scope the authorization server lists).
        let default_scopes = self
            .policies
            .get(upstream)
            .map(|p| match p.required() {
                [] => p.scopes(),
                required => required.to_vec(),
            })
            .unwrap_or_default();
        Challenge {
            resource_metadata,
            default_scopes,
            dpop: self.dpop_for(upstream),
        }
    }

    /// An upstream's `dpop` mode (the default for a path no upstream serves).
    pub(crate) fn dpop_for(&self, upstream: &str) -> DpopMode {
        self.dpop.get(upstream).copied().unwrap_or_default()
    }

    /// A user's own upstream key works only for its upstream, and travels only there.
    fn upstream_key_delivery(
        &self,
        p: &Principal,
        c: &Credential,
        upstream: &str,
    ) -> Result<Delivery, AuthRejection> {
        if p.method() != AuthMethod::UpstreamKey {
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
    pub(crate) fn identity(&self, a: &Admitted, upstream: &str) -> Identity {
        let p = a.principal();
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
            Some(signer) if !p.is_anonymous() => Some(Arc::new(IdentityToken::new(
                signer.clone(),
                p.clone(),
                upstream,
            ))),
            _ => None,
        };
        let on_behalf_of = OnBehalfOf {
            subject: (!p.is_anonymous()).then(|| p.subject().to_string()),
            identity: token.clone(),
        };
        Identity {
            subject: p.subject().to_string(),
            env,
            headers,
            token,
            on_behalf_of,
        }
    }

    /// Whether the caller may send this message: the proof the upstream call
    /// needs, or a 401 (anonymous: sign in) or 403 `insufficient_scope` naming
    /// the scopes the operation needs.
    pub(crate) fn authorize(
        &self,
        upstream: &str,
        caller: &Admitted,
        msg: &Message,
    ) -> Result<Authorized, Response> {
        self.decide(upstream, caller, msg).map_err(|r| match r {
            Refused::Scope(r) => r,
            Refused::Rule(e) => e.answer(msg.id.clone()),
        })
    }

    /// [`Guard::authorize`], telling a scope refusal from a rule's (which
    /// the legacy SSE front answers on its stream): the scopes first, then,
    /// for a tool call, prompt or resource read, the `[policy]` rules.
    pub(crate) fn decide(
        &self,
        upstream: &str,
        caller: &Admitted,
        msg: &Message,
    ) -> Result<Authorized, Refused> {
        let proof = self
            .authorize_scopes(upstream, caller, msg)
            .map_err(Refused::Scope)?;
        if let Some(rules) = &self.rules
            && !self.virtual_servers.contains(upstream)
        {
            crate::rules::check(
                rules,
                &self.hints,
                crate::rules::Target::upstream(upstream),
                caller.principal(),
                &self.settings.groups_claim,
                msg,
            )
            .map_err(Refused::Rule)?;
        }
        Ok(proof)
    }

    /// The `[policy]` rules for a call through virtual server
    /// `virtual_server` once it is known which member serves it: the rules
    /// see the member as `resource.upstream` (the scopes were checked on the
    /// virtual server by [`Guard::decide`]).
    pub(crate) fn decide_member(
        &self,
        virtual_server: &str,
        member: &str,
        caller: &Admitted,
        msg: &Message,
    ) -> Result<(), GatewayError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        crate::rules::check(
            rules,
            &self.hints,
            crate::rules::Target {
                endpoint: virtual_server,
                upstream: member,
                virtual_server: Some(virtual_server),
            },
            caller.principal(),
            &self.settings.groups_claim,
            msg,
        )
    }

    fn authorize_scopes(
        &self,
        upstream: &str,
        caller: &Admitted,
        msg: &Message,
    ) -> Result<Authorized, Response> {
        static NO_RULES: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(Policy::default);
        let policy = self.policies.get(upstream).unwrap_or(&NO_RULES);
        // Without per-name rules every target needs what the upstream needs:
        // the name is not read out of the params at all.
        let named = if policy.filters_lists() {
            target_of(msg)
        } else {
            None
        };
        let target = match &named {
            Some((kind, name)) => match *kind {
                "tool" => Target::Tool(name),
                "prompt" => Target::Prompt(name),
                _ => Target::Resource(name),
            },
            None => Target::Upstream,
        };
        let step = mcpgate_telemetry::step(mcpgate_telemetry::StepName::Policy);
        let decided = policy.authorize(&caller.proof, target);
        if step.is_timed() {
            let reason = decided.as_ref().err().map(|r| r.error_code());
            step.end(
                reason.is_some(),
                &[
                    ("mcpgate.upstream", upstream),
                    ("mcpgate.policy.reason", reason.unwrap_or("allowed")),
                ],
            );
        }
        decided.map_err(|r| {
            mcpgate_telemetry::note_denied(&format!("{}: {r}", r.error_code()));
            r.into_response(&self.challenge(upstream, &caller.path))
                .map(axum::body::Body::from)
                .into_response()
        })
    }

    /// For list results: hides what the principal may not use.
    pub(crate) fn list_filter(
        &self,
        upstream: &str,
        p: &Principal,
        method: &str,
    ) -> Option<Rewrite> {
        self.list_filter_with(upstream, p, method, None)
    }

    /// [`Guard::list_filter`] for a virtual server's merged list, whose
    /// items' members `member_of` tells (the rules see the member).
    pub(crate) fn list_filter_with(
        &self,
        upstream: &str,
        p: &Principal,
        method: &str,
        member_of: Option<crate::rules::MemberOf>,
    ) -> Option<Rewrite> {
        // Decided before anything is cloned: most requests are no list.
        let (field, key, kind) = match method {
            "tools/list" => ("tools", "name", "tool"),
            "prompts/list" => ("prompts", "name", "prompt"),
            "resources/list" => ("resources", "uri", "resource"),
            _ => return None,
        };
        let policy = self
            .policies
            .get(upstream)
            .filter(|p| p.filters_lists())
            .cloned();
        let rules = self.rules.as_ref().map(|r| {
            crate::rules::Lister::new(
                r,
                &self.hints,
                upstream,
                member_of,
                p,
                &self.settings.groups_claim,
            )
        });
        if policy.is_none() && rules.is_none() {
            return None;
        }
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
                    policy
                        .as_ref()
                        .is_none_or(|policy| policy.missing(&p, target).is_empty())
                        && rules.as_ref().is_none_or(|r| r.shows(kind, name, item))
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
/// The name is read borrowed, skipping the arguments; anything unusual (a
/// repeated key, a name that is not a string) is read as a whole value, as
/// before, so the policy sees the same name either way.
fn target_of(msg: &Message) -> Option<(&'static str, std::borrow::Cow<'_, str>)> {
    #[derive(serde::Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Uri<'a> {
        #[serde(borrow)]
        uri: std::borrow::Cow<'a, str>,
    }
    if msg.kind() != Some(Kind::Request) {
        return None;
    }
    let (kind, field) = match msg.method.as_deref()? {
        "tools/call" => ("tool", "name"),
        "prompts/get" => ("prompt", "name"),
        "resources/read" => ("resource", "uri"),
        _ => return None,
    };
    let raw = msg.params.as_deref()?.get();
    let quick = if field == "uri" {
        serde_json::from_str::<Uri<'_>>(raw).map(|u| u.uri)
    } else {
        serde_json::from_str::<Name<'_>>(raw).map(|n| n.name)
    };
    if let Ok(name) = quick {
        return Some((kind, name));
    }
    let params: Value = msg.params_as()?;
    Some((kind, params.get(field)?.as_str()?.to_owned().into()))
}

/// What HTTP upstreams are told about the caller (nothing for anonymous callers).
pub(crate) fn identity_headers(p: &Principal) -> HeaderMap {
    let mut h = HeaderMap::new();
    if p.is_anonymous() {
        return h;
    }
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::try_from(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put(SUBJECT_HEADER, p.subject().as_str());
    put(SCOPES_HEADER, &p.scopes().to_string());
    if let Some(c) = p.client_id() {
        put(CLIENT_HEADER, c.as_str());
    }
    h
}

/// A caller the guard's layer let through at one upstream's endpoint, and what
/// travels with it to that upstream. Made only from the layer's
/// [`Authenticated`] proof.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    pub(crate) proof: Authenticated,
    pub(crate) delivery: Delivery,
    /// The endpoint path it came to (for challenges).
    pub(crate) path: String,
}

impl Admitted {
    /// The proof, with what the guard left in `req`'s extensions about this
    /// upstream (a user's own key to deliver, the endpoint path), taken out of them.
    pub(crate) fn new(proof: Authenticated, req: &mut axum::extract::Request) -> Self {
        let ext = req.extensions_mut();
        let delivery = ext.remove::<Delivery>().unwrap_or_default();
        let path = match ext.remove::<Endpoint>() {
            Some(e) => e.path,
            None => req.uri().path().to_owned(),
        };
        Admitted {
            proof,
            delivery,
            path,
        }
    }

    /// Who is calling.
    pub(crate) fn principal(&self) -> &Principal {
        self.proof.principal()
    }
}

impl Admission for Guard {
    fn challenge(&self, req: &Parts) -> Challenge {
        match req.extensions.get::<Endpoint>() {
            Some(e) => Guard::challenge(self, &e.upstream, &e.path),
            None => Guard::challenge(self, "", req.uri.path()),
        }
    }

    /// The audience binding, a user's own key's upstream, then the upstream's
    /// subject and group rules.
    // `PassAdmission::admit` (forward/internal.rs) shares only this trait
    // signature; why the two stay apart is said there.
    fn admit(
        &self,
        req: &mut Parts,
        p: &Principal,
        credential: Option<&Credential>,
    ) -> Result<(), AuthRejection> {
        let Some(e) = req.extensions.get::<Endpoint>() else {
            tracing::error!(
                path = req.uri.path(),
                "no upstream resolved before authentication"
            );
            return Err(AuthRejection::Forbidden(
                "no upstream serves this path".to_owned(),
            ));
        };
        let mut delivery = None;
        if let Some(c) = credential {
            self.audiences.check_at(p, &e.upstream, || {
                let mut presented_at = self.public_url.clone();
                presented_at.set_path(&e.path);
                presented_at.into()
            })?;
            if p.method() == AuthMethod::UpstreamKey {
                delivery = Some(self.upstream_key_delivery(p, c, &e.upstream)?);
            }
        }
        if let Some(policy) = self.policies.get(&*e.upstream) {
            policy.admits(p)?;
        }
        if let Some(d) = delivery {
            req.extensions.insert(d);
        }
        Ok(())
    }

    /// The upstream's mode; `htu` is the request's path on the public URL
    /// (what the client addressed, whatever proxy is in between).
    fn dpop(&self, req: &Parts) -> Option<DpopCheck> {
        let upstream = req.extensions.get::<Endpoint>().map(|e| &*e.upstream);
        let mode = upstream.map(|u| self.dpop_for(u)).unwrap_or_default();
        let nonces = upstream
            .filter(|u| self.dpop_nonce.contains(*u))
            .and(self.settings.dpop_nonces.clone());
        // The URL is compared only with a DPoP proof's `htu`: a plain bearer
        // request has no proof, so it does not pay for a URL per request.
        let url = if mcpgate_guard::dpop_scheme(req) {
            let mut url = self.public_url.clone();
            url.set_path(req.uri.path());
            url.into()
        } else {
            String::new()
        };
        Some(DpopCheck {
            mode,
            url,
            nonces,
            replay: self.settings.dpop_replay.clone(),
        })
    }

    /// On an upstream that takes users' own keys, an unrecognized credential is
    /// most likely a mistyped key: say what a key looks like.
    fn explain(&self, req: &Parts, rejection: AuthRejection) -> AuthRejection {
        let upstream = req.extensions.get::<Endpoint>().map(|e| e.upstream.clone());
        match (rejection, upstream) {
            (AuthRejection::InvalidToken(why), Some(upstream))
                if why == mcpgate_guard::UNRECOGNIZED =>
            {
                let why = self
                    .settings
                    .upstream_keys
                    .iter()
                    .find(|k| k.upstream() == &*upstream)
                    .map(|k| k.format_error())
                    .unwrap_or(why);
                AuthRejection::InvalidToken(why)
            }
            (r, _) => r,
        }
    }
}

/// A user's own upstream key, on its way to that upstream only.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    header: Option<(HeaderName, HeaderValue)>,
    env: Option<(String, String)>,
}

/// What a per-session stdio child is told about its user.
pub(crate) fn identity_env(p: &Principal) -> Vec<(String, String)> {
    if p.is_anonymous() {
        return Vec::new();
    }
    let mut env = vec![
        ("MCPGATE_SUBJECT".to_owned(), p.subject().to_string()),
        ("MCPGATE_SCOPES".to_owned(), p.scopes().to_string()),
    ];
    if let Some(c) = p.client_id() {
        env.push(("MCPGATE_CLIENT_ID".to_owned(), c.to_string()));
    }
    env
}

#[cfg(test)]
mod tests;
