//! Random bytes and ids for the crates that have no randomness module of their own (the gateway,
//! the client): drawn from aws-lc-rs's CSPRNG, the binary's one crypto provider, so that a single
//! generator backs every key, token id and session id.

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        // AWS-LC aborts itself when its generator fails; this says it here too:
        // an id or key from a failed generator must never be handed out.
        tracing::error!("the system's random number generator failed");
        std::process::abort();
    }
    b
}

/// `N` random bytes as `2 × N` lower-case hex digits (ids that go into
/// headers, JSON-RPC ids and event ids, where any visible ASCII will do).
pub fn hex<const N: usize>() -> String {
    bytes::<N>().iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_fresh_bytes_and_hex_of_twice_the_length() {
        assert_ne!(super::bytes::<16>(), super::bytes::<16>());
        let h = super::hex::<16>();
        assert_eq!(h.len(), 32);
        assert!(
            h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(h, super::hex::<16>());
    }
}
