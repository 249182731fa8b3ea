use super::*;
use crate::error::oauth_error_fields as error_fields;

#[test]
fn error_fields_read_oauth_errors() {
    let (e, d) = error_fields(br#"{"error":"invalid_grant","error_description":"gone"}"#);
    assert_eq!((e.as_str(), d.as_str()), ("invalid_grant", ": gone"));
    let (e, d) = error_fields(b"<html>");
    assert_eq!((e.as_str(), d.as_str()), ("a non-OAuth error", ""));
}

#[test]
fn token_response_debug_hides_tokens() {
    let t: TokenResponse = serde_json::from_str(
        r#"{"access_token":"SECRET-A","refresh_token":"SECRET-R","expires_in":5,"token_type":"bearer"}"#,
    )
    .unwrap();
    let s = format!("{t:?}");
    assert!(!s.contains("SECRET"));
}

#[test]
fn bad_pem_is_a_clear_error() {
    let e = PrivateKey::from_pem(b"not a key").unwrap_err();
    assert!(e.to_string().contains("PEM private key"), "{e}");
}
