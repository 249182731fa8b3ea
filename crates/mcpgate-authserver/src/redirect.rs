//! Sending the browser back to the client: the query a redirect carries.
//!
//! What may be registered and when a requested URI matches a registered one
//! (exact, except for the port of a loopback URI: RFC 8252 §7.3) is
//! [`mcpgate_types::RedirectUri`]'s to say.

use mcpgate_types::RedirectUri;

/// Whether every one of `uris` is a loopback http URI (flagged on the consent page).
pub(crate) fn all_loopback(uris: &[RedirectUri]) -> bool {
    !uris.is_empty() && uris.iter().all(RedirectUri::is_loopback)
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
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn params_are_appended() {
        assert_eq!(
            with_params(
                "https://a.example/cb?x=1",
                &[("code", "a b"), ("state", "s")]
            ),
            "https://a.example/cb?x=1&code=a+b&state=s"
        );
    }

    #[test]
    fn only_loopback_lists_are_all_loopback() {
        let p = |s: &str| s.parse::<RedirectUri>().unwrap();
        assert!(!all_loopback(&[]));
        assert!(all_loopback(&[
            p("http://127.0.0.1/cb"),
            p("http://localhost:9/")
        ]));
        assert!(!all_loopback(&[
            p("http://127.0.0.1/cb"),
            p("https://a.example/cb")
        ]));
    }

    proptest! {
        #[test]
        fn never_panics(a in any::<String>(), b in any::<String>()) {
            let _ = with_params(&a, &[("state", &b)]);
        }
    }
}
