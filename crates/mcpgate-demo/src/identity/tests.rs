use http::{HeaderMap, HeaderValue};

use super::*;

fn headers_with(value: &'static [u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_bytes(value).expect("test header value is valid");
    headers.insert(SUBJECT_HEADER, value);
    headers
}

fn subject(raw: &str) -> Subject {
    Subject::parse(raw).expect("test subject is valid")
}

#[test]
fn header_wins_over_process_subject() {
    let headers = headers_with(b"alice");
    let who = resolve(Some(&headers), Some(&subject("bob"))).expect("resolves");
    assert_eq!(who.subject.as_str(), "alice");
    assert_eq!(who.source, Source::Header);
}

#[test]
fn process_subject_when_no_header() {
    let who = resolve(Some(&HeaderMap::new()), Some(&subject("bob"))).expect("resolves");
    assert_eq!(who.subject.as_str(), "bob");
    assert_eq!(who.source, Source::Environment);

    let who = resolve(None, Some(&subject("bob"))).expect("resolves");
    assert_eq!(who.subject.as_str(), "bob");
    assert_eq!(who.source, Source::Environment);
}

#[test]
fn anonymous_when_nobody_is_named() {
    let who = resolve(None, None).expect("resolves");
    assert_eq!(who.subject.as_str(), ANONYMOUS);
    assert_eq!(who.source, Source::Anonymous);
    assert_eq!(who.source.label(), "anonymous");
}

#[test]
fn unusable_header_is_an_error_not_a_fallback() {
    for bad in [&b""[..], b"   ", b"\xff\xfe"] {
        let headers = headers_with(bad);
        let error = resolve(Some(&headers), Some(&subject("bob"))).expect_err("rejected");
        assert!(
            matches!(error, DemoError::BadSubjectHeader(_)),
            "unexpected error for {bad:?}: {error:?}"
        );
    }
    let long = "a".repeat(257);
    let mut headers = HeaderMap::new();
    headers.insert(
        SUBJECT_HEADER,
        HeaderValue::from_str(&long).expect("ascii header value"),
    );
    assert!(resolve(Some(&headers), None).is_err());
}

#[test]
fn subject_rules() {
    assert!(Subject::parse("user@example.com").is_ok());
    assert!(Subject::parse(&"x".repeat(256)).is_ok());
    assert_eq!(Subject::parse(""), Err("it is empty"));
    assert_eq!(
        Subject::parse(&"x".repeat(257)),
        Err("it is longer than 256 bytes")
    );
    assert_eq!(
        Subject::parse("a\nb"),
        Err("it contains control characters")
    );
}
