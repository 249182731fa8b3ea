use super::*;

fn urls(v: Vec<Url>) -> Vec<String> {
    v.into_iter().map(|u| u.to_string()).collect()
}

#[test]
fn resource_metadata_order_is_challenge_then_path_then_root() {
    let server = Url::parse("http://127.0.0.1:9/public/mcp").unwrap();
    let c = BearerChallenge {
        resource_metadata: Some("http://127.0.0.1:9/custom/prm".into()),
        ..Default::default()
    };
    assert_eq!(
        urls(resource_metadata_candidates(&server, Some(&c))),
        vec![
            "http://127.0.0.1:9/custom/prm",
            "http://127.0.0.1:9/.well-known/oauth-protected-resource/public/mcp",
            "http://127.0.0.1:9/.well-known/oauth-protected-resource",
        ]
    );
    let root = Url::parse("http://127.0.0.1:9/").unwrap();
    assert_eq!(
        urls(resource_metadata_candidates(&root, None)),
        vec!["http://127.0.0.1:9/.well-known/oauth-protected-resource"]
    );
    // A non-http challenge URL is ignored.
    let c = BearerChallenge {
        resource_metadata: Some("file:///etc/passwd".into()),
        ..Default::default()
    };
    assert_eq!(resource_metadata_candidates(&server, Some(&c)).len(), 2);
}

#[test]
fn auth_server_order_for_path_and_root_issuers() {
    let with_path = Url::parse("http://127.0.0.1:9/t1").unwrap();
    assert_eq!(
        urls(auth_server_metadata_candidates(&with_path)),
        vec![
            "http://127.0.0.1:9/.well-known/oauth-authorization-server/t1",
            "http://127.0.0.1:9/.well-known/openid-configuration/t1",
            "http://127.0.0.1:9/t1/.well-known/openid-configuration",
        ]
    );
    for root in ["http://127.0.0.1:9", "http://127.0.0.1:9/"] {
        assert_eq!(
            urls(auth_server_metadata_candidates(&Url::parse(root).unwrap())),
            vec![
                "http://127.0.0.1:9/.well-known/oauth-authorization-server",
                "http://127.0.0.1:9/.well-known/openid-configuration",
            ]
        );
    }
}

#[test]
fn resource_must_cover_the_server_url() {
    let s = Url::parse("http://127.0.0.1:9/mcp/notes").unwrap();
    assert!(resource_covers("http://127.0.0.1:9/mcp/notes", &s));
    assert!(resource_covers("http://127.0.0.1:9/mcp/notes/", &s));
    assert!(resource_covers("http://127.0.0.1:9/mcp", &s));
    assert!(resource_covers("http://127.0.0.1:9/", &s));
    assert!(!resource_covers("http://127.0.0.1:9/mc", &s));
    assert!(!resource_covers("http://127.0.0.1:10/mcp", &s));
    assert!(!resource_covers("https://127.0.0.1:9/mcp", &s));
}

#[test]
fn servers_without_s256_are_refused() {
    let mut meta: AuthServerMetadata =
        serde_json::from_value(serde_json::json!({"issuer": "http://a"})).unwrap();
    assert!(check_auth_server(&meta).is_err());
    meta.code_challenge_methods_supported = Some(vec!["plain".into()]);
    assert!(check_auth_server(&meta).is_err());
    meta.code_challenge_methods_supported = Some(vec!["S256".into()]);
    assert!(check_auth_server(&meta).is_ok());
    meta.authorization_endpoint = Some("javascript:alert(1)".into());
    assert!(check_auth_server(&meta).is_err());
}
