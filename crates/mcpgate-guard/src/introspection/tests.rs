use serde_json::json;

use super::*;

fn cfg(extra: &str) -> IntrospectionConfig {
    toml::from_str(&format!(
        "endpoint = \"http://127.0.0.1:9/introspect\"\nclient_id = \"mcpgate\"\n{extra}"
    ))
    .unwrap()
}

fn with_secret() -> IntrospectionConfig {
    cfg("client_secret = \"s3cret\"")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test data is an object"),
    }
}

#[test]
fn config_defaults_and_durations() {
    let c = with_secret();
    assert_eq!(c.auth_method, ClientAuthMethod::ClientSecretBasic);
    assert_eq!(c.positive_ttl, Duration::from_secs(300));
    assert_eq!(c.negative_ttl, Duration::from_secs(10));
    assert_eq!(c.timeout, Duration::from_secs(5));
    let c = cfg(
        "client_secret_env = \"S\"\nauth_method = \"client_secret_post\"\npositive_ttl = \"1h\"\nnegative_ttl = 3\ntimeout = \"250ms\"",
    );
    assert_eq!(c.auth_method, ClientAuthMethod::ClientSecretPost);
    assert_eq!(c.positive_ttl, Duration::from_secs(3600));
    assert_eq!(c.negative_ttl, Duration::from_secs(3));
    assert_eq!(c.timeout, Duration::from_millis(250));
    for bad in [
        "client_secret = \"x\"\nclient_secrets = \"y\"",
        "client_secret = \"x\"\nauth_method = \"private_key_jwt\"",
        "client_secret = \"x\"\ntimeout = \"5 fortnights\"",
    ] {
        assert!(
            toml::from_str::<IntrospectionConfig>(&format!(
                "endpoint = \"https://idp/x\"\nclient_id = \"c\"\n{bad}"
            ))
            .is_err(),
            "{bad}"
        );
    }
}

#[test]
fn construction_checks_the_endpoint_and_the_secret() {
    let e = Introspection::with_env(&cfg(""), |_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("set client_secret_env"), "{e}");
    let e = Introspection::with_env(&cfg("client_secret_env = \"IDP_SECRET\""), |_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("IDP_SECRET, which is not set"), "{e}");
    Introspection::with_env(&cfg("client_secret_env = \"IDP_SECRET\""), |_| {
        Some("x".into())
    })
    .unwrap();
    let e = Introspection::with_env(
        &cfg("client_secret = \"a\"\nclient_secret_env = \"B\""),
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not both"), "{e}");

    let mut remote = with_secret();
    remote.endpoint = url::Url::parse("http://idp.example/introspect").unwrap();
    let e = Introspection::new(&remote).unwrap_err().to_string();
    assert!(e.contains("plain http"), "{e}");
    remote.allow_http = true;
    Introspection::new(&remote).unwrap();
    remote.endpoint = url::Url::parse("https://idp.example/introspect").unwrap();
    remote.allow_http = false;
    let v = Introspection::new(&remote).unwrap();
    assert_eq!(v.name(), "introspection:idp.example");
    let dbg = format!("{v:?} {remote:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
}

#[test]
fn active_answers_become_principals() {
    let v = Introspection::new(&with_secret()).unwrap();
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let a = v.answer(obj(json!({
        "active": true, "sub": "u-1", "username": "alice", "client_id": "cli",
        "scope": "notes:read notes:write", "aud": ["https://mcp.example/mcp"], "exp": exp,
        "groups": ["eng"]
    })));
    let Answer::Active {
        principal: p,
        until,
    } = a
    else {
        panic!("expected active");
    };
    assert_eq!(p.subject(), "u-1");
    assert_eq!(p.client_id().map(|c| c.as_str()), Some("cli"));
    assert!(p.has_scope("notes:write"));
    assert_eq!(p.audience(), ["https://mcp.example/mcp"]);
    assert_eq!(
        p.expires_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
    );
    assert_eq!(p.method(), AuthMethod::Introspection);
    assert_eq!(p.claims()["groups"], json!(["eng"]));
    assert_eq!(p.claims()["username"], json!("alice"));
    assert!(!p.claims().contains_key("active"));
    assert!(
        until <= Instant::now() + Duration::from_secs(60),
        "never past exp"
    );

    let Answer::Active { principal: p, .. } =
        v.answer(obj(json!({"active": true, "username": "bob"})))
    else {
        panic!("expected active");
    };
    assert_eq!(p.subject(), "bob");
    let Answer::Active { principal: p, .. } = v.answer(obj(
        json!({"active": true, "client_id": "svc", "scope": ["a", "b"]}),
    )) else {
        panic!("expected active");
    };
    assert_eq!((p.subject().as_str(), p.scopes().len()), ("svc", 2));
}

#[test]
fn inactive_malformed_and_anonymous_answers_are_refusals() {
    let v = Introspection::new(&with_secret()).unwrap();
    for body in [
        json!({"active": false}),
        json!({"active": "true", "sub": "x"}),
        json!({"sub": "x"}),
    ] {
        let Answer::Inactive { why, .. } = v.answer(obj(body.clone())) else {
            panic!("{body} must not be active");
        };
        assert_eq!(why, "Token is not active (revoked or expired)");
    }
    let Answer::Inactive { why, .. } = v.answer(obj(json!({"active": true, "scope": "a"}))) else {
        panic!("no subject must not be active");
    };
    assert!(why.contains("names no subject"), "{why}");
}

#[test]
fn the_audience_is_compared_as_a_resource() {
    let mut c = with_secret();
    c.audience = Some("https://MCP.example/mcp".into());
    let v = Introspection::new(&c).unwrap();
    assert!(matches!(
        v.answer(obj(
            json!({"active": true, "sub": "a", "aud": "https://mcp.example/mcp/"})
        )),
        Answer::Active { .. }
    ));
    for aud in [json!("https://other.example/mcp"), json!([]), Value::Null] {
        let Answer::Inactive { why, .. } =
            v.answer(obj(json!({"active": true, "sub": "a", "aud": aud})))
        else {
            panic!("wrong audience must be refused");
        };
        assert_eq!(
            why,
            "Token audience does not include https://MCP.example/mcp"
        );
    }
}

#[test]
fn only_bearer_tokens_are_accepted() {
    let v = Introspection::new(&with_secret()).unwrap();
    assert!(v.accepts(&Credential::Bearer("opaque".into())));
    assert!(!v.accepts(&Credential::ApiKey("opaque".into())));
    assert!(!v.accepts(&Credential::Basic {
        user: "u".into(),
        password: "p".into()
    }));
}

#[test]
fn urls_must_not_carry_secrets_in_the_clear() {
    let ok = |s: &str, allow| check_url(&url::Url::parse(s).unwrap(), allow, "x").is_ok();
    assert!(ok("https://idp.example/i", false));
    assert!(ok("http://127.0.0.1:8080/i", false));
    assert!(ok("http://[::1]:8080/i", false));
    assert!(ok("http://localhost/i", false));
    assert!(!ok("http://idp.example/i", false));
    assert!(ok("http://idp.example/i", true));
    assert!(!ok("ftp://idp.example/i", true));
}
