use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::is_forbidden;

#[test]
fn private_and_special_addresses_are_refused() {
    for a in [
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.255",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "ff02::1",
        // IPv4-mapped, -compatible and -translated forms of private addresses.
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",
        "::ffff:0:192.168.0.1",
        // NAT64 (well-known and local-use prefixes), 6to4 of private, Teredo.
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "2001:0:4136:e378::1",
        "2001:db8::1",
    ] {
        let ip: IpAddr = a.parse().unwrap();
        assert!(is_forbidden(ip), "{a} must be forbidden");
    }
}

#[test]
fn public_addresses_are_allowed() {
    for a in [
        "93.184.216.34",
        "1.1.1.1",
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:93.184.216.34",
        "2002:5db8:d822::1",
    ] {
        let ip: IpAddr = a.parse().unwrap();
        assert!(!is_forbidden(ip), "{a} must be allowed");
    }
}

/// Any IPv4 address inside a forbidden range.
fn forbidden_v4() -> impl Strategy<Value = Ipv4Addr> {
    // (prefix, prefix length) of every forbidden IPv4 range.
    let ranges: &[(u32, u32)] = &[
        (0x0000_0000, 8),  // 0/8
        (0x0a00_0000, 8),  // 10/8
        (0x6440_0000, 10), // 100.64/10
        (0x7f00_0000, 8),  // 127/8
        (0xa9fe_0000, 16), // 169.254/16
        (0xac10_0000, 12), // 172.16/12
        (0xc000_0000, 24), // 192.0.0/24
        (0xc000_0200, 24), // 192.0.2/24
        (0xc0a8_0000, 16), // 192.168/16
        (0xc612_0000, 15), // 198.18/15
        (0xc633_6400, 24), // 198.51.100/24
        (0xcb00_7100, 24), // 203.0.113/24
        (0xe000_0000, 4),  // 224/4 multicast
        (0xf000_0000, 4),  // 240/4 reserved and broadcast
    ];
    (0..ranges.len(), any::<u32>()).prop_map(move |(i, host)| {
        let (prefix, len) = ranges[i];
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Ipv4Addr::from((prefix & mask) | (host & !mask))
    })
}

/// Any IPv6 address inside a forbidden native IPv6 range.
fn forbidden_v6() -> impl Strategy<Value = Ipv6Addr> {
    let ranges: &[(u128, u32)] = &[
        (0, 96),                     // ::/96 (unspecified, loopback, compatible)
        (0xfc00u128 << 112, 7),      // unique local
        (0xfe80u128 << 112, 10),     // link-local
        (0xfec0u128 << 112, 10),     // site-local
        (0xff00u128 << 112, 8),      // multicast
        (0x0064_ff9bu128 << 96, 32), // NAT64 64:ff9b::/32 (incl. /96 and 1::/48)
        (0x2001_0db8u128 << 96, 32), // documentation
        (0x2001_0000u128 << 96, 32), // Teredo
    ];
    (0..ranges.len(), any::<u128>()).prop_map(move |(i, host)| {
        let (prefix, len) = ranges[i];
        let mask = u128::MAX << (128 - len);
        Ipv6Addr::from((prefix & mask) | (host & !mask))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2048)
    ))]

    /// No private address is classified public: every address inside a forbidden IPv4 range.
    #[test]
    fn no_private_v4_is_public(v4 in forbidden_v4()) {
        prop_assert!(is_forbidden(IpAddr::V4(v4)), "{v4}");
    }

    /// ... nor its IPv4-mapped, -compatible, -translated, NAT64 or 6to4 embedding.
    #[test]
    fn no_embedded_private_v4_is_public(v4 in forbidden_v4(), suffix in any::<u64>()) {
        let n = u32::from(v4) as u128;
        let forms = [
            ("mapped", (0xffffu128 << 32) | n),
            ("compatible", n),
            ("translated", (0xffff_0000u128 << 32) | n),
            ("nat64", (0x0064_ff9bu128 << 96) | n),
            ("nat64-local", (0x0064_ff9b_0001u128 << 80) | n),
            ("6to4", (0x2002u128 << 112) | (n << 80) | suffix as u128),
        ];
        for (what, bits) in forms {
            let v6 = Ipv6Addr::from(bits);
            prop_assert!(is_forbidden(IpAddr::V6(v6)), "{what} {v6} of {v4}");
        }
    }

    /// Every address inside a forbidden native IPv6 range.
    #[test]
    fn no_private_v6_is_public(v6 in forbidden_v6()) {
        prop_assert!(is_forbidden(IpAddr::V6(v6)), "{v6}");
    }

    /// The classifier never panics, on any address.
    #[test]
    fn any_address_is_classified(bits in any::<u128>(), v4 in any::<u32>()) {
        let _ = is_forbidden(IpAddr::V6(Ipv6Addr::from(bits)));
        let _ = is_forbidden(IpAddr::V4(Ipv4Addr::from(v4)));
    }
}
