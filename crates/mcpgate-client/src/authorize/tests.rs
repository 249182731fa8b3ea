use super::*;

fn meta(iss_supported: bool) -> AuthServerMetadata {
    serde_json::from_value(serde_json::json!({
        "issuer": "http://127.0.0.1:9",
        "authorization_endpoint": "http://127.0.0.1:9/authorize",
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": iss_supported,
    }))
    .unwrap()
}

fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn request_carries_pkce_state_and_resource() {
    let r = build_request(
        &meta(false),
        "cid",
        "http://127.0.0.1:5/callback",
        Some("a b"),
        "http://r/mcp",
    )
    .unwrap();
    let q: std::collections::HashMap<_, _> = r.url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"], r.pkce.challenge);
    assert_eq!(q["state"], r.state);
    assert_eq!(q["resource"], "http://r/mcp");
    assert_eq!(q["scope"], "a b");
    let r = build_request(&meta(false), "cid", "x", None, "http://r/mcp").unwrap();
    assert!(!r.url.query().unwrap().contains("scope="));
}

#[test]
fn state_and_iss_are_checked() {
    let m = meta(false);
    assert_eq!(
        code_from_response(&p(&[("code", "c"), ("state", "s")]), "s", &m).unwrap(),
        "c"
    );
    assert!(code_from_response(&p(&[("code", "c"), ("state", "x")]), "s", &m).is_err());
    assert!(code_from_response(&p(&[("code", "c")]), "s", &m).is_err());
    let e = code_from_response(
        &p(&[("code", "c"), ("state", "s"), ("iss", "http://evil")]),
        "s",
        &m,
    )
    .unwrap_err();
    assert!(e.to_string().contains("RFC 9207"), "{e}");
    assert!(
        code_from_response(
            &p(&[("code", "c"), ("state", "s"), ("iss", "http://127.0.0.1:9")]),
            "s",
            &m
        )
        .is_ok()
    );
    // A server that promises iss must send it.
    assert!(code_from_response(&p(&[("code", "c"), ("state", "s")]), "s", &meta(true)).is_err());
    let e =
        code_from_response(&p(&[("error", "access_denied"), ("state", "s")]), "s", &m).unwrap_err();
    assert!(e.to_string().contains("access_denied"));
}

#[test]
fn redirect_target_ignores_query_only() {
    let u = Url::parse("http://127.0.0.1:5/callback?code=x").unwrap();
    assert!(is_redirect_target(&u, "http://127.0.0.1:5/callback"));
    assert!(!is_redirect_target(&u, "http://127.0.0.1:6/callback"));
    assert!(!is_redirect_target(&u, "http://localhost:5/callback"));
}

#[tokio::test]
async fn loopback_receives_the_callback() {
    let lb = Loopback::bind(0).await.unwrap();
    let uri = lb.redirect_uri();
    let waiter = tokio::spawn(lb.wait(std::time::Duration::from_secs(10)));
    let client = reqwest::Client::new();
    let favicon = client
        .get(uri.replace("/callback", "/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(favicon.status(), 404);
    let ok = client
        .get(format!("{uri}?code=abc&state=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let pairs = waiter.await.unwrap().unwrap();
    assert_eq!(pairs, p(&[("code", "abc"), ("state", "s")]));
}
