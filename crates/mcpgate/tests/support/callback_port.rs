//! A loopback port for a sign-in callback that a test names in advance (a
//! pre-registered redirect URI) and binds again at every `mcpgate login`.
//!
//! A port taken from `bind("127.0.0.1:0")` and let go is in the kernel's
//! ephemeral range (32768–60999 by default): between two logins, any other
//! test's listener on port 0 or outgoing connection may be given it, and the
//! next login fails with "Address already in use". A port below that range is
//! only ever taken by an explicit bind.

use std::hash::BuildHasher as _;

/// A free port in 20000–31999.
pub(crate) fn callback_port() -> u16 {
    let random = std::hash::RandomState::new();
    for attempt in 0u64..1000 {
        let offset = u16::try_from(random.hash_one(attempt) % 12_000).expect("below 12000");
        let port = 20_000 + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-31999");
}
