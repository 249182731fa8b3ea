use super::*;

fn spec() -> Spec {
    Spec {
        name: "ci".into(),
        ..Spec::default()
    }
}

#[test]
fn public_by_default_with_code_grants() {
    let s = Spec {
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        ..spec()
    };
    let (m, secret) = metadata(&s).unwrap();
    assert!(!secret);
    assert_eq!(m["token_endpoint_auth_method"], "none");
    assert_eq!(
        m["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
}

#[test]
fn confidential_client_credentials_needs_no_redirect() {
    let s = Spec {
        confidential: true,
        grant_types: vec!["client_credentials".into()],
        ..spec()
    };
    let (m, secret) = metadata(&s).unwrap();
    assert!(secret);
    assert_eq!(m["token_endpoint_auth_method"], "client_secret_basic");
}

#[test]
fn refusals_say_why() {
    let cases = [
        (
            Spec {
                grant_types: vec!["client_credentials".into()],
                ..spec()
            },
            "confidential",
        ),
        (spec(), "--redirect-uri"),
        (
            Spec {
                redirect_uris: vec!["http://evil.example/cb".into()],
                ..spec()
            },
            "loopback",
        ),
        (
            Spec {
                confidential: true,
                auth_method: Some("private_key_jwt".into()),
                grant_types: vec!["client_credentials".into()],
                ..spec()
            },
            "--jwks-file",
        ),
        (
            Spec {
                auth_method: Some("password".into()),
                redirect_uris: vec!["http://127.0.0.1/cb".into()],
                ..spec()
            },
            "not supported",
        ),
        (
            Spec {
                grant_types: vec!["implicit".into()],
                ..spec()
            },
            "not supported",
        ),
    ];
    for (s, why) in cases {
        let e = metadata(&s).unwrap_err();
        assert!(e.contains(why), "{s:?}: {e}");
    }
    assert!(preregistered_client_id("https://app.example/client.json").is_err());
    assert_eq!(preregistered_client_id("ci-bot_1").unwrap(), "ci-bot_1");
}

#[test]
fn secrets_are_random() {
    let (a, b) = (
        crate::random::alphanumeric(43),
        crate::random::alphanumeric(43),
    );
    assert_eq!(a.len(), 43);
    assert_ne!(a, b);
}

#[test]
fn jwt_bearer_by_its_short_name_or_urn_needs_no_redirect() {
    for g in ["jwt-bearer", "urn:ietf:params:oauth:grant-type:jwt-bearer"] {
        let s = Spec {
            grant_types: vec![g.into()],
            ..spec()
        };
        let (m, secret) = metadata(&s).unwrap();
        assert!(!secret);
        assert_eq!(
            m["grant_types"],
            serde_json::json!(["urn:ietf:params:oauth:grant-type:jwt-bearer"])
        );
    }
}
