//! Redirect URIs: what may be registered, and when a requested one matches.
//!
//! Exact string match, except that the port of a loopback `http` URI is
//! ignored (RFC 8252 §7.3) — `localhost` and `127.0.0.1` stay distinct.

/// The out-of-band redirect: the code is shown on a page for pasting into a CLI.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Why a redirect URI cannot be registered, if it cannot (also used by
/// `mcpgate clients add`).
pub fn check_registrable(uri: &str) -> Result<(), String> {
    if uri == OOB {
        return Ok(());
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
            if is_loopback_host(&u) {
                Ok(())
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

/// Whether the requested URI matches the registered one.
pub(crate) fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(r), Ok(q)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    r.scheme() == "http"
        && q.scheme() == "http"
        && is_loopback_host(&r)
        && r.host_str() == q.host_str()
        && r.path() == q.path()
        && r.query() == q.query()
        && q.fragment().is_none()
        && r.username() == q.username()
        && q.password().is_none()
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
