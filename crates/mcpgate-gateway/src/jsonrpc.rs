//! The JSON-RPC envelope: the few top-level fields the proxy routes on, with
//! everything else kept as raw JSON so unknown methods and fields pass untouched.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

mod member;
mod shape;
pub use shape::{MAX_DEPTH, nests_deeper_than};

/// JSON-RPC error codes the gateway itself produces.
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The upstream failed or is unreachable (implementation-defined range).
    pub const UPSTREAM_ERROR: i64 = -32000;
    /// The upstream did not answer in time.
    pub const UPSTREAM_TIMEOUT: i64 = -32001;
    /// The session is gone (ended, expired, or its upstream died).
    pub const SESSION_NOT_FOUND: i64 = -32002;
    /// A `[policy]` rule forbade the call.
    pub const POLICY_DENIED: i64 = -32003;
    /// A `[[rate_limit]]` refused the call; `data` says which and when to retry.
    pub const RATE_LIMITED: i64 = -32029;
}

/// One JSON-RPC message with only its envelope parsed.
///
/// `id`, `params`, `result` and `error` stay raw: the proxy rewrites ids and
/// routes on `method` but never re-encodes payloads it does not need to read.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The request or response id, as the sender wrote it.
    pub id: Option<Box<RawValue>>,
    /// The method, for requests and notifications.
    pub method: Option<String>,
    /// Request or notification parameters.
    pub params: Option<Box<RawValue>>,
    /// A success result.
    pub result: Option<Box<RawValue>>,
    /// An error object.
    pub error: Option<Box<RawValue>>,
    /// Any other top-level member, kept for forward compatibility.
    pub extra: Vec<(String, Box<RawValue>)>,
}

/// What a message is, by JSON-RPC's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has a method and an id: expects a response.
    Request,
    /// Has a method and no id.
    Notification,
    /// Has an id and a result or error.
    Response,
}

impl Message {
    /// Parses one message from bytes; a batch (array) is rejected by the caller.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Classifies the message, or `None` when it is not valid JSON-RPC.
    pub fn kind(&self) -> Option<Kind> {
        match (
            &self.method,
            &self.id,
            self.result.is_some() || self.error.is_some(),
        ) {
            (Some(_), Some(_), false) => Some(Kind::Request),
            (Some(_), None, false) => Some(Kind::Notification),
            (None, Some(_), true) => Some(Kind::Response),
            _ => None,
        }
    }

    /// The id as its JSON text, used as a map key.
    pub fn id_key(&self) -> Option<&str> {
        self.id.as_deref().map(RawValue::get)
    }

    /// Serializes the message to compact JSON bytes.
    pub fn to_bytes(&self) -> Bytes {
        // Serializing raw values and strings cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A request built by the gateway itself.
    pub fn request(id: Box<RawValue>, method: &str, params: Option<Box<RawValue>>) -> Self {
        Message {
            id: Some(id),
            method: Some(method.to_owned()),
            params,
            ..Default::default()
        }
    }

    /// A notification built by the gateway itself.
    pub fn notification(method: &str, params: Option<Box<RawValue>>) -> Self {
        Message {
            method: Some(method.to_owned()),
            params,
            ..Default::default()
        }
    }

    /// A success response.
    pub fn response(id: Box<RawValue>, result: Box<RawValue>) -> Self {
        Message {
            id: Some(id),
            result: Some(result),
            ..Default::default()
        }
    }

    /// An error response; `id` is `null` when the request's id is unknown.
    pub fn error(id: Option<Box<RawValue>>, code: i64, message: &str) -> Self {
        let error = serde_json::json!({ "code": code, "message": message });
        Message {
            id: Some(id.unwrap_or_else(null_id)),
            error: Some(raw(&error)),
            ..Default::default()
        }
    }

    /// An error answer with `data`.
    pub fn error_with_data(
        id: Option<Box<RawValue>>,
        code: i64,
        message: &str,
        data: serde_json::Value,
    ) -> Self {
        let error = serde_json::json!({ "code": code, "message": message, "data": data });
        Message {
            id: Some(id.unwrap_or_else(null_id)),
            error: Some(raw(&error)),
            ..Default::default()
        }
    }

    /// Reads `params` into a typed view; `None` when absent or of another shape.
    pub fn params_as<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        self.params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
    }

    /// One member of `params`, unparsed: `None` when `params` is absent, not
    /// an object, or has no such member (the last one when it repeats, as a
    /// `Value` keeps it). Nothing else of `params` is built, where
    /// `params_as::<Value>()` would build all of it (the arguments too) only
    /// to read one member.
    pub fn param(&self, key: &str) -> Option<&RawValue> {
        find(self.params.as_deref()?, key)?.last
    }

    /// Several members of `params` in one pass, unparsed, in the order of
    /// `keys` (see [`Message::param`]): each `None` when `params` is absent,
    /// not an object, or has no such member.
    pub fn params_members<const N: usize>(&self, keys: [&str; N]) -> [Option<&RawValue>; N] {
        self.params
            .as_deref()
            .and_then(|p| members(p, keys))
            .unwrap_or([None; N])
    }

    /// A string member of `params` (see [`Message::param`]); `None` when it is
    /// missing or not a string.
    pub fn param_str(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        raw_str(self.param(key)?)
    }
}

/// Several members of the JSON object `obj` in one pass, unparsed, in the
/// order of `keys` (the last one of a name when it repeats); `None` when `obj`
/// is not an object. The other members are skipped, not built.
pub fn members<'a, const N: usize>(
    obj: &'a RawValue,
    keys: [&str; N],
) -> Option<[Option<&'a RawValue>; N]> {
    let mut de = serde_json::Deserializer::from_str(obj.get());
    serde::Deserializer::deserialize_any(&mut de, member::Members(keys)).ok()
}

/// Every member of the JSON object `obj`, in order, values unparsed (a name
/// that repeats keeps its first place and its last value); `None` when `obj`
/// is not an object.
pub fn entries(obj: &RawValue) -> Option<Vec<(std::borrow::Cow<'_, str>, &RawValue)>> {
    let mut de = serde_json::Deserializer::from_str(obj.get());
    serde::Deserializer::deserialize_any(&mut de, member::Entries).ok()
}

/// An object written from raw members, each value as it is.
pub fn object_of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a RawValue)>) -> Box<RawValue> {
    let mut out = String::from("{");
    for (k, v) in entries {
        if out.len() > 1 {
            out.push(',');
        }
        // A string always serializes.
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        out.push_str(v.get());
    }
    out.push('}');
    RawValue::from_string(out).unwrap_or_else(|_| unreachable_raw())
}

/// A JSON string's text, borrowed unless it holds an escape; `None` when
/// `raw` is not a string.
pub fn raw_str(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Some(std::borrow::Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(std::borrow::Cow::Owned),
    }
}

fn find<'a>(object: &'a RawValue, key: &str) -> Option<member::Found<'a>> {
    let mut de = serde_json::Deserializer::from_str(object.get());
    serde::Deserializer::deserialize_any(&mut de, member::Member(key)).ok()
}

/// A member of a JSON object given once.
#[derive(Debug, Clone, Copy)]
pub enum Sole<'a> {
    /// Not there (or `object` is not an object).
    Missing,
    /// Its value, unparsed: a slice of `object`'s text.
    Once(&'a RawValue),
    /// Given more than once: JSON parsers disagree on which one counts.
    Repeated,
}

/// Member `key` of `object`, unparsed, and whether it is given only once;
/// nothing else of the object is built.
pub fn sole_member<'a>(object: &'a RawValue, key: &str) -> Sole<'a> {
    match find(object, key) {
        Some(member::Found {
            last: Some(v),
            times: 1,
        }) => Sole::Once(v),
        Some(member::Found { times: 2.., .. }) => Sole::Repeated,
        _ => Sole::Missing,
    }
}

/// `null` as a raw id, for errors about unparseable requests.
pub fn null_id() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable_raw())
}

/// A numeric raw id.
pub fn num_id(n: u64) -> Box<RawValue> {
    RawValue::from_string(n.to_string()).unwrap_or_else(|_| unreachable_raw())
}

/// Serializes a value into a raw JSON value.
pub fn raw<T: Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| unreachable_raw())
}

fn unreachable_raw() -> Box<RawValue> {
    // Only reachable if serde_json rejects its own output; `{}` keeps the wire valid.
    serde_json::value::to_raw_value(&serde_json::Map::new()).expect("empty object serializes")
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("jsonrpc", "2.0")?;
        if let Some(id) = &self.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(method) = &self.method {
            map.serialize_entry("method", method)?;
        }
        if let Some(params) = &self.params {
            map.serialize_entry("params", params)?;
        }
        if let Some(result) = &self.result {
            map.serialize_entry("result", result)?;
        }
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
        }
        for (k, v) in &self.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A top-level member's name: the envelope's are matched without an
/// allocation (every message has four or five of them); only another
/// member's name is kept.
enum Key {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "jsonrpc" => Key::Jsonrpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other(k.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// The `jsonrpc` member's value, checked to be `"2.0"` without keeping it.
struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                if v == "2.0" {
                    Ok(Version)
                } else {
                    Err(E::custom("\"jsonrpc\" must be \"2.0\""))
                }
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC 2.0 message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
                let mut m = Message::default();
                let mut version_ok = false;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Jsonrpc => {
                            let Version = map.next_value()?;
                            version_ok = true;
                        }
                        Key::Id => m.id = Some(map.next_value()?),
                        Key::Method => m.method = Some(map.next_value()?),
                        Key::Params => m.params = Some(map.next_value()?),
                        Key::Result => m.result = Some(map.next_value()?),
                        Key::Error => m.error = Some(map.next_value()?),
                        Key::Other(key) => {
                            let v: Box<RawValue> = map.next_value()?;
                            m.extra.push((key, v));
                        }
                    }
                }
                if !version_ok {
                    return Err(de::Error::custom("missing \"jsonrpc\": \"2.0\""));
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// The `_meta.progressToken` of a request's params, as raw JSON text.
pub fn progress_token(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<Box<RawValue>>,
    }
    let p: Params = serde_json::from_str(params?.get()).ok()?;
    p.meta?.progress_token
}

/// The `progressToken` of a `notifications/progress` message.
pub fn notification_progress_token(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "progressToken")]
        progress_token: Option<Box<RawValue>>,
    }
    serde_json::from_str::<Params>(params?.get())
        .ok()?
        .progress_token
}

/// The `requestId` of a `notifications/cancelled` message.
pub fn cancelled_request_id(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        request_id: Option<Box<RawValue>>,
    }
    serde_json::from_str::<Params>(params?.get())
        .ok()?
        .request_id
}

/// `whole` with `part`, a value inside it (a slice of its text, as
/// [`sole_member`] returns), replaced by `with`; every other byte as it was.
/// `None` if `part` is not inside `whole`.
pub fn spliced(whole: &RawValue, part: &RawValue, with: &RawValue) -> Option<Box<RawValue>> {
    let (w, p) = (whole.get(), part.get());
    let start = (p.as_ptr() as usize).checked_sub(w.as_ptr() as usize)?;
    let end = start.checked_add(p.len())?;
    // Same address and length: the slice itself (`get` also refuses a cut
    // inside a character).
    if !std::ptr::eq(w.get(start..end)?, p) {
        return None;
    }
    let mut out = String::with_capacity(w.len() - p.len() + with.get().len());
    out.push_str(&w[..start]);
    out.push_str(with.get());
    out.push_str(&w[end..]);
    RawValue::from_string(out).ok()
}

/// Rewrites one top-level member of an object-valued raw JSON, leaving the rest untouched.
pub fn replace_member(obj: &RawValue, key: &str, value: &RawValue) -> Option<Box<RawValue>> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(obj.get()).ok()?;
    map.insert(key.to_owned(), serde_json::from_str(value.get()).ok()?);
    Some(raw(&map))
}

/// Rewrites `_meta.progressToken` inside request params.
pub fn replace_progress_token(params: &RawValue, token: &RawValue) -> Option<Box<RawValue>> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(params.get()).ok()?;
    let meta = map.get_mut("_meta")?.as_object_mut()?;
    meta.insert(
        "progressToken".to_owned(),
        serde_json::from_str(token.get()).ok()?,
    );
    Some(raw(&map))
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests;

/// `params.protocolVersion` of an `initialize` request.
pub fn requested_protocol_version(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_str::<P>(params?.get())
        .ok()?
        .protocol_version
}

/// `result.protocolVersion` of an `initialize` response.
pub fn result_protocol_version(result: &RawValue) -> Option<String> {
    requested_protocol_version(Some(result))
}

/// A cached `initialize` result answered to another client: the version is the
/// client's own when the gateway can speak it and it is not newer than the upstream's.
pub fn with_protocol_version(result: &RawValue, requested: Option<&str>) -> Box<RawValue> {
    let upstream = result_protocol_version(result);
    match (requested, upstream.as_deref()) {
        (Some(req), Some(up)) if req < up && req >= "2024-11-05" => {
            replace_member(result, "protocolVersion", &raw(&req))
                .unwrap_or_else(|| result.to_owned())
        }
        _ => result.to_owned(),
    }
}
