use std::collections::HashMap;

use super::*;

const LONG_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const LONG_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const LONG_C: &str = "cccccccccccccccccccccccccccccccccccccccc";

fn parse(text: &str) -> StaticTokensConfig {
    toml::from_str(text).unwrap()
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn scopes(list: &[&str]) -> mcpgate_types::ScopeSet {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn config_takes_scopes_as_string_or_list_and_defaults_to_every_scope() {
    let cfg = parse(&format!(
        r#"
        [[tokens]]
        token = "{LONG_A}"
        subject = "alice"
        scopes = "notes:read notes:write"

        [[tokens]]
        token = "{LONG_B}"
        subject = "bob"
        scopes = ["notes:read"]

        [[tokens]]
        token = "{LONG_C}"
        subject = "ci"
        "#
    ));
    let v = StaticTokens::with_env(&cfg, no_env).unwrap();
    assert_eq!(v.len(), 3);
    let e = v.find(LONG_A).unwrap();
    assert_eq!(
        (e.subject.as_str(), &e.scopes),
        ("alice", &scopes(&["notes:read", "notes:write"]))
    );
    assert_eq!(v.find(LONG_B).unwrap().scopes, scopes(&["notes:read"]));
    assert_eq!(v.find(LONG_C).unwrap().scopes, scopes(&["*"]));
}

#[test]
fn unknown_fields_are_refused() {
    let e = toml::from_str::<StaticTokensConfig>("tokenz = []").unwrap_err();
    assert!(e.to_string().contains("unknown field `tokenz`"), "{e}");
    let e = toml::from_str::<StaticTokensConfig>(
        "[[tokens]]\ntoken = \"x\"\nsubject = \"a\"\nscope = \"x\"",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `scope`"), "{e}");
}

#[test]
fn scopes_and_subjects_are_parsed_when_the_configuration_is_read() {
    let cfg = parse(&format!(
        "[[tokens]]\ntoken = \"{LONG_A}\"\nsubject = \"alice\"\nscopes = \"notes:read caf\u{e9}\"\n\
         [[tokens]]\ntoken = \"{LONG_B}\"\nsubject = \"bo\\u0007b\"\n"
    ));
    let e = StaticTokens::with_env(&cfg, no_env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("static token #1") && e.contains("scopes:"),
        "{e}"
    );
    assert!(
        e.contains("static token #2") && e.contains("control"),
        "{e}"
    );
    assert!(!e.contains(LONG_A) && !e.contains(LONG_B), "{e}");
    let compact = StaticTokensConfig {
        tokens_env: Some("K".into()),
        ..Default::default()
    };
    let e = StaticTokens::with_env(&compact, env(&[("K", &format!("{LONG_C}:ci:a\"b"))]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("K entry 1: scopes:"), "{e}");
    assert!(!e.contains(LONG_C), "{e}");
}

#[test]
fn short_tokens_are_refused_naming_the_entry_but_never_the_token() {
    let cfg = parse(
        r#"
        [[tokens]]
        token = "short-secret-123"
        subject = "alice"
        "#,
    );
    let e = StaticTokens::with_env(&cfg, no_env)
        .unwrap_err()
        .to_string();
    assert!(e.contains("static token #1 (subject \"alice\")"), "{e}");
    assert!(e.contains("16 characters"), "{e}");
    assert!(e.contains("allow_short = true"), "{e}");
    assert!(
        !e.contains("short-secret-123"),
        "the message leaks the token: {e}"
    );

    let mut cfg = cfg;
    cfg.allow_short = true;
    let v = StaticTokens::with_env(&cfg, no_env).unwrap();
    assert_eq!(v.find("short-secret-123").unwrap().subject, "alice");
}

#[test]
fn every_problem_is_reported() {
    let cfg = parse(&format!(
        r#"
        tokens_env = "MISSING_VAR"
        [[tokens]]
        subject = "nobody"
        [[tokens]]
        token = "{LONG_A}"
        token_env = "X"
        subject = "both"
        [[tokens]]
        token = "tiny"
        subject = "short"
        [[tokens]]
        token = "{LONG_B}"
        subject = "  "
        "#
    ));
    let e = StaticTokens::with_env(&cfg, no_env)
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(e.contains("#1 (subject \"nobody\"): set one of token, token_env or token_file"));
    assert!(e.contains("#2 (subject \"both\"): set only one of"));
    assert!(e.contains("#3 (subject \"short\"): the token is 4 characters"));
    assert!(e.contains("static token #4: subject is empty"));
    assert!(e.contains("tokens_env names MISSING_VAR, which is not set"));
}

#[test]
fn the_env_list_uses_the_compact_form_and_numbers_unnamed_subjects() {
    let cfg = parse("tokens_env = \"MCPGATE_API_KEYS\"");
    let list = format!("{LONG_A}, {LONG_B}:alice:notes:read notes:write ,,{LONG_C}::");
    let v = StaticTokens::with_env(&cfg, env(&[("MCPGATE_API_KEYS", &list)])).unwrap();
    assert_eq!(v.len(), 3);
    let a = v.find(LONG_A).unwrap();
    assert_eq!(
        (a.subject.as_str(), &a.scopes),
        ("static-1", &scopes(&["*"]))
    );
    let b = v.find(LONG_B).unwrap();
    assert_eq!(
        (b.subject.as_str(), &b.scopes),
        ("alice", &scopes(&["notes:read", "notes:write"]))
    );
    let c = v.find(LONG_C).unwrap();
    assert_eq!(
        (c.subject.as_str(), &c.scopes),
        ("static-3", &scopes(&["*"]))
    );
}

#[test]
fn the_file_takes_one_entry_per_line_with_comments_and_continues_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens");
    std::fs::write(
        &path,
        format!("# team tokens\n\n{LONG_B}:bob:notes:read\n  # indented comment\n{LONG_C}\n"),
    )
    .unwrap();
    let cfg = StaticTokensConfig {
        tokens_env: Some("KEYS".into()),
        tokens_file: Some(path.clone()),
        ..Default::default()
    };
    let v = StaticTokens::with_env(&cfg, env(&[("KEYS", LONG_A)])).unwrap();
    assert_eq!(v.find(LONG_A).unwrap().subject, "static-1");
    assert_eq!(v.find(LONG_B).unwrap().subject, "bob");
    assert_eq!(v.find(LONG_C).unwrap().subject, "static-3");

    std::fs::write(&path, "way-too-short\n").unwrap();
    let e = StaticTokens::with_env(&cfg, env(&[("KEYS", LONG_A)]))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{} line 1", path.display())), "{e}");
    assert!(!e.contains("way-too-short"), "{e}");
}

#[test]
fn token_env_and_token_file_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::write(&path, format!("{LONG_B}\n")).unwrap();
    let cfg = StaticTokensConfig {
        tokens: vec![
            StaticTokenEntry {
                token: None,
                token_env: Some("CI_TOKEN".into()),
                token_file: None,
                subject: "ci".into(),
                scopes: Scopes::Text("a".into()),
            },
            StaticTokenEntry {
                token: None,
                token_env: None,
                token_file: Some(path),
                subject: "bot".into(),
                scopes: Scopes::List(vec!["b c".into()]),
            },
        ],
        ..Default::default()
    };
    let v = StaticTokens::with_env(&cfg, env(&[("CI_TOKEN", LONG_A)])).unwrap();
    assert_eq!(v.find(LONG_A).unwrap().subject, "ci");
    let bot = v.find(LONG_B).unwrap();
    assert_eq!(
        (bot.subject.as_str(), &bot.scopes),
        ("bot", &scopes(&["b", "c"]))
    );
    let e = StaticTokens::with_env(&cfg, no_env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token_env names CI_TOKEN, which is not set"),
        "{e}"
    );
}

#[test]
fn one_token_cannot_name_two_subjects_and_nothing_configured_is_an_error() {
    let cfg = parse("tokens_env = \"K\"");
    let e = StaticTokens::with_env(&cfg, env(&[("K", &format!("{LONG_A}:x,{LONG_A}:y"))]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("K entry 2: the same token as K entry 1"), "{e}");
    let e = StaticTokens::with_env(&cfg, env(&[("K", " , ")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no static tokens are configured"), "{e}");
}

#[test]
fn lookup_compares_every_entry_and_finds_any_position() {
    let tokens: Vec<String> = (0..50).map(|i| format!("{i:0>40}")).collect();
    let cfg = StaticTokensConfig {
        tokens_env: Some("K".into()),
        ..Default::default()
    };
    let v = StaticTokens::with_env(&cfg, env(&[("K", &tokens.join(","))])).unwrap();
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(v.find(t).unwrap().subject, format!("static-{}", i + 1));
    }
    assert!(v.find("").is_none());
    assert!(v.find(&format!("{:0>41}", 1)).is_none());
    assert!(
        !format!("{v:?}").contains("0000"),
        "Debug shows no token or digest"
    );
}

#[test]
fn debug_of_an_entry_hides_the_token() {
    let cfg = parse(&format!(
        "[[tokens]]\ntoken = \"{LONG_A}\"\nsubject = \"a\""
    ));
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains(LONG_A), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}

#[tokio::test]
async fn verification_accepts_bearer_and_api_key_and_refuses_as_not_mine() {
    let cfg = parse(&format!(
        "[[tokens]]\ntoken = \"{LONG_A}\"\nsubject = \"alice\"\nscopes = \"notes:read\""
    ));
    let v = StaticTokens::with_env(&cfg, no_env).unwrap();
    for c in [
        Credential::Bearer(LONG_A.into()),
        Credential::ApiKey(LONG_A.into()),
    ] {
        assert!(v.accepts(&c));
        let ok = v.verify(&c).await.unwrap();
        assert_eq!(ok.principal().subject(), "alice");
        assert_eq!(ok.principal().method(), AuthMethod::StaticToken);
        assert!(ok.principal().has_scope("notes:read"));
        assert!(!ok.principal().has_scope("notes:write"));
        assert_eq!(ok.cache_for(), CACHE_FOR);
    }
    let wrong = Credential::Bearer(LONG_B.into());
    assert_eq!(v.verify(&wrong).await.unwrap_err(), VerifyError::NotMine);
    let basic = Credential::Basic {
        user: "alice".into(),
        password: LONG_A.into(),
    };
    assert!(!v.accepts(&basic));
    assert_eq!(v.verify(&basic).await.unwrap_err(), VerifyError::NotMine);
}
