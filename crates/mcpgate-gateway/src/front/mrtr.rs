//! Multi-round-trip requests for 2026-07-28 clients: an older upstream asks the
//! client something (elicitation, sampling, roots) in the middle of a call;
//! the gateway answers the client with an `input_required` result, keeps the
//! upstream call waiting, and continues it when the client retries with
//! `inputResponses` and the `requestState` it was given.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpgate_guard::Authorized;
use mcpgate_types::Subject;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::{self, Kind, Message, code};
use crate::rewrite::Rewrite;
use crate::session_key::{SessionKeys, StateClaims};
use crate::upstream::Exchange;
use crate::upstream::Link;
use crate::upstream::modern::META_CAPABILITIES;

/// Only these methods may answer `input_required` (2026-07-28).
pub(crate) const MRTR_METHODS: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// How long a parked call waits for the client's retry.
const PARK_TTL: Duration = Duration::from_secs(10 * 60);

/// Calls waiting for a client's retry, by `requestState`.
#[derive(Debug, Default)]
pub(crate) struct ParkedTable {
    map: Mutex<HashMap<String, Parked>>,
}

#[derive(Debug)]
pub(crate) struct Parked {
    ex: Exchange,
    link: Arc<Link>,
    /// The gateway's id for the upstream call, for cancellation.
    upstream_id: Box<RawValue>,
    /// inputRequests key → the upstream's request id.
    inputs: Vec<(String, Box<RawValue>)>,
    expires: Instant,
}

impl ParkedTable {
    fn put(&self, p: Parked) -> String {
        // The state is kept here, not in the token: the token is only an
        // unguessable name for it (sealed, with its owner, into the
        // `requestState` the client gets), so a client cannot forge or alter it.
        let token = mcpgate_types::random::hex::<24>();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, p)| p.expires < now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(p) = map.remove(&k) {
                tokio::spawn(async move {
                    p.link
                        .cancel(&p.upstream_id, "mcpgate: the client never retried")
                        .await
                });
            }
        }
        map.insert(token.clone(), p);
        token
    }

    fn take(&self, token: &str) -> Option<Parked> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token).filter(|p| p.expires >= Instant::now())
    }
}

/// The client capability a server request needs.
fn capability_of(method: &str) -> Option<&'static str> {
    match method {
        "elicitation/create" => Some("elicitation"),
        "sampling/createMessage" => Some("sampling"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// What one step of a call produced.
pub(crate) enum Step {
    /// Progress or another notification: the answer becomes a stream.
    Interim(Message),
    /// The answer: a result, an error, or `input_required`.
    Final(Message),
    /// No answer came: the upstream closed the stream or timed out, and this
    /// is the gateway's error in its place.
    Failed(Message),
}

/// One stateless call in flight.
pub(crate) struct Call {
    pub(crate) ex: Option<Exchange>,
    pub(crate) link: Arc<Link>,
    pub(crate) client_id: Option<Box<RawValue>>,
    pub(crate) upstream_id: Box<RawValue>,
    pub(crate) method: String,
    pub(crate) capabilities: HashSet<String>,
    pub(crate) rewrite: Rewrite,
    pub(crate) parked: Arc<ParkedTable>,
    /// Policy's yes for this call (a retry brings its own): what the gateway
    /// sends upstream on the call's behalf, such as a refusal of a question the
    /// client cannot be asked, goes under it.
    pub(crate) proof: Authorized,
    pub(crate) seal: StateSeal,
    /// The call reached its answer (or the gateway's error in its place).
    pub(crate) settled: bool,
}

impl Drop for Call {
    /// A call dropped before its answer was given up by the client: a
    /// 2026-07-28 client cancels by closing its request stream, so the
    /// upstream is told (`notifications/cancelled` under the gateway's id).
    /// A parked call no longer holds its exchange and is not cancelled here.
    fn drop(&mut self) {
        if self.settled || self.ex.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracing::info!(method = %self.method, "a 2026-07-28 client closed its request stream: cancelling the request upstream");
        let (link, id) = (self.link.clone(), self.upstream_id.clone());
        rt.spawn(async move {
            link.cancel(&id, "mcpgate: the client closed its request stream")
                .await;
        });
    }
}

/// What a parked call's `requestState` is sealed with and bound to.
#[derive(Clone)]
pub(crate) struct StateSeal {
    /// The session key.
    pub(crate) keys: Arc<SessionKeys>,
    /// The endpoint's upstream: a `requestState` is good for it only.
    pub(crate) upstream: Arc<str>,
    /// This replica's internal address, sealed in so that a follow-up that
    /// lands on another replica is forwarded here.
    pub(crate) owner: Option<String>,
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// A gateway-unique id: stateless clients share one upstream session, and two of
/// them may both use id 1.
pub(crate) fn unique_id() -> Box<RawValue> {
    jsonrpc::raw(&format!("mcpgate-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// The keys of `_meta["io.modelcontextprotocol/clientCapabilities"]`.
pub(crate) fn client_capabilities(params: Option<&RawValue>) -> HashSet<String> {
    // `_meta` and then its one key are found without building the rest of
    // `params` (the arguments); only the capabilities' names are kept.
    params
        .and_then(|p| jsonrpc::members(p, ["_meta"]))
        .and_then(|[meta]| meta)
        .and_then(|m| jsonrpc::members(m, [META_CAPABILITIES]))
        .and_then(|[caps]| caps)
        .and_then(|c| serde_json::from_str::<HashMap<String, IgnoredAny>>(c.get()).ok())
        .map(|m| m.into_keys().collect())
        .unwrap_or_default()
}

impl Call {
    /// Reads until something for the client, waiting at most `wait` (what is
    /// left of the request's `limit` for its first answer, then `limit` of
    /// silence between messages of a streamed answer).
    pub(crate) async fn step(&mut self, wait: Duration, limit: Duration) -> Step {
        let step = self.next_step(wait, limit).await;
        if matches!(step, Step::Final(_) | Step::Failed(_)) {
            self.settled = true;
        }
        step
    }

    async fn next_step(&mut self, wait: Duration, limit: Duration) -> Step {
        loop {
            let Some(ex) = self.ex.as_mut() else {
                return Step::Final(Message::error(
                    self.client_id.clone(),
                    code::INTERNAL_ERROR,
                    "the call already ended",
                ));
            };
            let next = tokio::time::timeout(wait, ex.recv()).await;
            let mut m = match next {
                Ok(Some(m)) => m,
                Ok(None) => {
                    let why = "the upstream closed the stream before answering";
                    return Step::Failed(Message::error(
                        self.client_id.clone(),
                        code::UPSTREAM_ERROR,
                        why,
                    ));
                }
                Err(_) => {
                    self.link
                        .cancel(&self.upstream_id, "mcpgate: request timed out")
                        .await;
                    let why = format!(
                        "the upstream did not answer within {limit:?} (server.request_timeout)"
                    );
                    tracing::warn!(method = %self.method, "{why}");
                    return Step::Failed(Message::error(
                        self.client_id.clone(),
                        code::UPSTREAM_TIMEOUT,
                        &why,
                    ));
                }
            };
            match m.kind() {
                Some(Kind::Response) => {
                    m.id = self.client_id.clone();
                    (self.rewrite)(&mut m);
                    return Step::Final(m);
                }
                Some(Kind::Request) => {
                    let method = m.method.clone().unwrap_or_default();
                    if let Some(missing) = self.missing_capability(&method) {
                        return Step::Final(self.refuse_missing(m, &method, missing).await);
                    }
                    let allowed = MRTR_METHODS.contains(&self.method.as_str())
                        && capability_of(&method).is_some_and(|c| self.capabilities.contains(c));
                    if !allowed {
                        let why = format!(
                            "{method}: the client of this request cannot be asked (not declared, or not allowed for {})",
                            self.method
                        );
                        self.refuse_question(m.id, &why).await;
                        continue;
                    }
                    return Step::Final(self.park(m));
                }
                _ => return Step::Interim(m),
            }
        }
    }

    /// Answers an upstream's question that cannot be put to the client with
    /// "method not found": the upstream may go on without an answer.
    async fn refuse_question(&self, id: Option<Box<RawValue>>, why: &str) {
        let _ = self
            .link
            .send(&self.proof, Message::error(id, code::METHOD_NOT_FOUND, why))
            .await;
    }

    /// The capability a question asked during this call needs, when the
    /// client did not declare it (and the call is one that may ask).
    fn missing_capability(&self, method: &str) -> Option<&'static str> {
        let cap = capability_of(method)?;
        (MRTR_METHODS.contains(&self.method.as_str()) && !self.capabilities.contains(cap))
            .then_some(cap)
    }

    /// The upstream needs a capability the client did not declare: like a
    /// 2026-07-28 server, the call ends with -32021
    /// (MissingRequiredClientCapabilityError) naming it, and the upstream's
    /// question is refused and its call cancelled.
    async fn refuse_missing(&mut self, question: Message, method: &str, cap: &str) -> Message {
        tracing::info!(call = %self.method, question = %method, capability = cap, "refused a call whose upstream needs a client capability the client did not declare");
        let why = format!("{method}: the client did not declare the {cap} capability");
        self.refuse_question(question.id, &why).await;
        self.link
            .cancel(
                &self.upstream_id,
                "mcpgate: the client lacks a required capability",
            )
            .await;
        self.ex = None;
        let error = serde_json::json!({
            "code": crate::protocol::MISSING_CAPABILITY,
            "message": format!("Missing required client capability: the server needs {cap} ({method}), which the request's _meta clientCapabilities do not declare"),
            "data": { "requiredCapabilities": { cap: {} } },
        });
        Message {
            id: Some(self.client_id.clone().unwrap_or_else(jsonrpc::null_id)),
            error: Some(jsonrpc::raw(&error)),
            ..Default::default()
        }
    }

    /// Parks the call and answers the client with `input_required`.
    fn park(&mut self, request: Message) -> Message {
        let key = "mcpgate-input-1".to_owned();
        let params: Value = request
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let mut input = serde_json::json!({ "method": request.method });
        if !params.is_null() {
            input["params"] = params;
        }
        let Some(ex) = self.ex.take() else {
            return Message::error(
                self.client_id.clone(),
                code::INTERNAL_ERROR,
                "the call already ended",
            );
        };
        let token = self.parked.put(Parked {
            ex,
            link: self.link.clone(),
            upstream_id: self.upstream_id.clone(),
            inputs: vec![(key.clone(), request.id.unwrap_or_else(jsonrpc::null_id))],
            expires: Instant::now() + PARK_TTL,
        });
        let sealed = self.seal.keys.seal_state(&StateClaims {
            token,
            subject: self.proof.caller().principal().subject().clone(),
            upstream: self.seal.upstream.to_string(),
            method: self.method.clone(),
            owner: self.seal.owner.clone(),
        });
        let Some(state) = sealed else {
            return Message::error(
                self.client_id.clone(),
                code::INTERNAL_ERROR,
                "could not seal requestState (no randomness)",
            );
        };
        let result = serde_json::json!({
            "resultType": "input_required",
            "inputRequests": { key: input },
            "requestState": state,
        });
        Message::response(
            self.client_id.clone().unwrap_or_else(jsonrpc::null_id),
            jsonrpc::raw(&result),
        )
    }
}

/// The internal address of the replica that holds the call `msg`'s
/// `requestState` names, when that is another replica and the state is this
/// caller's (anything else is refused here, by [`resume`], with its reason).
pub(crate) fn parked_elsewhere(
    keys: &SessionKeys,
    msg: &Message,
    subject: &str,
    here: Option<&str>,
) -> Option<String> {
    let claims = keys.open_state(&msg.param_str("requestState")?).ok()?;
    let owner = claims.owner.filter(|o| Some(o.as_str()) != here)?;
    (claims.subject == subject).then_some(owner)
}

/// The parked call a client's `requestState` names, if it is this caller's,
/// for this upstream and method, and held by this replica.
fn claim(
    parked: &ParkedTable,
    keys: &SessionKeys,
    upstream: &str,
    method: &str,
    state: &str,
    subject: &Subject,
) -> Result<Parked, &'static str> {
    let refuse = |reason: &str, answer| {
        tracing::info!(%upstream, %method, reason, "refused a requestState");
        answer
    };
    let c = keys.open_state(state).map_err(|why| {
        refuse(
            &why.to_string(),
            "requestState was not issued by this gateway (forged, altered, or sealed under another session key); send the request again without it",
        )
    })?;
    if c.subject != *subject || c.upstream != upstream {
        return Err(refuse(
            "issued to another subject or for another upstream",
            "requestState belongs to another caller or upstream",
        ));
    }
    if c.method != method {
        return Err(refuse(
            "issued for another method",
            "requestState belongs to another method",
        ));
    }
    parked.take(&c.token).ok_or_else(|| {
        refuse(
            "no such parked call here (expired, already resumed, or parked on another replica)",
            "requestState is unknown here or expired (the call may wait on another replica, or it ended); send the request again without it",
        )
    })
}

/// A client's retry: answers the upstream's questions and resumes the parked call.
pub(crate) async fn resume(
    parked: &Arc<ParkedTable>,
    seal: StateSeal,
    msg: &Message,
    method: &str,
    state: &str,
    rewrite: Rewrite,
    proof: Authorized,
) -> Result<Call, Message> {
    let subject = proof.caller().principal().subject();
    let p = claim(parked, &seal.keys, &seal.upstream, method, state, subject)
        .map_err(|why| Message::error(msg.id.clone(), code::INVALID_PARAMS, why))?;
    let responses: serde_json::Map<String, Value> = msg
        .params_as::<Value>()
        .and_then(|v| v.get("inputResponses")?.as_object().cloned())
        .unwrap_or_default();
    for (key, server_id) in &p.inputs {
        let answer = match responses.get(key) {
            Some(v) => Message::response(server_id.clone(), jsonrpc::raw(v)),
            None => Message::error(
                Some(server_id.clone()),
                code::INVALID_REQUEST,
                "the client gave no answer",
            ),
        };
        if let Err(e) = p.link.send(&proof, answer).await {
            return Err(Message::error(
                msg.id.clone(),
                code::UPSTREAM_ERROR,
                &e.to_string(),
            ));
        }
    }
    Ok(Call {
        ex: Some(p.ex),
        link: p.link,
        client_id: msg.id.clone(),
        upstream_id: p.upstream_id,
        method: method.to_owned(),
        capabilities: client_capabilities(msg.params.as_deref()),
        rewrite,
        parked: parked.clone(),
        proof,
        seal,
        settled: false,
    })
}
