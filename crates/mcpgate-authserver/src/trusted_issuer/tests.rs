use super::*;

const PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3UrsxV+luwm38uaZuvu3t3CXzCja
+M5e4MGQqJFQpIjJBPt24fL6lReERFCgZkl9mbg3k4OhcirwKLAb3q8zog==
-----END PUBLIC KEY-----
";

fn parse(extra: &str) -> TrustedIssuerConfig {
    let text = format!(
        "name = \"corp\"\nissuer = \"https://idp.example\"\npublic_key_pem = '''{PEM}'''\n{extra}"
    );
    toml::from_str(&text).unwrap()
}

fn build(cfgs: &[TrustedIssuerConfig]) -> Result<Trusted, String> {
    Trusted::new(cfgs, "https://as.example").map_err(|e| e.to_string())
}

#[test]
fn an_id_jag_issuer_builds_with_its_defaults() {
    let c = parse("");
    assert_eq!(c.kind, IssuerKind::IdJag);
    assert_eq!(c.user_match, UserMatch::Name);
    let t = build(&[c]).unwrap();
    assert!(!t.is_empty());
    assert_eq!(t.issuers[0].user_claim(), "sub");
}

#[test]
fn workload_rules_map_subjects_in_order() {
    let c = parse(
        "kind = \"workload\"\n\
         [[workload]]\nsubject = \"system:serviceaccount:agents:*\"\nclient = \"agents\"\nscopes = [\"notes:read\"]\n\
         [[workload]]\nsubject = \"*\"\nclient = \"other\"\nscopes = []\n",
    );
    let t = build(&[c]).unwrap();
    let i = &t.issuers[0];
    assert_eq!(
        i.workload_rule("system:serviceaccount:agents:runner")
            .unwrap()
            .client,
        "agents"
    );
    assert_eq!(i.workload_rule("repo:acme/x").unwrap().client, "other");
}

#[test]
fn misconfigurations_name_the_table_and_the_fix() {
    for (extra, wanted) in [
        ("kind = \"workload\"\n", "needs at least one"),
        (
            "[[workload]]\nsubject = \"*\"\nclient = \"c\"\nscopes = []\n",
            "apply to kind = \"workload\" only",
        ),
        (
            "kind = \"workload\"\ncreate_users = true\n[[workload]]\nsubject = \"*\"\nclient = \"c\"\nscopes = []\n",
            "apply to kind = \"id_jag\"",
        ),
        ("leeway = 3600\n", "at most 600"),
    ] {
        let e = build(&[parse(extra)]).unwrap_err();
        assert!(e.contains("authserver.trusted_issuer (corp)"), "{e}");
        assert!(e.contains(wanted), "{extra}: {e}");
        assert!(!e.contains("auth.jwt"), "{e}");
    }
    let e = build(&[parse(""), parse("")]).unwrap_err();
    assert!(e.contains("same name or issuer"), "{e}");
    let mut bad = parse("");
    bad.name = "a b".into();
    assert!(build(&[bad]).unwrap_err().contains("is not allowed"));
}

#[tokio::test]
async fn assertions_of_unknown_issuers_or_the_wrong_typ_are_refused_before_any_key_is_used() {
    let t = build(&[parse("")]).unwrap();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let jwt = |h: serde_json::Value, c: serde_json::Value| format!("{}.{}.c2ln", b64(h), b64(c));
    let why = |r: Result<Checked<'_>, Refusal>| match r {
        Err(Refusal::Invalid(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = why(t.check("not-a-jwt").await);
    assert!(m.contains("not a signed JWT"), "{m}");
    let m = why(t
        .check(&jwt(
            serde_json::json!({"alg": "ES256", "typ": ID_JAG_TYP}),
            serde_json::json!({"iss": "https://evil.example"}),
        ))
        .await);
    assert!(m.contains("not a trusted issuer"), "{m}");
    let m = why(t
        .check(&jwt(
            serde_json::json!({"alg": "ES256", "typ": "JWT"}),
            serde_json::json!({"iss": "https://idp.example"}),
        ))
        .await);
    assert!(m.contains("typ header is \"JWT\""), "{m}");
    let m = why(t
        .check(&jwt(
            serde_json::json!({"alg": "ES256", "typ": "application/oauth-id-jag+jwt"}),
            serde_json::json!({"iss": "https://idp.example"}),
        ))
        .await);
    assert!(m.contains("signature"), "{m}");
}
