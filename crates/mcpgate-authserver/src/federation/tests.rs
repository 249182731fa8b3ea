use super::idp::Identity;
use super::*;

fn cfg(toml_kind: ProviderKind, name: &str) -> ProviderConfig {
    ProviderConfig {
        kind: toml_kind,
        name: name.into(),
        display_name: None,
        client_id: "cid".into(),
        client_secret_env: None,
        client_secret_file: None,
        tenant: None,
        issuer: None,
        scopes: None,
        allowed_orgs: Vec::new(),
        allowed_domains: Vec::new(),
        allowed_groups: Vec::new(),
        allowed_users: Vec::new(),
        groups_claim: None,
        map_by: MapBy::Email,
        create_users: false,
        user_scopes: Vec::new(),
        github_url: None,
        github_api_url: None,
    }
}

fn query(url: &str) -> std::collections::BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn github_authorization_url_has_pkce_and_state_but_no_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "shh\n").unwrap();
    let mut c = cfg(ProviderKind::Github, "github");
    c.client_secret_file = Some(secret);
    c.allowed_orgs = vec!["acme".into()];
    let idp = Idp::new(&c, outbound()).unwrap();
    let url = idp
        .authorization_url(
            "https://gw/federation/github/callback",
            "st",
            "v".repeat(43).as_str(),
            "n",
        )
        .await
        .unwrap();
    assert!(
        url.starts_with("https://github.com/login/oauth/authorize?"),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["state"], "st");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["scope"].contains("read:org"), "{url}");
    assert!(!q.contains_key("nonce") && !q.contains_key("resource"));
}

#[test]
fn configuration_mistakes_are_named() {
    let e = Idp::new(&cfg(ProviderKind::Github, "github"), outbound()).unwrap_err();
    assert!(e.contains("client secret"), "{e}");
    let e = Idp::new(&cfg(ProviderKind::Entra, "entra"), outbound()).unwrap_err();
    assert!(e.contains("tenant"), "{e}");
    let e = Idp::new(&cfg(ProviderKind::Oidc, "corp"), outbound()).unwrap_err();
    assert!(e.contains("issuer"), "{e}");
    let e = Idp::new(&cfg(ProviderKind::Oidc, "Bad Name"), outbound()).unwrap_err();
    assert!(e.contains("name"), "{e}");
    let mut c = cfg(ProviderKind::Google, "google");
    c.allowed_orgs = vec!["x".into()];
    assert!(
        Idp::new(&c, outbound())
            .unwrap_err()
            .contains("allowed_groups")
    );
}

#[test]
fn issuers_by_kind() {
    let mut e = cfg(ProviderKind::Entra, "entra");
    e.tenant = Some("contoso.onmicrosoft.com".into());
    let idp = Idp::new(&e, outbound()).unwrap();
    assert_eq!(
        idp.issuer().unwrap(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    );
    let g = Idp::new(&cfg(ProviderKind::Google, "google"), outbound()).unwrap();
    assert_eq!(g.issuer().unwrap(), "https://accounts.google.com");
    assert_eq!(g.display_name(), "Google");
}

fn who(email: Option<&str>, login: &str, orgs: &[&str], groups: &[&str]) -> Identity {
    Identity {
        subject: "1".parse().unwrap(),
        email: email.map(str::to_owned),
        login: Some(login.into()),
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn allow_lists() {
    let mut c = cfg(ProviderKind::Github, "github");
    c.allowed_orgs = vec!["Acme".into()];
    assert!(policy::allowed(&c, &who(None, "octo", &["acme"], &[])).is_ok());
    let e = policy::allowed(&c, &who(None, "octo", &["other"], &[])).unwrap_err();
    assert!(e.contains("not a member") && e.contains("Acme"), "{e}");

    let mut c = cfg(ProviderKind::Oidc, "corp");
    c.allowed_domains = vec!["example.com".into()];
    assert!(policy::allowed(&c, &who(Some("a@Example.com"), "a", &[], &[])).is_ok());
    assert!(policy::allowed(&c, &who(Some("a@evil.com"), "a", &[], &[])).is_err());
    assert!(
        policy::allowed(&c, &who(None, "a", &[], &[])).is_err(),
        "no verified email, no domain"
    );

    let mut c = cfg(ProviderKind::Oidc, "corp");
    c.allowed_groups = vec!["mcp-users".into()];
    assert!(policy::allowed(&c, &who(None, "a", &[], &["mcp-users"])).is_ok());
    assert!(policy::allowed(&c, &who(None, "a", &[], &["other"])).is_err());

    let mut c = cfg(ProviderKind::Oidc, "corp");
    c.allowed_users = vec!["*@example.com".into(), "admin-*".into()];
    assert!(policy::allowed(&c, &who(Some("x@example.com"), "x", &[], &[])).is_ok());
    assert!(policy::allowed(&c, &who(None, "admin-bob", &[], &[])).is_ok());
    assert!(policy::allowed(&c, &who(Some("x@other.com"), "x", &[], &[])).is_err());
}

#[test]
fn user_names_are_storable() {
    assert_eq!(
        policy::user_name("gh", &who(None, "octo cat/1", &[], &[])),
        "octo-cat-1"
    );
    let anon = Identity {
        subject: "42".parse().unwrap(),
        email: None,
        login: None,
        orgs: Vec::new(),
        groups: Vec::new(),
    };
    assert_eq!(policy::user_name("gh", &anon), "gh-42");
}

fn outbound() -> super::Outbound {
    super::Outbound {
        operator: mcpgate_fetch::Fetcher::new(mcpgate_fetch::Policy::operator(
            mcpgate_fetch::Private::Allow,
        ))
        .unwrap(),
        untrusted: mcpgate_fetch::Fetcher::new(mcpgate_fetch::Policy::untrusted()).unwrap(),
    }
}
