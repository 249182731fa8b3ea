//! Static tokens end to end: configuration (inline, variable, file) → request
//! headers → credential → chain → principal or refusal.

use std::sync::Arc;

use http::HeaderMap;
use mcpgate_guard::{
    AuthMethod, AuthRejection, Chain, ExtractOptions, Principal, StaticTokens, StaticTokensConfig,
    extract,
};

const CI: &str = "ci-0123456789abcdef0123456789abcdef";
const ALICE: &str = "alice-0123456789abcdef0123456789abcd";
const BOB: &str = "bob-0123456789abcdef0123456789abcdef";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

async fn who(chain: &Chain, pairs: &[(&str, &str)]) -> Result<Principal, AuthRejection> {
    let cred = extract(&headers(pairs), None, &ExtractOptions::default())?
        .ok_or(AuthRejection::Missing)?;
    chain.authenticate(&cred).await
}

fn chain() -> (Chain, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# people\n{BOB}:bob:notes:read\n")).unwrap();
    let cfg: StaticTokensConfig = toml::from_str(&format!(
        r#"
        tokens_env = "MCPGATE_API_KEYS"
        tokens_file = "{}"
        [[tokens]]
        token_env = "CI_TOKEN"
        subject = "ci"
        scopes = ["deploy"]
        "#,
        file.display()
    ))
    .unwrap();
    let env = |name: &str| match name {
        "CI_TOKEN" => Some(CI.to_owned()),
        "MCPGATE_API_KEYS" => Some(format!("{ALICE}:alice")),
        _ => None,
    };
    let v = StaticTokens::with_env(&cfg, env).unwrap();
    assert_eq!(v.len(), 3);
    (Chain::new(vec![Arc::new(v)]), dir)
}

#[tokio::test]
async fn every_source_authenticates_by_bearer_or_api_key_header() {
    let (chain, _dir) = chain();
    let p = who(&chain, &[("authorization", &format!("Bearer {CI}"))])
        .await
        .unwrap();
    assert_eq!(
        (p.subject().as_str(), p.method()),
        ("ci", AuthMethod::StaticToken)
    );
    assert!(p.has_scope("deploy") && !p.has_scope("notes:read"));

    let p = who(&chain, &[("x-api-key", ALICE)]).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert!(
        p.has_scope("anything"),
        "the compact form defaults to every scope"
    );

    let p = who(&chain, &[("authorization", &format!("bearer {BOB}"))])
        .await
        .unwrap();
    assert_eq!(p.subject(), "bob");
    assert!(p.has_scope("notes:read") && !p.has_scope("notes:write"));
}

#[tokio::test]
async fn a_wrong_token_is_a_401_that_names_nothing_secret() {
    let (chain, _dir) = chain();
    let wrong = format!("{CI}x");
    let e = who(&chain, &[("authorization", &format!("Bearer {wrong}"))])
        .await
        .unwrap_err();
    assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
    assert!(!e.to_string().contains(&wrong));
    assert_eq!(
        e,
        AuthRejection::InvalidToken("the credential is not recognized by this server".into())
    );
    // A prefix of a real token is not that token.
    let e = who(&chain, &[("x-api-key", &CI[..20])]).await.unwrap_err();
    assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
}

#[test]
fn a_short_token_stops_the_start_with_a_message_naming_its_entry() {
    let cfg: StaticTokensConfig = toml::from_str("tokens_env = \"MCPGATE_API_KEYS\"").unwrap();
    let env = |_: &str| Some(format!("{ALICE},hunter2:admin"));
    let e = StaticTokens::with_env(&cfg, env).unwrap_err().to_string();
    assert_eq!(
        e,
        "MCPGATE_API_KEYS entry 2: the token is 7 characters; tokens under 32 characters are refused (make one with `openssl rand -hex 32`), or set allow_short = true"
    );
    let cfg: StaticTokensConfig =
        toml::from_str("tokens_env = \"MCPGATE_API_KEYS\"\nallow_short = true").unwrap();
    assert_eq!(StaticTokens::with_env(&cfg, env).unwrap().len(), 2);
}
