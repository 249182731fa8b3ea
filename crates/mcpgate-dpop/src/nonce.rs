//! Server nonces (RFC 9449 §8, §9) without server state: a nonce is the
//! number of the current time slot and its HMAC, so every replica holding the
//! same secret issues and accepts the same nonces, and nothing is stored.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long one nonce is current. A nonce of the previous slot is accepted
/// too, so a client's nonce stays good for at least this long.
pub const SLOT: Duration = Duration::from_secs(300);

/// Bytes of the HMAC kept in a nonce.
const TAG_LEN: usize = 16;

/// Makes and checks nonces.
#[derive(Clone)]
pub struct Nonces {
    key: hmac::Key,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nonces(..)")
    }
}

impl Nonces {
    /// Nonces under `secret`; replicas that share it accept each other's.
    pub fn new(secret: &[u8]) -> Self {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The nonce to send now (`DPoP-Nonce`).
    pub fn current(&self, now: SystemTime) -> String {
        self.for_slot(slot(now))
    }

    /// Whether `nonce` is this slot's or the previous one's.
    pub fn accepts(&self, nonce: &str, now: SystemTime) -> bool {
        let s = slot(now);
        [s, s.saturating_sub(1)].iter().any(|s| {
            constant_time::verify_slices_are_equal(self.for_slot(*s).as_bytes(), nonce.as_bytes())
                .is_ok()
        })
    }

    fn for_slot(&self, slot: u64) -> String {
        let bytes = slot.to_be_bytes();
        let tag = hmac::sign(&self.key, &bytes);
        let mut out = bytes.to_vec();
        out.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }
}

fn slot(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / SLOT.as_secs())
}
