use proptest::prelude::*;

use super::*;

fn check_registrable(uri: &str) -> Result<RedirectUri, String> {
    uri.parse::<RedirectUri>().map_err(|e| e.to_string())
}

fn check_self_registrable(uri: &str) -> Result<RedirectUri, String> {
    RedirectUri::self_registered(uri).map_err(|e| e.to_string())
}

/// Whether `requested` matches `registered`, which must be registrable.
fn matches(registered: &str, requested: &str) -> bool {
    registered
        .parse::<RedirectUri>()
        .is_ok_and(|r| r.matches(requested))
}

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
    // Cursor registers its private-use scheme, https and localhost together.
    for uri in [
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://cursor.com/oauth/callback",
        "http://localhost:8080/callback",
    ] {
        check_self_registrable(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
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
        ("https://a.example/cb\r\nX: y", "control character"),
        ("http://127.1/cb", "exactly"),
        ("http://2130706433/cb", "exactly"),
        ("http://0x7f000001/cb", "exactly"),
        ("http://127.0.0.1./cb", "exactly"),
        ("http://LOCALHOST/cb", "exactly"),
        ("http://127.0.0.1/x/../cb", "exactly"),
        ("http://127.0.0.1/x/%2E%2e/cb", "exactly"),
        ("http://127.0.0.1:080/cb", "exactly"),
        ("HTTP://127.0.0.1/cb", "exactly"),
    ] {
        let e = check_registrable(uri).unwrap_err();
        assert!(e.contains(why), "{uri}: {e}");
    }
}

#[test]
fn out_of_band_only_for_administrators() {
    assert!(check_registrable(OOB).is_ok_and(|r| r.is_out_of_band()));
    let e = check_self_registrable(OOB).unwrap_err();
    assert!(e.contains("administrator") && e.starts_with(OOB), "{e}");
}

#[test]
fn loopback_ports_are_ignored_but_hosts_are_not() {
    assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb"));
    assert!(matches("http://127.0.0.1:1/", "http://127.0.0.1:33418/"));
    assert!(matches("http://127.0.0.1/", "http://127.0.0.1:33418/"));
    assert!(matches("http://localhost/cb", "http://localhost:9/cb"));
    assert!(matches("http://[::1]/cb", "http://[::1]:9/cb"));
    assert!(!matches("http://localhost/cb", "http://127.0.0.1:9/cb"));
    assert!(!matches("http://127.0.0.1/cb", "http://127.0.0.1:9/other"));
    assert!(!matches("https://a.example/cb", "https://a.example:444/cb"));
    assert!(!matches("https://a.example/cb", "https://a.example/cb?x=1"));
    assert!(matches("cursor://x/cb", "cursor://x/cb"));
}

#[test]
fn loopback_spellings_that_normalize_are_not_matched() {
    for requested in [
        "http://127.1/cb",
        "http://2130706433/cb",
        "http://0x7f000001/cb",
        "http://127.0.0.1./cb",
        "http://LOCALHOST/cb",
        "http://127.0.0.1:5555/x/../cb",
        "http://127.0.0.1:5555/./cb",
        "http://127.0.0.1:05555/cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:/cb",
        "http://u@127.0.0.1/cb",
        "HTTP://127.0.0.1/cb",
        "http://127.0.0.1:5555/cb#x",
        "http://127.0.0.1:5555\\cb",
    ] {
        assert!(!matches("http://127.0.0.1/cb", requested), "{requested}");
        assert!(!matches("http://localhost/cb", requested), "{requested}");
    }
}

/// `uri` without a `:digits` port right after a literal loopback host
/// (written independently of the code under test).
fn without_loopback_port(uri: &str) -> Option<String> {
    for prefix in ["http://127.0.0.1", "http://[::1]", "http://localhost"] {
        if let Some(rest) = uri.strip_prefix(prefix) {
            let rest = match rest.strip_prefix(':') {
                Some(p) => p.trim_start_matches(|c: char| c.is_ascii_digit()),
                None => rest,
            };
            return Some(format!("{prefix}{rest}"));
        }
    }
    None
}

fn uri_like() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["http://", "https://", "HTTP://", "cursor://", ""]);
    let host = prop::sample::select(vec![
        "127.0.0.1",
        "[::1]",
        "localhost",
        "LOCALHOST",
        "127.1",
        "2130706433",
        "0x7f000001",
        "127.0.0.1.",
        "a.example",
        "u@127.0.0.1",
    ]);
    let port = prop::option::of(prop::sample::select(vec![
        ":1", ":80", ":0080", ":33418", ":65535", ":65536", ":", ":x",
    ]));
    let path = prop::sample::select(vec![
        "",
        "/",
        "/cb",
        "/x/../cb",
        "/./cb",
        "/%2e%2e/cb",
        "/cb?x=1",
        "/cb#f",
        "\\cb",
        "/cb/",
    ]);
    (scheme, host, port, path)
        .prop_map(|(s, h, p, path)| format!("{s}{h}{}{path}", p.unwrap_or("")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    /// A redirect URI that matches is byte-equal to the registered one, or
    /// differs only in the port of a literal loopback host.
    #[test]
    fn a_match_is_byte_equal_except_for_a_loopback_port(reg in uri_like(), req in uri_like()) {
        if matches(&reg, &req) && reg != req {
            let (r, q) = (without_loopback_port(&reg), without_loopback_port(&req));
            prop_assert!(r.is_some() && r == q, "{:?} matched {:?}", reg, req);
        }
    }

    /// The same, for arbitrary strings.
    #[test]
    fn arbitrary_matches_are_byte_equal_except_for_a_loopback_port(reg in ".{0,40}", req in ".{0,40}") {
        if matches(&reg, &req) && reg != req {
            let (r, q) = (without_loopback_port(&reg), without_loopback_port(&req));
            prop_assert!(r.is_some() && r == q, "{:?} matched {:?}", reg, req);
        }
    }

    /// Every registered loopback URI matches itself on any port.
    #[test]
    fn a_registered_loopback_uri_matches_on_any_port(
        host in prop::sample::select(vec!["127.0.0.1", "[::1]", "localhost"]),
        port in 1u16..,
        path in "(/[a-z0-9_-]{0,8}){0,3}",
    ) {
        let reg = format!("http://{}{}", host, path);
        prop_assert!(check_registrable(&reg).is_ok(), "{:?}", reg);
        let req = format!("http://{}:{}{}", host, port, path);
        prop_assert!(matches(&reg, &req), "{:?} {:?}", reg, req);
    }

    /// Nothing here panics, on any string.
    #[test]
    fn never_panics(a in any::<String>(), b in any::<String>()) {
        let _ = check_registrable(&a);
        let _ = check_self_registrable(&a);
        let _ = matches(&a, &b);
    }
}

#[test]
fn loopback_is_told_and_serde_goes_through_the_constructor() {
    assert!(
        check_registrable("http://127.0.0.1:8/cb")
            .unwrap()
            .is_loopback()
    );
    assert!(
        !check_registrable("https://a.example/cb")
            .unwrap()
            .is_loopback()
    );
    let r: RedirectUri = serde_json::from_str("\"http://[::1]/cb\"").unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"http://[::1]/cb\"");
    assert!(serde_json::from_str::<RedirectUri>("\"javascript:alert(1)\"").is_err());
}
