//! The SSRF address classifier: which IP addresses a URL chosen by a stranger
//! may make this server connect to. Anything that is not a public unicast
//! address is forbidden, including the IPv6 forms that embed a forbidden IPv4
//! address (mapped, compatible, translated, 6to4, NAT64), because a dual-stack
//! host or a NAT64 gateway would carry the connection to that IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is loopback, private, link-local, CGNAT, unique-local,
/// multicast, unspecified, documentation, reserved, or an IPv6 form that
/// embeds or may reach such an IPv4 address: anything but public unicast.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // "This network" 0.0.0.0/8 (Linux connects 0.x to the local host).
        || o[0] == 0
        // Carrier-grade NAT 100.64.0.0/10.
        || (o[0] == 100 && (64..128).contains(&o[1]))
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240/4 reserved.
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // IPv4-mapped ::ffff:a.b.c.d: the socket layer connects to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_forbidden(v4);
    }
    // IPv4-translated ::ffff:0:a.b.c.d (RFC 2765).
    if s[..4].iter().all(|x| *x == 0) && s[4] == 0xffff && s[5] == 0 {
        return v4_forbidden(embedded(s[6], s[7]));
    }
    // 6to4 2002:a.b.c.d::/48 relays to the embedded IPv4 address.
    if s[0] == 0x2002 && v4_forbidden(embedded(s[1], s[2])) {
        return true;
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // IPv4-compatible (deprecated) ::a.b.c.d, and everything else in ::/96.
        || s[..6].iter().all(|x| *x == 0)
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32 and 3fff::/20.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x3fff && s[1] < 0x1000)
        // Teredo 2001::/32 hides an (obfuscated) IPv4 address.
        || (s[0] == 0x2001 && s[1] == 0)
        // NAT64: the well-known 64:ff9b::/96 and local-use 64:ff9b:1::/48 prefixes
        // translate to IPv4 at a gateway inside the network; any of them may
        // reach a private IPv4 address, so none is fetched.
        || (s[0] == 0x0064 && s[1] == 0xff9b)
        // Discard-only 100::/64.
        || (s[0] == 0x0100 && s[1..4].iter().all(|x| *x == 0))
}

#[cfg(test)]
mod tests;
