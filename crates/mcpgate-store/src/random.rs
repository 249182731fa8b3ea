//! The one source of randomness of the store and the authorization server:
//! aws-lc-rs's CSPRNG (the crypto provider of the whole binary), for keys,
//! passwords, codes and tokens.

/// Digits, upper- and lower-case ASCII letters.
pub const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols,
/// not empty): bytes past the largest multiple of its length are drawn
/// again, so that no symbol is likelier than another.
pub fn string_from(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len();
    assert!((1..=256).contains(&n), "an alphabet has 1 to 256 symbols");
    let limit = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill(&mut buf);
        for b in buf.iter().map(|&b| usize::from(b)).filter(|&b| b < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[b % n]));
        }
    }
    out
}

fn fill(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        // AWS-LC aborts itself when its generator fails; this is the same,
        // said here: a secret from a failed generator must never be issued.
        tracing::error!("the system's random number generator failed");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_use_only_the_alphabet_and_every_symbol_of_it() {
        let s = string_from(b"ab", 400);
        assert_eq!(s.len(), 400);
        assert!(s.contains('a') && s.contains('b'));
        assert!(s.bytes().all(|c| c == b'a' || c == b'b'));
        let s = string_from(ALPHANUMERIC, 43);
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(string_from(ALPHANUMERIC, 43), s);
        assert_ne!(bytes::<32>(), bytes::<32>());
        assert_eq!(string_from(b"xyz", 0), "");
    }
}
