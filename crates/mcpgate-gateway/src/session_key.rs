//! Sealed `Mcp-Session-Id`s: the id a client holds is an AES-256-GCM sealed
//! record of what any replica sharing the key needs to continue the session
//! (upstream, the upstream's own session id, subject, negotiated version,
//! creation time). The session table stays the fast path; a replica opens an
//! id only when its table does not know it.
//!
//! An id is `s1.` and the URL-safe base64 (no padding) of
//! `key id (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`: visible ASCII, as the
//! spec requires of session ids.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_types::{AeadKey, KeyFileError, MIN_SEALED_LEN, SessionId, Subject};
use serde::{Deserialize, Serialize};

/// The key file inside the data directory, when no key or file is configured.
pub const SESSION_KEY_FILE: &str = "session.key";

const PREFIX: &str = "s1.";
/// Binds a sealed value to its use: a value sealed for something else under
/// the same key does not open as a session id.
const AAD: &[u8] = b"mcpgate session id v1";
/// A virtual server's session id (`v1.` and the same layout): its own use, so
/// that neither kind of id opens as the other.
const VIRTUAL_PREFIX: &str = "v1.";
const VIRTUAL_AAD: &[u8] = b"mcpgate virtual session id v1";
/// A 2026-07-28 `requestState` (`r1.` and the same layout).
const STATE_PREFIX: &str = "r1.";
const STATE_AAD: &[u8] = b"mcpgate requestState v1";
/// An upstream's SSE event id inside one of ours (`e1.` and the same layout);
/// the associated data also names the session it was handed out in.
const EVENT_PREFIX: &str = "e1.";
const EVENT_AAD: &[u8] = b"mcpgate upstream event id v1 ";

/// Why a session key cannot be loaded.
// `BadKey` and `Io` are the store's `SealError` variants again: each crate
// keeps its own error enum, and the message names which key is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionKeyError {
    /// Not base64 of exactly 32 bytes.
    #[error(
        "{origin}: a session key must be base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)"
    )]
    BadKey {
        /// Where the key came from.
        origin: String,
    },
    /// The key file cannot be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No randomness for a new key.
    #[error("no randomness for a new session key")]
    Random,
}

/// Why a presented id did not open (logged, never shown to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unsealed {
    /// Not of the sealed form at all (forged, or from an older gateway).
    #[error("not a sealed session id")]
    NotSealed,
    /// Sealed under a key that is neither the current nor the previous one.
    #[error("sealed under an unknown session key (id {0:02x})")]
    ForeignKey(u8),
    /// The right key id, but it does not authenticate.
    #[error("the sealed session id does not authenticate")]
    Damaged,
}

/// How the session reaches its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Carrier {
    /// A Streamable HTTP upstream session: any replica can speak to it.
    #[serde(rename = "h")]
    Http,
    /// A stdio child or a legacy SSE connection: it lives in one process.
    #[serde(rename = "l")]
    Local,
}

/// What a sealed id carries (short names: the id is on every request).
/// Two ids never repeat: each seal has its own random nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionClaims {
    /// The upstream's name.
    #[serde(rename = "u")]
    pub(crate) upstream: String,
    #[serde(rename = "c")]
    pub(crate) carrier: Carrier,
    /// The upstream's own `Mcp-Session-Id`, if it gave one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_session: Option<SessionId>,
    /// Who opened it.
    #[serde(rename = "p")]
    pub(crate) subject: Subject,
    /// The negotiated protocol version.
    #[serde(rename = "v")]
    pub(crate) version: String,
    /// Unix seconds at initialize.
    #[serde(rename = "t")]
    pub(crate) created: u64,
    /// For a [`Carrier::Local`] session: the internal address of the replica
    /// that holds it, where other replicas forward its requests.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// What a virtual server's sealed session id carries: what another replica
/// needs to check a request and to find the replica that holds the session
/// (its member sessions, which may be stdio children, live there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VirtualClaims {
    /// The virtual server's name.
    #[serde(rename = "n")]
    pub(crate) server: String,
    /// Who opened it.
    #[serde(rename = "p")]
    pub(crate) subject: Subject,
    /// The negotiated protocol version.
    #[serde(rename = "v")]
    pub(crate) version: String,
    /// Unix seconds at initialize.
    #[serde(rename = "t")]
    pub(crate) created: u64,
    /// The internal address of the replica that holds it; none when that
    /// replica has no internal listener.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// What a sealed 2026-07-28 `requestState` carries: the parked call's name in
/// the table of the replica that holds it, and whose call it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateClaims {
    pub(crate) token: String,
    pub(crate) subject: Subject,
    pub(crate) upstream: String,
    pub(crate) method: String,
    /// The internal address of the replica that holds the parked call, where
    /// other replicas forward the follow-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// Where in an upstream's stream an event of ours was: what a replica without
/// the stream's log needs to resume it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventPosition {
    /// The upstream's SSE event id.
    #[serde(rename = "u")]
    pub(crate) upstream_id: String,
    /// For a POST's answer stream: the request's method, whose answer the
    /// resuming replica rewrites as the answering one did (policy's list filters).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<String>,
}

/// The current session key, and the previous one during a rotation (opened,
/// never used to seal). `Debug` never shows them.
pub struct SessionKeys {
    current: AeadKey,
    previous: Option<AeadKey>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKeys(id {:02x}", self.current.id())?;
        if let Some(p) = &self.previous {
            write!(f, ", previous {:02x}", p.id())?;
        }
        write!(f, ")")
    }
}

fn key_from_base64(text: &str, origin: &str) -> Result<AeadKey, SessionKeyError> {
    AeadKey::from_base64(text).ok_or_else(|| SessionKeyError::BadKey {
        origin: origin.to_owned(),
    })
}

impl SessionKeys {
    /// Keys from base64 text (`server.session_key`, `server.session_key_previous`).
    pub fn from_base64(
        current: &str,
        previous: Option<&str>,
        origin: &str,
    ) -> Result<SessionKeys, SessionKeyError> {
        Ok(SessionKeys {
            current: key_from_base64(current, origin)?,
            previous: previous
                .map(|p| key_from_base64(p, &format!("{origin} (previous)")))
                .transpose()?,
        })
    }

    /// The key in `path`, which is created (mode 0600, 32 random bytes) when
    /// missing; `previous` as in [`SessionKeys::from_base64`].
    pub fn load_file(path: &Path, previous: Option<&str>) -> Result<SessionKeys, SessionKeyError> {
        let io = |source| SessionKeyError::Io {
            path: path.to_owned(),
            source,
        };
        let origin = path.display().to_string();
        let file = mcpgate_types::read_or_create_key_file(path).map_err(|e| match e {
            KeyFileError::Io(e) => io(e),
            _ => SessionKeyError::Random,
        })?;
        if file.created {
            tracing::info!(path = %origin, "created a session key; replicas must share it (server.session_key_file or server.session_key)");
        }
        SessionKeys::from_base64(&file.text, previous, &origin)
    }

    /// A random key that only this process knows (tests, embedders).
    pub fn random() -> SessionKeys {
        let bytes = mcpgate_types::random::bytes::<32>();
        SessionKeys {
            current: AeadKey::from_bytes(&bytes).unwrap_or_else(|| unreachable!("32 bytes")),
            previous: None,
        }
    }

    /// The id for a new session. `None` only if the system has no randomness
    /// (a prefix and base64url are always a session id's visible ASCII).
    pub(crate) fn seal(&self, claims: &SessionClaims) -> Option<SessionId> {
        self.seal_as(PREFIX, AAD, claims)
            .and_then(|s| SessionId::try_from(s).ok())
    }

    /// What a presented id carries, if one of the keys sealed it.
    pub(crate) fn open(&self, id: &str) -> Result<SessionClaims, Unsealed> {
        self.open_as(PREFIX, AAD, id)
    }

    /// The id for a new virtual session (`None` as for [`SessionKeys::seal`]).
    pub(crate) fn seal_virtual(&self, claims: &VirtualClaims) -> Option<SessionId> {
        self.seal_as(VIRTUAL_PREFIX, VIRTUAL_AAD, claims)
            .and_then(|s| SessionId::try_from(s).ok())
    }

    /// What a presented virtual session id carries, if one of the keys sealed it.
    pub(crate) fn open_virtual(&self, id: &str) -> Result<VirtualClaims, Unsealed> {
        self.open_as(VIRTUAL_PREFIX, VIRTUAL_AAD, id)
    }

    /// A `requestState` for a parked call.
    pub(crate) fn seal_state(&self, claims: &StateClaims) -> Option<String> {
        self.seal_as(STATE_PREFIX, STATE_AAD, claims)
    }

    /// What a presented `requestState` carries, if one of the keys sealed it.
    pub(crate) fn open_state(&self, state: &str) -> Result<StateClaims, Unsealed> {
        self.open_as(STATE_PREFIX, STATE_AAD, state)
    }

    /// An upstream event position as the events of session `session` carry it.
    pub(crate) fn seal_event(
        &self,
        session: &SessionId,
        position: &EventPosition,
    ) -> Option<String> {
        self.seal_as(EVENT_PREFIX, &event_aad(session), position)
    }

    /// The upstream event position `sealed` carries, if it was handed out in `session`.
    pub(crate) fn open_event(
        &self,
        session: &SessionId,
        sealed: &str,
    ) -> Result<EventPosition, Unsealed> {
        self.open_as(EVENT_PREFIX, &event_aad(session), sealed)
    }

    /// Seals `claims` for one use (`prefix`, bound by `aad`).
    pub(crate) fn seal_as<T: Serialize>(
        &self,
        prefix: &str,
        aad: &[u8],
        claims: &T,
    ) -> Option<String> {
        let body = serde_json::to_vec(claims).ok()?;
        let mut raw = Vec::with_capacity(1 + MIN_SEALED_LEN + body.len());
        raw.push(self.current.id());
        self.current.seal_append(&mut raw, &body, aad).ok()?;
        Some(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Opens what [`SessionKeys::seal_as`] sealed for the same use.
    pub(crate) fn open_as<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        aad: &[u8],
        id: &str,
    ) -> Result<T, Unsealed> {
        let raw = id
            .strip_prefix(prefix)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() > 1 + MIN_SEALED_LEN)
            .ok_or(Unsealed::NotSealed)?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id() == raw[0])
            .ok_or(Unsealed::ForeignKey(raw[0]))?;
        let plain = key.open(&raw[1..], aad).map_err(|_| Unsealed::Damaged)?;
        serde_json::from_slice(&plain).map_err(|_| Unsealed::Damaged)
    }
}

fn event_aad(session: &SessionId) -> Vec<u8> {
    [EVENT_AAD, session.as_str().as_bytes()].concat()
}

/// 128 random bits, hex.
pub(crate) fn random_hex() -> String {
    mcpgate_types::random::hex::<16>()
}

/// A session id that carries nothing (the legacy era's, or one that could
/// not be sealed): 128 random bits.
pub(crate) fn random_session_id() -> SessionId {
    SessionId::from_random_bits(u128::from_be_bytes(mcpgate_types::random::bytes()))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            upstream: "demo".into(),
            carrier: Carrier::Http,
            upstream_session: Some("up-1".parse().unwrap()),
            subject: "alice".parse().unwrap(),
            version: "2025-06-18".into(),
            created: 1_700_000_000,
            owner: None,
        }
    }

    fn sid(s: &str) -> SessionId {
        s.parse().unwrap()
    }

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const K2: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn an_id_opens_under_its_key_and_is_visible_ascii() {
        let k = SessionKeys::from_base64(K1, None, "test").unwrap();
        let c = claims();
        let id = k.seal(&c).unwrap().to_string();
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{id}");
        assert!(!id.contains("alice") && !id.contains("up-1"));
        assert_eq!(k.open(&id).unwrap(), c);
        assert_ne!(
            k.seal(&c).unwrap().to_string(),
            id,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn forged_foreign_and_altered_ids_do_not_open() {
        let k1 = SessionKeys::from_base64(K1, None, "test").unwrap();
        let k2 = SessionKeys::from_base64(K2, None, "test").unwrap();
        let id = k1.seal(&claims()).unwrap().to_string();
        assert_eq!(k1.open("0123abcd"), Err(Unsealed::NotSealed));
        assert_eq!(k1.open("s1.!!"), Err(Unsealed::NotSealed));
        assert!(matches!(k2.open(&id), Err(Unsealed::ForeignKey(_))));
        let mut altered = id.clone().into_bytes();
        let last = altered.len() - 5;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(k1.open(&altered), Err(Unsealed::Damaged));
    }

    #[test]
    fn a_request_state_is_not_a_session_id_and_opens_only_as_itself() {
        let k = SessionKeys::from_base64(K1, None, "test").unwrap();
        let c = StateClaims {
            token: random_hex(),
            subject: "alice".parse().unwrap(),
            upstream: "demo".into(),
            method: "tools/call".into(),
            owner: Some("127.0.0.1:7070".into()),
        };
        let state = k.seal_state(&c).unwrap();
        assert_eq!(k.open_state(&state).unwrap(), c);
        assert_eq!(k.open(&state), Err(Unsealed::NotSealed));
        let id = k.seal(&claims()).unwrap().to_string();
        assert_eq!(k.open_state(&id), Err(Unsealed::NotSealed));
        // Same key, other purpose: the associated data keeps them apart.
        let swapped = format!("s1.{}", &state[3..]);
        assert_eq!(k.open(&swapped), Err(Unsealed::Damaged));
    }

    #[test]
    fn a_virtual_session_id_opens_only_as_itself() {
        let k = SessionKeys::from_base64(K1, None, "test").unwrap();
        let c = VirtualClaims {
            server: "work".into(),
            subject: "alice".parse().unwrap(),
            version: "2025-11-25".into(),
            created: 1_700_000_000,
            owner: Some("127.0.0.1:7070".into()),
        };
        let id = k.seal_virtual(&c).unwrap().to_string();
        assert!(id.starts_with("v1."), "{id}");
        assert!(!id.contains("alice") && !id.contains("work"));
        assert_eq!(k.open_virtual(&id).unwrap(), c);
        assert_eq!(k.open(&id), Err(Unsealed::NotSealed));
        let upstream = k.seal(&claims()).unwrap().to_string();
        assert_eq!(k.open_virtual(&upstream), Err(Unsealed::NotSealed));
        // Same key, other purpose: the associated data keeps them apart.
        let swapped = format!("v1.{}", &upstream[3..]);
        assert_eq!(k.open_virtual(&swapped), Err(Unsealed::Damaged));
        let other = SessionKeys::from_base64(K2, None, "test").unwrap();
        assert!(matches!(
            other.open_virtual(&id),
            Err(Unsealed::ForeignKey(_))
        ));
    }

    #[test]
    fn an_upstream_event_id_opens_only_in_its_session() {
        let k = SessionKeys::from_base64(K1, None, "test").unwrap();
        let pos = EventPosition {
            upstream_id: "event 7\nof 9".into(),
            method: Some("tools/list".into()),
        };
        let sealed = k.seal_event(&sid("s1.session-a"), &pos).unwrap();
        assert!(sealed.starts_with("e1."), "{sealed}");
        assert!(
            sealed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "an SSE id and a header value: {sealed}"
        );
        assert_eq!(k.open_event(&sid("s1.session-a"), &sealed).unwrap(), pos);
        assert_eq!(
            k.open_event(&sid("s1.session-b"), &sealed),
            Err(Unsealed::Damaged),
            "replayed into another session"
        );
        assert_eq!(
            k.open_event(&sid("s1.session-a"), "7"),
            Err(Unsealed::NotSealed)
        );
        assert_eq!(k.open(&sealed), Err(Unsealed::NotSealed));
    }

    #[test]
    fn the_previous_key_opens_but_does_not_seal() {
        let old = SessionKeys::from_base64(K1, None, "test").unwrap();
        let rotated = SessionKeys::from_base64(K2, Some(K1), "test").unwrap();
        let id = old.seal(&claims()).unwrap().to_string();
        assert_eq!(rotated.open(&id).unwrap().subject, "alice");
        let new_id = rotated.seal(&claims()).unwrap().to_string();
        assert!(old.open(&new_id).is_err());
    }

    #[test]
    fn a_key_file_is_created_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SESSION_KEY_FILE);
        let a = SessionKeys::load_file(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SessionKeys::load_file(&path, None).unwrap();
        let c = claims();
        assert_eq!(b.open(&a.seal(&c).unwrap()).unwrap(), c);
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            SessionKeys::load_file(&path, None),
            Err(SessionKeyError::BadKey { .. })
        ));
    }
}
