use super::*;

#[test]
fn what_real_clients_register_is_accepted() {
    for uri in [
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://claude.ai/api/mcp/auth_callback",
        "https://chatgpt.com/connector_platform_oauth_redirect",
        "http://127.0.0.1/",
        "http://127.0.0.1:33418/",
        "https://vscode.dev/redirect",
        "http://localhost:6274/oauth/callback",
        "http://[::1]:8080/cb",
        "com.example.app:/oauth2redirect",
        OOB,
    ] {
        check_registrable(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
    }
}

#[test]
fn dangerous_uris_are_refused_with_a_reason() {
    for (uri, why) in [
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,hi", "scheme"),
        ("https://a.example/cb#frag", "fragment"),
        ("http://evil.example/cb", "loopback"),
        ("/relative", "absolute"),
    ] {
        let e = check_registrable(uri).unwrap_err();
        assert!(e.contains(why), "{uri}: {e}");
    }
}

#[test]
fn loopback_ports_are_ignored_but_hosts_are_not() {
    assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb"));
    assert!(matches("http://127.0.0.1:1/", "http://127.0.0.1:33418/"));
    assert!(matches("http://localhost/cb", "http://localhost:9/cb"));
    assert!(!matches("http://localhost/cb", "http://127.0.0.1:9/cb"));
    assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:9/other"));
    assert!(!matches("https://a.example/cb", "https://a.example:444/cb"));
    assert!(!matches("https://a.example/cb", "https://a.example/cb?x=1"));
    assert!(matches("cursor://x/cb", "cursor://x/cb"));
}

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
