//! Redirect URIs: what may be registered, and when a requested one matches.
//!
//! Exact string match, except that the port of a loopback `http` URI is
//! ignored (RFC 8252 §7.3). Loopback URIs are compared as raw strings, never
//! after URL parsing: the `url` crate would turn `127.1`, `2130706433`,
//! `0x7f000001`, `127.0.0.1.` or `LOCALHOST` into a loopback host and
//! `/x/../cb` into `/cb`, so such spellings are refused, not normalized.
//! `localhost` and `127.0.0.1` stay distinct.

/// The out-of-band redirect: the code is shown on a page for pasting into a CLI.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

/// The loopback hosts a redirect URI may name, exactly as written.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// Why a redirect URI cannot be registered by an administrator, if it cannot
/// (`mcpgate clients add`; the out-of-band URI is allowed here).
pub fn check_registrable(uri: &str) -> Result<(), String> {
    if uri == OOB {
        return Ok(());
    }
    check_common(uri)
}

/// Why a client may not register `uri` itself (dynamic registration, client
/// ID metadata documents): as [`check_registrable`], without out-of-band,
/// which would let anyone's client show codes on this server's own page.
pub(crate) fn check_self_registrable(uri: &str) -> Result<(), String> {
    if uri == OOB {
        return Err(format!(
            "{OOB} (out-of-band) is only for clients an administrator registers (mcpgate clients add)"
        ));
    }
    check_common(uri)
}

fn check_common(uri: &str) -> Result<(), String> {
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{uri:?} contains a control character or a space, which redirect URIs must not have"
        ));
    }
    let u = url::Url::parse(uri).map_err(|e| format!("{uri:?} is not an absolute URI ({e})"))?;
    if u.fragment().is_some() || uri.contains('#') {
        return Err(format!(
            "{uri:?} has a fragment, which redirect URIs must not have"
        ));
    }
    match u.scheme() {
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            Err(format!(
                "{uri:?}: the {} scheme is not allowed for redirects",
                u.scheme()
            ))
        }
        "https" => {
            if u.host_str().is_none_or(str::is_empty) {
                return Err(format!("{uri:?} has no host"));
            }
            Ok(())
        }
        "http" => {
            if Loopback::split(uri).is_some() {
                Ok(())
            } else if is_loopback_host(&u) {
                Err(format!(
                    "{uri:?}: write a loopback redirect exactly as http://127.0.0.1[:port]/path, http://[::1][:port]/path or http://localhost[:port]/path (lowercase, decimal port, no . or .. path segments)"
                ))
            } else {
                Err(format!(
                    "{uri:?}: plain http is allowed only for loopback (127.0.0.1, [::1], localhost); use https"
                ))
            }
        }
        // Private-use schemes of native apps (RFC 8252 §7.1): cursor://…, com.example.app:/cb.
        _ => Ok(()),
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A loopback `http` URI as written: its host, and what follows the port.
#[derive(Debug, PartialEq, Eq)]
struct Loopback<'a> {
    host: &'a str,
    rest: &'a str,
}

impl<'a> Loopback<'a> {
    /// `uri` split by hand, if it is `http://HOST[:PORT]REST` with HOST one of
    /// [`LOOPBACK_HOSTS`] exactly, PORT a decimal port without leading zeros,
    /// and REST free of fragments, backslashes and dot segments.
    fn split(uri: &'a str) -> Option<Loopback<'a>> {
        let after = uri.strip_prefix("http://")?;
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        let host = LOOPBACK_HOSTS
            .into_iter()
            .find(|h| authority.starts_with(h))?;
        match &authority[host.len()..] {
            "" => {}
            p => {
                let digits = p.strip_prefix(':')?;
                let ok = !digits.is_empty()
                    && digits.len() <= 5
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('0')
                    && digits.parse::<u32>().is_ok_and(|n| n <= 65_535);
                if !ok {
                    return None;
                }
            }
        }
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let dot_segment = path.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == "." || seg == ".."
        });
        if rest.contains(['#', '\\']) || dot_segment || rest.chars().any(char::is_control) {
            return None;
        }
        Some(Loopback { host, rest })
    }
}

/// Whether the requested URI matches the registered one: byte-equal, or both
/// loopback `http` URIs equal except for their ports.
pub(crate) fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (Loopback::split(registered), Loopback::split(requested)) {
        (Some(r), Some(q)) => r == q,
        _ => false,
    }
}

/// Whether every one of `uris` is a loopback http URI (flagged on the consent page).
pub(crate) fn all_loopback(uris: &[String]) -> bool {
    !uris.is_empty()
        && uris
            .iter()
            .all(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "http" && is_loopback_host(&u)))
}

/// `uri` with `params` appended to its query (existing parameters kept).
pub(crate) fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests;
