use super::*;

#[test]
fn endpoint_resolves_against_the_sse_url() {
    let sse = Url::parse("http://127.0.0.1:8080/mcp/demo/sse").unwrap();
    let u = endpoint_url(&sse, b"/mcp/demo/messages?sessionId=abc").unwrap();
    assert_eq!(
        u.as_str(),
        "http://127.0.0.1:8080/mcp/demo/messages?sessionId=abc"
    );
    let rel = endpoint_url(&sse, b"messages?s=1").unwrap();
    assert_eq!(rel.as_str(), "http://127.0.0.1:8080/mcp/demo/messages?s=1");
    let abs = endpoint_url(&sse, b"http://127.0.0.1:8080/m").unwrap();
    assert_eq!(abs.path(), "/m");
}

#[test]
fn endpoint_on_another_origin_is_refused() {
    let sse = Url::parse("http://127.0.0.1:8080/sse").unwrap();
    let e = endpoint_url(&sse, b"http://127.0.0.1:9999/messages").unwrap_err();
    assert!(e.contains("another origin"), "{e}");
    assert!(endpoint_url(&sse, b"https://127.0.0.1:8080/messages").is_err());
}
