//! A resource server's DPoP nonce (RFC 9449 §9): a server that wants its
//! nonce in proofs answers 401 with `WWW-Authenticate: DPoP
//! error="use_dpop_nonce"` and the nonce in `DPoP-Nonce`; the client retries
//! once with a fresh proof that carries it, and keeps using the newest nonce
//! the server sent (§8.2: any answer may carry a new one).

use http::{HeaderMap, StatusCode, header::WWW_AUTHENTICATE};

/// The nonce the server sent with this answer, if any.
pub(crate) fn offered(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(mcpgate_dpop::NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|n| !n.is_empty())
}

/// Whether this answer asks for a proof with the server's nonce.
pub(crate) fn asked(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && offered(headers).is_some()
        && headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                crate::challenge::error_of(v, "DPoP").as_deref() == Some(mcpgate_dpop::USE_NONCE)
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_use_dpop_nonce_challenge_with_its_nonce_asks_for_a_retry() {
        let h = headers(&[
            ("www-authenticate", "Bearer resource_metadata=\"x\""),
            (
                "www-authenticate",
                "DPoP error=\"use_dpop_nonce\", error_description=\"a nonce\"",
            ),
            ("dpop-nonce", "n1"),
        ]);
        assert!(asked(StatusCode::UNAUTHORIZED, &h));
        assert_eq!(offered(&h), Some("n1"));
        assert!(!asked(StatusCode::BAD_REQUEST, &h));
    }

    #[test]
    fn other_refusals_do_not() {
        let no_nonce = headers(&[("www-authenticate", "DPoP error=\"use_dpop_nonce\"")]);
        assert!(!asked(StatusCode::UNAUTHORIZED, &no_nonce));
        let other = headers(&[
            ("www-authenticate", "DPoP error=\"invalid_dpop_proof\""),
            ("dpop-nonce", "n1"),
        ]);
        assert!(!asked(StatusCode::UNAUTHORIZED, &other));
        let bearer = headers(&[
            ("www-authenticate", "Bearer error=\"use_dpop_nonce\""),
            ("dpop-nonce", "n1"),
        ]);
        assert!(!asked(StatusCode::UNAUTHORIZED, &bearer));
    }
}
