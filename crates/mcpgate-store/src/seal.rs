//! Encryption at rest: a [`MasterKey`] seals small secrets (signing keys,
//! later vault entries) with AES-256-GCM.
//!
//! A sealed value is `version (1) ‖ key id (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//! The nonce is random per seal; the caller's `aad` (e.g. the row's key) binds
//! a sealed value to its place, so it cannot be moved to another row. The key
//! id is the first byte of the key's SHA-256, so a wrong master key is told
//! apart from a damaged value, and a rotation can find what to re-seal. The
//! cipher is [`AeadKey`], which the gateway's sealed session ids use too.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mcpgate_types::{AeadError, AeadKey, KeyFileError, MIN_SEALED_LEN};

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "MCPGATE_MASTER_KEY";

/// The master key file inside the data directory (used when the variable is unset).
pub const MASTER_KEY_FILE: &str = "master.key";

const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 2;

/// Why a master key cannot be loaded or a value cannot be unsealed.
// `BadKey` and `Io` are the gateway's `SessionKeyError` variants again: each
// crate keeps its own error enum, and the message names which key is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// `MCPGATE_MASTER_KEY` or the key file does not hold base64 of 32 bytes.
    #[error(
        "{origin}: the master key must be base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)"
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
    /// The value was sealed under another master key.
    #[error(
        "sealed under master key id {sealed:02x}, but the configured master key has id {current:02x}: set {MASTER_KEY_ENV} (or restore {MASTER_KEY_FILE}) to the key the data was written with"
    )]
    WrongKey {
        /// The id in the sealed value.
        sealed: u8,
        /// The configured key's id.
        current: u8,
    },
    /// The value is truncated, of an unknown format, or fails authentication.
    #[error("the sealed value is damaged or does not belong here")]
    Damaged,
    /// No randomness for a nonce, or the cipher refused.
    #[error("encryption failed")]
    Crypto,
}

/// An AES-256-GCM key ([`AeadKey`]), framing what it seals with a format
/// version and its id. `Debug` never shows it.
pub struct MasterKey {
    key: AeadKey,
    /// For [`MasterKey::derive`]: secrets that every replica must share
    /// without storing them (DPoP nonces).
    kdf: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {:02x})", self.key.id())
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<MasterKey, SealError> {
        let key = AeadKey::from_bytes(bytes).ok_or_else(|| SealError::BadKey {
            origin: origin.to_owned(),
        })?;
        Ok(MasterKey {
            key,
            kdf: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
        })
    }

    /// A key from base64 text (whitespace around it ignored).
    pub fn from_base64(text: &str, origin: &str) -> Result<MasterKey, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey {
                origin: origin.to_owned(),
            })?;
        MasterKey::from_bytes(&bytes, origin)
    }

    /// The key from `MCPGATE_MASTER_KEY`, else from `<data_dir>/master.key`,
    /// which is created (mode 0600, 32 random bytes) when missing.
    pub fn load(data_dir: &Path) -> Result<MasterKey, SealError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return MasterKey::from_base64(&text, MASTER_KEY_ENV);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let io = |source| SealError::Io {
            path: path.clone(),
            source,
        };
        crate::create_private_dir(data_dir).map_err(io)?;
        let file = mcpgate_types::read_or_create_key_file(&path).map_err(|e| match e {
            KeyFileError::Io(e) => io(e),
            _ => SealError::Crypto,
        })?;
        MasterKey::from_base64(&file.text, &path.display().to_string())
    }

    /// A secret for `purpose`, the same on every process with this master
    /// key, and unrelated to the key itself or to another purpose's.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        aws_lc_rs::hmac::sign(&self.kdf, purpose.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// The key id stored in every value it seals.
    pub fn id(&self) -> u8 {
        self.key.id()
    }

    /// Encrypts `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(HEADER_LEN + MIN_SEALED_LEN + plaintext.len());
        out.push(FORMAT_VERSION);
        out.push(self.key.id());
        self.key
            .seal_append(&mut out, plaintext, aad)
            .map_err(|_| SealError::Crypto)?;
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN + MIN_SEALED_LEN || sealed[0] != FORMAT_VERSION {
            return Err(SealError::Damaged);
        }
        if sealed[1] != self.key.id() {
            return Err(SealError::WrongKey {
                sealed: sealed[1],
                current: self.key.id(),
            });
        }
        self.key
            .open(&sealed[HEADER_LEN..], aad)
            .map_err(|_: AeadError| SealError::Damaged)
    }
}

#[cfg(test)]
mod tests;
