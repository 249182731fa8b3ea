//! Random secrets the CLI prints once (client secrets, resource secrets, the
//! demo admin's password), drawn from aws-lc-rs, the one crypto provider.

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` letters and digits, uniformly drawn (about 5.95 bits each).
pub(crate) fn alphanumeric(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        // The system's random source failing is not something to go on from.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source failed");
        // 248 = 4 × 62: a byte below it maps onto the alphabet without bias.
        for b in bytes.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_the_length_asked_from_the_alphabet() {
        let a = super::alphanumeric(43);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, super::alphanumeric(43));
    }
}
