//! Why a part of the guard could not be built, or could not do its work
//! outside a request. Refusals of a request are [`AuthRejection`](crate::AuthRejection)s.

/// What went wrong building or running a guard part. Each message names the
/// setting at fault and what to write instead; shown to the operator, never
/// to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A verifier's or a policy's configuration is wrong: a missing or
    /// contradictory setting, an unreadable secret, a bad URL, glob or regex.
    /// Several problems come one per line.
    #[error("{0}")]
    Config(String),
    /// A duration is not written as configuration writes them.
    #[error("invalid duration {text:?} ({reason}): write e.g. \"30s\", \"5m\", \"250ms\", \"7d\"")]
    Duration {
        /// What was written.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The identity-token key cannot be read, generated or described.
    #[error("{0}")]
    IdentityKey(String),
    /// Signing a token failed (no randomness, an unusable key).
    #[error("cannot sign the identity token: {0}")]
    Signing(String),
    /// The identity provider's key set could not be fetched.
    #[error("{0}")]
    KeysUnavailable(String),
}
