//! The audit trail's events, and the sink the binary installs to store them.
//!
//! Hooks anywhere call [`audit`]; until a sink is installed (tests, the
//! client commands) events go nowhere. Events never hold a secret: tool
//! arguments are a SHA-256 digest unless `audit.tool_arguments = "full"`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A user signed in.
    SignIn,
    /// A sign-in was refused (the reason says why).
    SignInFailed,
    /// A user approved a client's access.
    ConsentGiven,
    /// A user withdrew a client's access.
    ConsentRevoked,
    /// An OAuth client was registered.
    ClientRegistered,
    /// An OAuth client was removed.
    ClientRemoved,
    /// An access token was issued.
    TokenIssued,
    /// A refresh token was exchanged.
    TokenRefreshed,
    /// A token was revoked.
    TokenRevoked,
    /// A used code or refresh token came back.
    ReplayDetected,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// A Basic user was created.
    UserCreated,
    /// A Basic user was removed.
    UserRemoved,
    /// A secret was stored in the credential vault.
    VaultSecretSet,
    /// The token signing key was rotated.
    SigningKeyRotated,
    /// A tool was called through the gateway.
    ToolCalled,
    /// The gateway's policy refused a request.
    PolicyDenied,
    /// The `[policy]` rules allowed a call.
    PolicyAllowed,
    /// Records older than a date were removed (`mcpgate audit prune`).
    AuditPruned,
}

impl AuditKind {
    /// The name stored and shown (`sign_in`, `tool_called`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SignIn => "sign_in",
            AuditKind::SignInFailed => "sign_in_failed",
            AuditKind::ConsentGiven => "consent_given",
            AuditKind::ConsentRevoked => "consent_revoked",
            AuditKind::ClientRegistered => "client_registered",
            AuditKind::ClientRemoved => "client_removed",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRefreshed => "token_refreshed",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::ReplayDetected => "replay_detected",
            AuditKind::ApiKeyCreated => "api_key_created",
            AuditKind::ApiKeyRevoked => "api_key_revoked",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserRemoved => "user_removed",
            AuditKind::VaultSecretSet => "vault_secret_set",
            AuditKind::SigningKeyRotated => "signing_key_rotated",
            AuditKind::ToolCalled => "tool_called",
            AuditKind::PolicyDenied => "policy_denied",
            AuditKind::PolicyAllowed => "policy_allowed",
            AuditKind::AuditPruned => "audit_pruned",
        }
    }

    /// Every kind, for `--kind` validation and the docs.
    pub const ALL: &[AuditKind] = &[
        AuditKind::SignIn,
        AuditKind::SignInFailed,
        AuditKind::ConsentGiven,
        AuditKind::ConsentRevoked,
        AuditKind::ClientRegistered,
        AuditKind::ClientRemoved,
        AuditKind::TokenIssued,
        AuditKind::TokenRefreshed,
        AuditKind::TokenRevoked,
        AuditKind::ReplayDetected,
        AuditKind::ApiKeyCreated,
        AuditKind::ApiKeyRevoked,
        AuditKind::UserCreated,
        AuditKind::UserRemoved,
        AuditKind::VaultSecretSet,
        AuditKind::SigningKeyRotated,
        AuditKind::ToolCalled,
        AuditKind::PolicyDenied,
        AuditKind::PolicyAllowed,
        AuditKind::AuditPruned,
    ];
}

/// One security event. Every field is optional but the kind; `detail` holds
/// what the kind needs beyond the common fields (never a secret).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// What happened.
    pub kind: AuditKind,
    /// Who did it (a user, a key's subject), or who was claimed: a failed
    /// sign-in's name as typed, which is why this is text and not a `Subject`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Through which OAuth client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// To which upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Which tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `ok`, `refused`, `failed`, or the refusal's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Anything else (an object).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event of this kind with nothing else set.
    pub fn new(kind: AuditKind) -> AuditEvent {
        AuditEvent {
            kind,
            subject: None,
            client_id: None,
            upstream: None,
            tool: None,
            outcome: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the subject.
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }

    /// Sets the client.
    pub fn client(mut self, c: Option<impl Into<String>>) -> Self {
        self.client_id = c.map(Into::into);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, o: impl Into<String>) -> Self {
        self.outcome = Some(o.into());
        self
    }

    /// Adds one member to `detail`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let Some(o) = self.detail.as_object_mut() {
            o.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// What receives events: the binary's store writer.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one event; must not block (queue it).
    fn record(&self, event: AuditEvent);
}

/// How tool arguments are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolArguments {
    /// The SHA-256 of the arguments' JSON text.
    #[default]
    Digest,
    /// The arguments themselves (they may hold personal data or secrets).
    Full,
    /// Neither.
    None,
}

static SINK: OnceLock<(Box<dyn AuditSink>, ToolArguments)> = OnceLock::new();
static WANTS_ARGS: AtomicBool = AtomicBool::new(false);

/// Installs the sink for this process; a second call is ignored (returns false).
pub fn install_audit_sink(sink: Box<dyn AuditSink>, arguments: ToolArguments) -> bool {
    let ok = SINK.set((sink, arguments)).is_ok();
    if ok {
        WANTS_ARGS.store(arguments != ToolArguments::None, Ordering::Relaxed);
    }
    ok
}

/// Whether a sink is installed (the audit trail is on).
pub(crate) fn installed() -> bool {
    SINK.get().is_some()
}

/// Records one event (nothing happens before a sink is installed).
pub fn audit(event: AuditEvent) {
    if let Some((sink, _)) = SINK.get() {
        sink.record(event);
    }
}

/// A security event with the common fields only (one-line hooks).
pub fn audit_simple(
    kind: AuditKind,
    subject: Option<&str>,
    client_id: Option<&str>,
    outcome: Option<&str>,
) {
    if SINK.get().is_none() {
        return;
    }
    let mut e = AuditEvent::new(kind).client(client_id);
    e.subject = subject.map(crate::clean::clean);
    e.outcome = outcome.map(str::to_owned);
    audit(e);
}

/// The authorization server issued an access token: counts it and records
/// `token_issued` (`token_refreshed` for the refresh grant).
pub fn token_issued<'a>(
    grant_type: &str,
    client_id: &str,
    scopes: impl IntoIterator<Item = &'a str>,
) {
    crate::metrics().token_issued(grant_type);
    if SINK.get().is_none() {
        return;
    }
    let kind = if grant_type == "refresh_token" {
        AuditKind::TokenRefreshed
    } else {
        AuditKind::TokenIssued
    };
    let scopes: Vec<&str> = scopes.into_iter().collect();
    audit(
        AuditEvent::new(kind)
            .client(Some(client_id))
            .with("grant_type", grant_type)
            .with("scope", scopes.join(" ")),
    );
}

pub(crate) fn wants_arguments() -> bool {
    WANTS_ARGS.load(Ordering::Relaxed)
}

/// The `arguments` member of a `tool_called` event's detail, as configured.
pub(crate) fn arguments_detail(arguments: &str) -> Option<(&'static str, serde_json::Value)> {
    match SINK.get().map(|(_, a)| *a)? {
        ToolArguments::Digest => Some((
            "arguments_sha256",
            hex(&Sha256::digest(arguments.as_bytes())).into(),
        )),
        ToolArguments::Full => Some((
            "arguments",
            serde_json::from_str(arguments).unwrap_or(serde_json::Value::Null),
        )),
        ToolArguments::None => None,
    }
}

/// Lower-case hex, without the formatting machinery per byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}
