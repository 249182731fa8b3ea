use super::*;

fn upstreams(toml_text: &str) -> Vec<UpstreamConfig> {
    #[derive(serde::Deserialize)]
    struct F {
        upstream: Vec<UpstreamConfig>,
    }
    toml::from_str::<F>(toml_text).expect("toml").upstream
}

fn token(iss: &str, aud: &[&str], method: AuthMethod) -> Principal {
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), iss.into());
    Principal::new("alice".parse().unwrap(), method)
        .with_audience(aud.iter().map(|a| a.parse().unwrap()).collect())
        .with_claims(claims)
}

const AS: &str = "https://gw.example";

fn two() -> Audiences {
    let binding = AudienceBinding {
        endpoint_issuers: vec![AS.parse().unwrap()],
        issuer_audiences: [(
            "https://idp.example".parse().unwrap(),
            vec!["api://all".parse().unwrap()],
        )]
        .into_iter()
        .collect(),
    };
    let url = url::Url::parse("https://gw.example/").expect("url");
    Audiences::new(
        binding,
        &url,
        &upstreams(
            "[[upstream]]\nname = \"demo\"\nurl = \"http://d\"\n\n[[upstream]]\nname = \"echo\"\nurl = \"http://e\"\naudience = \"api://echo\"\n",
        ),
     )
    .expect("audiences")
}

#[test]
fn a_token_of_the_built_in_server_works_only_at_its_endpoint() {
    let a = two();
    let p = token(AS, &["https://gw.example/mcp/demo"], AuthMethod::Jwt);
    assert!(a.check(&p, "demo", "https://gw.example/mcp/demo").is_ok());
    let e = a
        .check(&p, "echo", "https://gw.example/mcp/echo")
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        AuthRejection::InvalidToken(
            "Token audience does not include https://gw.example/mcp/echo".into()
        )
        .to_string()
    );
    // `X/` and an upper-case host name the same resource.
    let p = token(AS, &["https://GW.example/mcp/demo/"], AuthMethod::Jwt);
    assert!(a.check(&p, "demo", "https://gw.example/mcp/demo").is_ok());
    // With two upstreams `/mcp` is no endpoint: a token for it works nowhere.
    let p = token(AS, &["https://gw.example/mcp"], AuthMethod::Jwt);
    assert!(a.check(&p, "demo", "https://gw.example/mcp/demo").is_err());
}

#[test]
fn the_single_upstream_answers_to_both_of_its_urls() {
    let url = url::Url::parse("https://gw.example/").expect("url");
    let a = Audiences::new(
        AudienceBinding {
            endpoint_issuers: vec![AS.parse().unwrap()],
            ..AudienceBinding::default()
        },
        &url,
        &upstreams("[[upstream]]\nname = \"demo\"\nurl = \"http://d\"\n"),
    )
    .expect("audiences");
    for aud in ["https://gw.example/mcp", "https://gw.example/mcp/demo"] {
        let p = token(AS, &[aud], AuthMethod::Jwt);
        assert!(
            a.check(&p, "demo", "https://gw.example/mcp").is_ok(),
            "{aud}"
        );
        assert!(
            a.check(&p, "demo", "https://gw.example/mcp/demo").is_ok(),
            "{aud}"
        );
    }
}

#[test]
fn external_issuers_keep_their_audience_unless_the_upstream_overrides_it() {
    let a = two();
    let idp = "https://idp.example";
    let all = token(idp, &["api://all"], AuthMethod::Jwt);
    assert!(a.check(&all, "demo", "https://gw.example/mcp/demo").is_ok());
    assert!(
        a.check(&all, "echo", "https://gw.example/mcp/echo")
            .is_err()
    );
    let echo = token(idp, &["api://echo"], AuthMethod::Jwt);
    assert!(
        a.check(&echo, "echo", "https://gw.example/mcp/echo")
            .is_ok()
    );
    assert!(
        a.check(&echo, "demo", "https://gw.example/mcp/demo")
            .is_err()
    );
}

#[test]
fn keys_and_passwords_are_not_audience_bound() {
    let a = two();
    for m in [
        AuthMethod::ApiKey,
        AuthMethod::Basic,
        AuthMethod::StaticToken,
    ] {
        let p = token(AS, &[], m);
        assert!(a.check(&p, "echo", "https://gw.example/mcp/echo").is_ok());
    }
}

#[test]
fn an_override_that_is_no_audience_is_a_configuration_error() {
    #[derive(Debug, serde::Deserialize)]
    struct F {
        #[allow(dead_code)]
        upstream: Vec<UpstreamConfig>,
    }
    let e = toml::from_str::<F>(
        "[[upstream]]\nname = \"demo\"\nurl = \"http://d\"\naudience = [\"api://a\", \"api b\"]\n",
    )
    .expect_err("refused");
    assert!(
        e.to_string()
            .contains("\"api b\": an audience is one value"),
        "{e}"
    );
}
