//! What the gateway accepts from clients beyond JSON syntax: a bounded
//! nesting depth (the envelope parser skips `params` without one, and an
//! upstream that chokes on a deep array never answers), and ids that are
//! strings or numbers (`null` only on an error response).

use super::{Kind, Message};

/// The deepest nesting of arrays and objects accepted in one message, the
/// envelope included (serde_json's own recursion limit is 128).
pub const MAX_DEPTH: usize = 128;

/// Whether `json` nests arrays and objects more than `max` levels deep.
/// Brackets inside strings do not count; the text need not be valid JSON.
pub fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl Message {
    /// Why this message's id is unacceptable, if it is: JSON-RPC ids are
    /// strings or numbers, and `null` only answers a request whose id was unreadable.
    pub fn id_problem(&self, kind: Kind) -> Option<String> {
        let id = self.id.as_deref()?.get().trim_start();
        match id.as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9') => None,
            Some(b'n') if kind == Kind::Response && self.error.is_some() => None,
            Some(b'n') => {
                Some("the id is null; a request's id must be a string or a number".to_owned())
            }
            Some(b'{') => Some("the id is an object; it must be a string or a number".to_owned()),
            Some(b'[') => Some("the id is an array; it must be a string or a number".to_owned()),
            _ => Some(format!(
                "the id {id} is not a string or a number",
                id = id.chars().take(16).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(!nests_deeper_than(br#"{"a":[[1]]}"#, 3));
        assert!(nests_deeper_than(br#"{"a":[[[1]]]}"#, 3));
        assert!(!nests_deeper_than(br#"{"a":"[[[[[[\"[[[["}"#, 1));
        let deep = "[".repeat(1_000_000);
        assert!(nests_deeper_than(deep.as_bytes(), MAX_DEPTH));
    }

    #[test]
    fn ids_are_strings_or_numbers_and_null_only_on_errors() {
        let parse = |s: &str| Message::parse(s.as_bytes()).expect("parses");
        let ok = parse(r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#);
        assert_eq!(ok.id_problem(Kind::Request), None);
        let ok = parse(r#"{"jsonrpc":"2.0","id":-1.5,"method":"ping"}"#);
        assert_eq!(ok.id_problem(Kind::Request), None);
        for bad in [r#"{"a":1}"#, "[1]", "true", "null"] {
            let m = parse(&format!(
                r#"{{"jsonrpc":"2.0","id":{bad},"method":"ping"}}"#
            ));
            assert!(m.id_problem(Kind::Request).is_some(), "{bad}");
        }
        let err = parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#);
        assert_eq!(err.id_problem(Kind::Response), None);
        let res = parse(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#);
        assert!(res.id_problem(Kind::Response).is_some());
    }
}
