//! The few members of a JSON-RPC message the bridge must read to route it:
//! `id`, `method`, and for 2026-07-28 requests the routing name and protocol
//! version. Everything else stays as the bytes the peer sent.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// What kind of JSON-RPC message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Has `method` and `id`: expects an answer.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id`, no `method` (a result or an error).
    Response,
}

/// The routing view of one message.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) kind: Kind,
    /// The `id` exactly as sent (JSON text), if any.
    pub(crate) id: Option<Box<RawValue>>,
    pub(crate) method: Option<String>,
    /// `params.name` (tools/call, prompts/get) or `params.uri` (resources/read).
    pub(crate) name: Option<String>,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`: set only by
    /// stateless (2026-07-28 and later) clients.
    pub(crate) stateless_version: Option<String>,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    id: PresentId<'a>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// The `id` member exactly as sent, `null` included (an `Option` would turn
/// `"id": null` into "no id", but an error answer with a null id is a response).
#[derive(Default)]
struct PresentId<'a>(Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for PresentId<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|v| PresentId(Some(v)))
    }
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    name: Option<IgnoredOr<String>>,
    #[serde(default)]
    uri: Option<IgnoredOr<String>>,
    #[serde(default, rename = "_meta")]
    meta: Option<IgnoredOr<Meta>>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default, rename = "io.modelcontextprotocol/protocolVersion")]
    version: Option<IgnoredOr<String>>,
}

/// A member that is read when it has the expected type and ignored otherwise,
/// so an odd `params` never makes the bridge refuse a message the server
/// might accept.
#[derive(Deserialize)]
#[serde(untagged)]
enum IgnoredOr<T> {
    Value(T),
    Other(IgnoredAny),
}

impl<T> IgnoredOr<T> {
    fn value(self) -> Option<T> {
        match self {
            IgnoredOr::Value(v) => Some(v),
            IgnoredOr::Other(_) => None,
        }
    }
}

/// The message is not a JSON-RPC message the bridge can route.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Not a JSON object (or not JSON at all).
    #[error("not a JSON-RPC message: {0}")]
    Json(#[from] serde_json::Error),
    /// Neither `method` nor `id`.
    #[error("not a JSON-RPC message: it has neither \"method\" nor \"id\"")]
    Neither,
}

impl Envelope {
    /// Reads the routing members of one message.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let raw: Raw<'_> = serde_json::from_slice(bytes)?;
        let id = raw
            .id
            .0
            .filter(|v| v.get().trim() != "null")
            .map(RawValue::to_owned);
        let kind = match (&raw.method, &id) {
            (Some(_), Some(_)) => Kind::Request,
            (Some(_), None) => Kind::Notification,
            (None, Some(_)) => Kind::Response,
            // An error response to an unparseable request has `"id": null`.
            (None, None) if raw.id.0.is_some() => Kind::Response,
            (None, None) => return Err(EnvelopeError::Neither),
        };
        let (mut name, mut stateless_version) = (None, None);
        if kind != Kind::Response
            && let Some(params) = raw.params
        {
            // Params that are not an object (or odd members) route like no params.
            if let Ok(p) = serde_json::from_str::<Params>(params.get()) {
                name = match raw.method.as_deref() {
                    Some("tools/call" | "prompts/get") => p.name.and_then(IgnoredOr::value),
                    Some("resources/read") => p.uri.and_then(IgnoredOr::value),
                    _ => None,
                };
                stateless_version = p
                    .meta
                    .and_then(IgnoredOr::value)
                    .and_then(|m| m.version)
                    .and_then(IgnoredOr::value);
            }
        }
        Ok(Envelope {
            kind,
            id,
            method: raw.method,
            name,
            stateless_version,
        })
    }

    /// Whether this is the answer to the request whose id is `id`.
    pub(crate) fn answers(&self, id: &RawValue) -> bool {
        self.kind == Kind::Response && self.id.as_deref().is_some_and(|mine| same_id(mine, id))
    }
}

/// Two JSON-RPC ids are the same id (compared as JSON, so `1` and ` 1` match).
pub(crate) fn same_id(a: &RawValue, b: &RawValue) -> bool {
    a.get().trim() == b.get().trim()
        || serde_json::from_str::<serde_json::Value>(a.get()).ok()
            == serde_json::from_str::<serde_json::Value>(b.get()).ok()
}

#[cfg(test)]
mod tests;
