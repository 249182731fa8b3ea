use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::claims::{self, ClaimRules};
use super::jwks::max_age;
use super::token::{Compact, looks_like_jws};
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(toml_text: &str) -> Result<JwtConfig, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

fn build(toml_text: &str) -> Result<JwtVerifier, String> {
    JwtVerifier::with_env(&parse(toml_text)?, |v| {
        (v == "SECRET").then(|| "s".repeat(40))
    })
    .map_err(|e| e.to_string())
}

const BASE: &str = r#"
issuer = "https://issuer.example/"
audience = "https://mcp.example/mcp"
"#;

fn err(extra: &str) -> String {
    match build(&format!("{BASE}{extra}")) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => e,
    }
}

#[test]
fn provider_examples_in_the_module_docs_are_valid() {
    #[derive(serde::Deserialize)]
    struct File {
        auth: Auth,
    }
    #[derive(serde::Deserialize)]
    struct Auth {
        jwt: Vec<JwtConfig>,
    }
    let source = include_str!("../jwt.rs");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines().filter_map(|l| l.strip_prefix("//!")) {
        let line = line.strip_prefix(' ').unwrap_or(line);
        match (&mut current, line) {
            (None, "```toml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 6, "found {} examples", blocks.len());
    for block in blocks {
        let file: File = toml::from_str(&block).unwrap_or_else(|e| panic!("{block}\n{e}"));
        for cfg in file.auth.jwt {
            let v = JwtVerifier::with_env(&cfg, |_| Some("x".repeat(64)))
                .unwrap_or_else(|e| panic!("{block}\n{e}"));
            assert_eq!(*v.issuer(), cfg.issuer);
        }
    }
}

#[test]
fn audience_is_a_string_or_a_list() {
    let one = parse(&format!("{BASE}jwks_uri = \"https://i.example/jwks\"")).unwrap();
    assert_eq!(one.audience.values(), ["https://mcp.example/mcp"]);
    let many = parse(
        r#"issuer = "i"
audience = ["a", "b"]
jwks_uri = "https://i.example/jwks""#,
    )
    .unwrap();
    assert_eq!(many.audience.values(), ["a", "b"]);
    let bad =
        parse("issuer = \"i\"\naudience = 3\njwks_uri = \"https://i.example/jwks\"").unwrap_err();
    assert!(bad.contains("a string or a list of strings"), "{bad}");
    // A malformed entry is refused as the configuration is read, by name.
    for aud in ["\"a b\"", "[\"a\", \"\"]"] {
        let bad = parse(&format!(
            "issuer = \"i\"\naudience = {aud}\njwks_uri = \"https://i.example/jwks\""
        ))
        .unwrap_err();
        assert!(bad.contains("audience ="), "{bad}");
        assert!(bad.contains("an audience "), "{bad}");
    }
    let blank = parse("issuer = \" \"\naudience = \"a\"\njwks_uri = \"https://i/j\"").unwrap_err();
    assert!(blank.contains("issuer"), "{blank}");
}

#[test]
fn unknown_keys_are_refused() {
    let e = parse(&format!("{BASE}jwks_url = \"https://i.example/jwks\"")).unwrap_err();
    assert!(e.contains("jwks_url"), "{e}");
}

#[test]
fn configuration_problems_name_the_key() {
    let cases = [
        (
            "",
            "jwks_uri: set one of jwks_uri, public_key_file, public_key_pem or hmac_secret_env",
        ),
        (
            "jwks_uri = \"https://i/j\"\nhmac_secret_env = \"SECRET\"",
            "hmac_secret_env: set only one of jwks_uri, hmac_secret_env",
        ),
        (
            "jwks_uri = \"https://i/j\"\nalgorithms = [\"none\"]",
            "algorithms: \"none\" (unsigned tokens) is never accepted",
        ),
        (
            "jwks_uri = \"https://i/j\"\nalgorithms = [\"HS256\"]",
            "algorithms: HS256 is an HMAC algorithm and cannot be used with public keys",
        ),
        (
            "hmac_secret_env = \"SECRET\"\nalgorithms = [\"RS256\"]",
            "algorithms: RS256 is a public-key algorithm",
        ),
        (
            "jwks_uri = \"https://i/j\"\nalgorithms = [\"RS1\"]",
            "algorithms: \"RS1\" is not supported",
        ),
        (
            "jwks_uri = \"https://i/j\"\nalgorithms = []",
            "algorithms: an empty list",
        ),
        (
            "hmac_secret_env = \"MISSING\"",
            "hmac_secret_env: names MISSING, which is not set",
        ),
        (
            "hmac_secret_env = \"SECRET\"\nalgorithms = [\"HS512\"]",
            "the secret in SECRET is 40 bytes; at least 64 are needed",
        ),
        (
            "jwks_uri = \"http://idp.example/jwks\"",
            "jwks_uri: plain http",
        ),
        (
            "jwks_uri = \"ftp://idp.example/jwks\"",
            "jwks_uri: unsupported scheme \"ftp\"",
        ),
        (
            "jwks_uri = \"not a url\"",
            "jwks_uri: \"not a url\" is not a URL",
        ),
        (
            "jwks_uri = \"https://i/j\"\nleeway = 3600",
            "leeway: 3600 seconds is too lenient",
        ),
        (
            "jwks_uri = \"https://i/j\"\nsubject_claim = \"\"",
            "subject_claim: must name a claim",
        ),
        (
            "public_key_file = \"/nonexistent/key.pem\"",
            "public_key_file: cannot read /nonexistent/key.pem",
        ),
        (
            "public_key_pem = \"-----BEGIN PRIVATE KEY-----\"",
            "public_key_pem: holds a private key",
        ),
        (
            "public_key_pem = \"hello\"",
            "public_key_pem: is not a PEM public key",
        ),
        (
            "hmac_secret_env = \"SECRET\"\nallow_http = true",
            "allow_http: applies to jwks_uri only",
        ),
    ];
    for (extra, want) in cases {
        let e = err(extra);
        assert!(e.starts_with("auth.jwt (https://issuer.example/): "), "{e}");
        assert!(e.contains(want), "{extra:?}: got {e:?}, want {want:?}");
    }
    let e = build("issuer = \"i\"\naudience = []\njwks_uri = \"https://i/j\"").unwrap_err();
    assert!(
        e.contains("audience: name this server's resource URL"),
        "{e}"
    );
    let e = build("name = \"a b\"\nissuer = \"i\"\naudience = \"a\"\njwks_uri = \"https://i/j\"")
        .unwrap_err();
    assert!(e.starts_with("auth.jwt (a b): name:"), "{e}");
}

#[test]
fn loopback_or_allowed_http_is_fine_and_names_are_used() {
    let v = build(&format!(
        "{BASE}name = \"local\"\njwks_uri = \"http://127.0.0.1:9/jwks\""
    ))
    .unwrap();
    assert_eq!(v.name(), "jwt:local");
    assert_eq!(
        v.jwks_uri().map(url::Url::as_str),
        Some("http://127.0.0.1:9/jwks")
    );
    build(&format!(
        "{BASE}jwks_uri = \"http://keycloak:8080/certs\"\nallow_http = true"
    ))
    .unwrap();
    let v = build(&format!("{BASE}hmac_secret_env = \"SECRET\"")).unwrap();
    assert_eq!(v.name(), "jwt:https://issuer.example/");
    assert!(
        JwtVerifier::with_env(
            &parse(&format!("{BASE}hmac_secret_env = \"SECRET\"")).unwrap(),
            no_env
        )
        .is_err()
    );
}

#[test]
fn only_bearer_tokens_shaped_like_a_jws_are_accepted() {
    let v = build(&format!("{BASE}hmac_secret_env = \"SECRET\"")).unwrap();
    assert!(v.accepts(&Credential::Bearer("eyJh.eyJz.c2ln".into())));
    assert!(
        v.accepts(&Credential::Bearer("eyJh.eyJz.".into())),
        "alg none: empty signature"
    );
    assert!(!v.accepts(&Credential::ApiKey("eyJh.eyJz.c2ln".into())));
    assert!(!v.accepts(&Credential::Bearer("mcpgate_abcdef".into())));
    assert!(!v.accepts(&Credential::Bearer("a.b".into())));
    assert!(!v.accepts(&Credential::Bearer("a.b.c.d".into())));
    assert!(!v.accepts(&Credential::Bearer(".b.c".into())));
    assert!(!v.accepts(&Credential::Bearer("a+b.c.d".into())));
    assert!(
        !v.accepts(&Credential::Bearer("YQ==.YQ==.YQ".into())),
        "padding is not base64url"
    );
    let huge = format!("a.{}.c", "b".repeat(9000));
    assert!(looks_like_jws(&huge));
}

#[test]
fn malformed_tokens_are_named() {
    let msg = |t: &str| match Compact::parse(t) {
        Err(VerifyError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        msg("abcde.eyJ9.c2ln"),
        "malformed JWT: the header is not base64url"
    );
    assert_eq!(
        msg("bm90IGpzb24.eyJ9.c2ln"),
        "malformed JWT: the header is not a JSON object"
    );
    assert_eq!(
        msg("WzFd.eyJ9.c2ln"),
        "malformed JWT: the header is not a JSON object"
    );
    assert_eq!(
        msg("eyJhbGciOjF9.e30.c2ln"),
        "malformed JWT: the header has fields of the wrong type"
    );
    assert_eq!(
        msg("e30.bm90IGpzb24.c2ln"),
        "malformed JWT: the payload is not a JSON object"
    );
    assert_eq!(
        msg(&format!("e30.{}.c2ln", "a".repeat(9000))),
        "the JWT is longer than 8192 bytes"
    );
    let ok = Compact::parse("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").unwrap();
    assert_eq!(ok.header.alg.as_deref(), Some("HS256"));
    assert_eq!(ok.claims["sub"], "x");
    assert_eq!(ok.signing_input, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0");
}

#[test]
fn times_are_rfc3339() {
    assert_eq!(claims::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    assert_eq!(
        claims::rfc3339(claims::at(1_767_225_600.0)),
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(
        claims::rfc3339(claims::at(1_709_210_096.0)),
        "2024-02-29T12:34:56Z"
    );
    assert_eq!(claims::rfc3339(claims::at(-5.0)), "1970-01-01T00:00:00Z");
    assert_eq!(claims::rfc3339(claims::at(1e300)), "9999-12-31T23:59:59Z");
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn invalid_msg(r: Result<impl std::fmt::Debug, VerifyError>) -> String {
    match r {
        Err(VerifyError::Invalid(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn expiry_not_before_and_issued_at_respect_the_leeway() {
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let t = |c: Value| claims::check_times(&obj(c), 60, now);
    assert!(t(json!({"exp": 1_767_225_601})).is_ok());
    assert!(t(json!({"exp": 1_767_225_550})).is_ok(), "within leeway");
    assert_eq!(
        invalid_msg(t(json!({"exp": 1_767_225_540}))),
        "Token expired at 2025-12-31T23:59:00Z"
    );
    assert_eq!(
        invalid_msg(t(json!({}))),
        "Token has no exp claim; tokens must expire"
    );
    assert_eq!(
        invalid_msg(t(json!({"exp": "soon"}))),
        "Token claim exp is not a number of seconds"
    );
    assert!(
        t(json!({"exp": 1_767_229_200, "nbf": 1_767_225_650})).is_ok(),
        "nbf within leeway"
    );
    assert_eq!(
        invalid_msg(t(json!({"exp": 1_767_229_200, "nbf": 1_767_229_000}))),
        "Token not valid before 2026-01-01T00:56:40Z"
    );
    assert!(
        invalid_msg(t(json!({"exp": 1_767_229_200, "iat": 1_767_229_000})))
            .starts_with("Token issued in the future (2026-01-01T00:56:40Z)")
    );
    assert!(
        t(json!({"exp": 1_767_225_600.5, "iat": 1_767_225_000.25})).is_ok(),
        "fractional dates"
    );
}

fn rules() -> ClaimRules {
    ClaimRules {
        audiences: vec!["https://mcp.example/mcp".into()],
        leeway: 0,
        required: vec![],
        scope_claim: None,
        subject_claim: "sub".into(),
        client_id_claim: None,
        groups_claim: None,
    }
}

fn later() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600
}

#[test]
fn audience_matches_as_a_resource() {
    let r = rules();
    let p = |aud: Value| {
        r.principal(
            obj(json!({"sub": "s", "exp": later(), "aud": aud})),
            SystemTime::now(),
        )
    };
    assert!(p(json!("https://mcp.example/mcp/")).is_ok());
    assert!(p(json!("HTTPS://MCP.EXAMPLE/mcp")).is_ok());
    assert!(p(json!(["other", "https://mcp.example/mcp"])).is_ok());
    assert_eq!(
        invalid_msg(p(json!("https://mcp.example/other"))),
        "Token audience does not include https://mcp.example/mcp"
    );
    assert_eq!(
        invalid_msg(p(json!(["a", 3]))),
        "Token audience does not include https://mcp.example/mcp"
    );
    assert_eq!(
        invalid_msg(r.principal(obj(json!({"sub": "s", "exp": later()})), SystemTime::now())),
        "Token has no aud claim; it must name https://mcp.example/mcp"
    );
    let mut two = rules();
    two.audiences.push("api://x".into());
    assert_eq!(
        invalid_msg(two.principal(
            obj(json!({"sub": "s", "exp": later(), "aud": "y"})),
            SystemTime::now()
        )),
        "Token audience does not include any of https://mcp.example/mcp, api://x"
    );
}

#[test]
fn a_subject_no_header_could_carry_is_refused_and_stray_words_are_left_out() {
    let msg = invalid_msg(rules().principal(
        obj(json!({"sub": "eve\nX-Forged: 1", "exp": later(), "aud": "https://mcp.example/mcp"})),
        SystemTime::now(),
    ));
    assert!(msg.contains("cannot name the caller"), "{msg}");
    let (p, _) = rules()
        .principal(
            obj(json!({
                "sub": "bob", "exp": later(), "aud": ["https://mcp.example/mcp", "two words"],
                "scope": "notes:read caf\u{e9} \"q\"", "client_id": "bad\u{1}id",
            })),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(p.scopes().to_string(), "notes:read");
    assert_eq!(p.audience(), ["https://mcp.example/mcp"]);
    assert_eq!(p.client_id(), None);
}

#[test]
fn the_principal_reads_the_configured_claims() {
    let base = json!({
        "sub": "user-1", "oid": "object-1", "exp": later(), "aud": "https://mcp.example/mcp",
        "scope": "notes:read notes:write", "scp": ["extra"], "azp": "client-a",
        "permissions": ["p:1", "p:2"], "realm_access": {"roles": ["admin", "dev"]}, "tenant": null,
    });
    let (p, cache_for) = rules()
        .principal(obj(base.clone()), SystemTime::now())
        .unwrap();
    assert_eq!(p.subject(), "user-1");
    assert_eq!(p.client_id().map(|c| c.as_str()), Some("client-a"));
    assert_eq!(
        p.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ["extra", "notes:read", "notes:write"]
    );
    assert_eq!(p.audience(), ["https://mcp.example/mcp"]);
    assert_eq!(p.method(), crate::AuthMethod::Jwt);
    assert!(cache_for > Duration::from_secs(590) && cache_for <= Duration::from_secs(600));
    assert!(p.expires_at().is_some());
    assert_eq!(p.claims()["oid"], "object-1");

    let mut r = rules();
    r.subject_claim = "oid".into();
    r.scope_claim = Some("permissions".into());
    r.client_id_claim = Some("appid".into());
    r.groups_claim = Some("realm_access.roles".into());
    let (p, _) = r.principal(obj(base.clone()), SystemTime::now()).unwrap();
    assert_eq!(p.subject(), "object-1");
    assert_eq!(p.scopes().len(), 2);
    assert!(p.has_scope("p:2"));
    assert_eq!(p.client_id(), None);
    assert_eq!(p.claims()["groups"], json!(["admin", "dev"]));

    r.required = vec!["tenant".into()];
    assert_eq!(
        invalid_msg(r.principal(obj(base.clone()), SystemTime::now())),
        "Token lacks the required claim \"tenant\""
    );
    r.required = vec!["realm_access.roles".into()];
    assert!(r.principal(obj(base.clone()), SystemTime::now()).is_ok());
    r.subject_claim = "email".into();
    assert_eq!(
        invalid_msg(r.principal(obj(base), SystemTime::now())),
        "Token has no \"email\" claim naming the caller"
    );
}

#[test]
fn cache_control_max_age() {
    assert_eq!(
        max_age("public, max-age=3600"),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(
        max_age("max-age=\"60\", must-revalidate"),
        Some(Duration::from_secs(60))
    );
    assert_eq!(max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(max_age("public"), None);
    assert_eq!(max_age("max-age=soon"), None);
}
