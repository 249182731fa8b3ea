use super::*;

#[test]
fn parses_quoted_and_bare_parameters() {
    let c = BearerChallenge::parse(
        r#"Bearer error="insufficient_scope", scope="a b", resource_metadata="http://x/.well-known/oauth-protected-resource/mcp""#,
    )
    .unwrap();
    assert!(c.is_insufficient_scope());
    assert_eq!(c.scopes(), vec!["a", "b"]);
    assert_eq!(
        c.resource_metadata.as_deref(),
        Some("http://x/.well-known/oauth-protected-resource/mcp")
    );
    let c = BearerChallenge::parse("Bearer error=invalid_token").unwrap();
    assert_eq!(c.error.as_deref(), Some("invalid_token"));
    assert_eq!(c.scope, None);
}

#[test]
fn finds_bearer_among_several_challenges() {
    let c = BearerChallenge::parse(r#"Basic realm="x", Bearer scope="s""#).unwrap();
    assert_eq!(c.scope.as_deref(), Some("s"));
    assert!(BearerChallenge::parse(r#"Basic realm="x""#).is_none());
    assert!(BearerChallenge::parse("").is_none());
    let c = BearerChallenge::parse("Bearer").unwrap();
    assert_eq!(c, BearerChallenge::default());
}

#[test]
fn escaped_quotes_survive() {
    let c = BearerChallenge::parse(r#"Bearer scope="a\"b""#).unwrap();
    assert_eq!(c.scope.as_deref(), Some("a\"b"));
}
