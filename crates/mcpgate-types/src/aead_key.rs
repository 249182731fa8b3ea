//! One AES-256-GCM key with a one-byte id: the store's master key and the
//! gateway's session keys are each one of these, framed differently around
//! what [`AeadKey::seal_append`] writes.
//!
//! The id is the first byte of the key's SHA-256, so a reader tells "sealed
//! under another key" from "damaged", and a rotation finds the right key
//! without trying each one. The nonce is random per seal; the caller's `aad`
//! binds a sealed value to its use or its place.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The length of a key.
pub const KEY_LEN: usize = 32;
/// The length of the tag that ends every sealed value.
pub const TAG_LEN: usize = 16;
/// The shortest `nonce ‖ ciphertext ‖ tag` (an empty plaintext).
pub const MIN_SEALED_LEN: usize = NONCE_LEN + TAG_LEN;

/// Why a value cannot be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// No randomness for a nonce, or the cipher refused.
    #[error("encryption failed")]
    Seal,
    /// Truncated, or fails authentication under this key and `aad`.
    #[error("the sealed value does not authenticate")]
    Damaged,
}

/// An AES-256-GCM key and its id. `Debug` shows the id, never the key.
pub struct AeadKey {
    key: LessSafeKey,
    id: u8,
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AeadKey(id {:02x})", self.id)
    }
}

impl AeadKey {
    /// The key of these 32 bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<AeadKey> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        let id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref()[0];
        Some(AeadKey {
            key: LessSafeKey::new(key),
            id,
        })
    }

    /// The key of standard base64 text (white space around it ignored);
    /// `None` unless it decodes to exactly 32 bytes.
    pub fn from_base64(text: &str) -> Option<AeadKey> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        AeadKey::from_bytes(&bytes)
    }

    /// The id a framing stores next to what this key seals.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Appends `nonce (12) ‖ ciphertext ‖ tag (16)` of `plaintext`, bound to
    /// `aad`, to `out` (which holds the caller's header, if any).
    pub fn seal_append(
        &self,
        out: &mut Vec<u8>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(), AeadError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| AeadError::Seal)?;
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| AeadError::Seal)?;
        out.reserve(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// The plaintext of what [`AeadKey::seal_append`] appended (without the
    /// caller's header), sealed with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, AeadError> {
        if sealed.len() < MIN_SEALED_LEN {
            return Err(AeadError::Damaged);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::Damaged)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| AeadError::Damaged)?;
        Ok(plain.to_vec())
    }
}

/// Why a key file cannot be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading, creating or writing the file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// No randomness for a new key.
    #[error("no randomness for a new key")]
    Random,
}

/// A key file's text, and whether this call created it.
#[derive(Debug)]
pub struct KeyFile {
    /// The file's text (base64 of the key, maybe with a newline).
    pub text: String,
    /// Whether the file was missing and this call wrote a new key to it.
    pub created: bool,
}

/// The text of the key file at `path`; a missing file is created with mode
/// 0600 holding base64 of 32 random bytes. When another process creates it
/// first, its key is read and used, so replicas starting together agree.
pub fn read_or_create_key_file(path: &Path) -> Result<KeyFile, KeyFileError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return Ok(KeyFile {
                text,
                created: false,
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut bytes = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyFileError::Random)?;
    let text = format!("{}\n", STANDARD.encode(bytes));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes()).and_then(|()| f.sync_all())?;
            Ok(KeyFile {
                text,
                created: true,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(KeyFile {
            text: std::fs::read_to_string(path)?,
            created: false,
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const K2: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    #[test]
    fn a_value_opens_only_under_its_key_and_aad() {
        let k1 = AeadKey::from_base64(K1).unwrap();
        let k2 = AeadKey::from_base64(K2).unwrap();
        assert_ne!(k1.id(), k2.id());
        let mut out = vec![7];
        k1.seal_append(&mut out, b"secret", b"here").unwrap();
        assert_eq!(out[0], 7, "the caller's header stays in front");
        assert_eq!(out.len(), 1 + MIN_SEALED_LEN + 6);
        assert_eq!(k1.open(&out[1..], b"here").unwrap(), b"secret");
        assert_eq!(k1.open(&out[1..], b"there"), Err(AeadError::Damaged));
        assert_eq!(k2.open(&out[1..], b"here"), Err(AeadError::Damaged));
        assert_eq!(k1.open(&out[1..10], b"here"), Err(AeadError::Damaged));
    }

    #[test]
    fn keys_of_other_lengths_or_not_base64_are_refused() {
        assert!(AeadKey::from_bytes(&[0; 31]).is_none());
        assert!(AeadKey::from_base64("not base64!").is_none());
        assert!(AeadKey::from_base64(&format!(" {K1}\n")).is_some());
        assert_eq!(format!("{:?}", AeadKey::from_base64(K1).unwrap()).len(), 14);
    }

    #[test]
    fn a_key_file_is_created_once_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let a = read_or_create_key_file(&path).unwrap();
        assert!(a.created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = read_or_create_key_file(&path).unwrap();
        assert!(!b.created);
        assert_eq!(a.text, b.text);
        assert!(AeadKey::from_base64(&b.text).is_some());
        assert!(read_or_create_key_file(&dir.path().join("no/such/dir/k")).is_err());
    }
}
