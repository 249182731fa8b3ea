//! Properties of the OAuth parameter parser: a repeated parameter is always
//! refused (RFC 6749 §3.1), distinct ones always survive a round trip, and no
//! input panics it.

use proptest::prelude::*;

use super::Params;

proptest! {
    /// Arbitrary text is parsed or refused, never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,256}") {
        let _ = Params::parse(&text);
    }

    /// Distinct names survive encode → parse with their exact values.
    #[test]
    fn distinct_parameters_round_trip(map in proptest::collection::btree_map("\\PC{1,12}", "\\PC{1,24}", 0..8)) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &map {
            s.append_pair(k, v);
        }
        let parsed = Params::parse(&s.finish()).expect("distinct names parse");
        for (k, v) in &map {
            prop_assert_eq!(parsed.get(k), Some(v.as_str()));
        }
    }

    /// A name sent twice is refused, whatever the values and wherever it sits,
    /// including when one spelling is percent-encoded.
    #[test]
    fn repeated_parameter_is_refused(
        name in "[a-z_]{1,12}",
        a in "\\PC{0,12}",
        b in "\\PC{0,12}",
        others in proptest::collection::vec(("[A-Z]{1,6}", "[a-z0-9]{0,6}"), 0..4),
        encode_second in any::<bool>(),
    ) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair(&name, &a);
        for (k, v) in &others {
            s.append_pair(k, v);
        }
        let mut text = s.finish();
        let second_name = if encode_second {
            name.bytes().map(|c| format!("%{c:02X}")).collect::<String>()
        } else {
            name.clone()
        };
        let second: String = form_urlencoded::byte_serialize(b.as_bytes()).collect();
        text.push_str(&format!("&{second_name}={second}"));
        prop_assert!(Params::parse(&text).is_err(), "{text} was accepted");
    }
}
