//! Properties of the credential extractor, which reads headers and the query
//! of every request before anything is verified.

use base64::Engine;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::{Credential, ExtractOptions, extract};

fn headers(pairs: &[(&'static str, Vec<u8>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            h.append(*name, v);
        }
    }
    h
}

/// RFC 6750 b64token.
fn token68() -> impl Strategy<Value = String> {
    "[A-Za-z0-9\\-._~+/]{1,64}=*"
}

proptest! {
    /// Arbitrary header bytes and query strings give a credential, none, or a
    /// 400 — never a panic — and a credential never holds a control character.
    #[test]
    fn arbitrary_headers_never_panic(
        auth in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        query in proptest::option::of("[ -~]{0,64}"),
    ) {
        let mut pairs = Vec::new();
        if let Some(a) = auth {
            pairs.push(("authorization", a));
        }
        if let Some(k) = key {
            pairs.push(("x-api-key", k));
        }
        let h = headers(&pairs);
        if let Ok(Some(c)) = extract(&h, query.as_deref(), &ExtractOptions::default()) {
            let secret = match &c {
                Credential::Bearer(t) | Credential::ApiKey(t) => t.clone(),
                Credential::Basic { user, password } => format!("{user}:{password}"),
            };
            prop_assert!(!secret.chars().any(char::is_control), "control character in {c:?}");
        }
    }

    /// A bearer token is read back exactly, whatever the scheme's case.
    #[test]
    fn bearer_round_trips(token in token68(), scheme in "[Bb][Ee][Aa][Rr][Ee][Rr]") {
        let h = headers(&[("authorization", format!("{scheme} {token}").into_bytes())]);
        let got = extract(&h, None, &ExtractOptions::default());
        prop_assert_eq!(got.ok().flatten(), Some(Credential::Bearer(token)));
    }

    /// Basic credentials are read back exactly; the password may hold colons.
    #[test]
    fn basic_round_trips(user in "[!-9;-~]{1,16}", password in "[ -~]{0,24}") {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let h = headers(&[("authorization", format!("Basic {encoded}").into_bytes())]);
        let got = extract(&h, None, &ExtractOptions::default());
        prop_assert_eq!(got.ok().flatten(), Some(Credential::Basic { user, password }));
    }

    /// Two credentials, or one repeated, are refused, never one picked silently.
    #[test]
    fn ambiguity_is_refused(a in token68(), b in token68(), which in 0u8..3) {
        let pairs = match which {
            0 => vec![("authorization", format!("Bearer {a}").into_bytes()), ("x-api-key", b.into_bytes())],
            1 => vec![("authorization", format!("Bearer {a}").into_bytes()), ("authorization", format!("Bearer {b}").into_bytes())],
            _ => vec![("x-api-key", a.into_bytes()), ("x-api-key", b.into_bytes())],
        };
        prop_assert!(extract(&headers(&pairs), None, &ExtractOptions::default()).is_err());
    }

    /// A credential-looking query parameter is refused whatever else is there.
    #[test]
    fn credentials_in_the_query_are_refused(
        name in prop_oneof![Just("access_token"), Just("TOKEN"), Just("api_key"), Just("Key")],
        value in "[a-z0-9]{0,16}",
        before in "[a-z]{1,6}=[a-z0-9]{0,6}",
    ) {
        let query = format!("{before}&{name}={value}");
        let h = headers(&[("authorization", b"Bearer abc".to_vec())]);
        prop_assert!(extract(&h, Some(&query), &ExtractOptions::default()).is_err());
    }
}
