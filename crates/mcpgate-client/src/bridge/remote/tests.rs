use super::*;

#[test]
fn challenge_params() {
    let c = r#"Bearer resource_metadata="http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp", error="insufficient_scope", scope="notes:read notes:write", error_description="needs \"write\"""#;
    assert_eq!(param(c, "error").as_deref(), Some("insufficient_scope"));
    assert_eq!(param(c, "scope").as_deref(), Some("notes:read notes:write"));
    assert_eq!(
        param(c, "error_description").as_deref(),
        Some("needs \"write\"")
    );
    assert!(is_insufficient_scope(c));
    assert_eq!(
        param("Bearer error=invalid_token, x=1", "error").as_deref(),
        Some("invalid_token")
    );
    assert_eq!(param("Bearer realm=\"a\"", "error"), None);
    // `error` inside `error_description` is not `error`.
    assert_eq!(param(r#"Bearer error_description="x""#, "error"), None);
}
