use super::*;

const KEY: &str = "0123456789abcdefghijABCDEFGHIJ0123456789";

fn cfg(extra: &str) -> UpstreamKeyConfig {
    toml::from_str(&format!(
        "upstream = \"wandb\"\nformat = \"[A-Za-z0-9]{{40}}\"\nformat_description = \"exactly 40 alphanumeric characters\"\n{extra}"
    ))
    .unwrap()
}

#[test]
fn config_defaults() {
    let c = cfg("");
    assert_eq!(c.header, "X-Api-Key");
    assert_eq!(c.verify_ttl, Duration::from_secs(600));
    assert_eq!(c.verify_timeout, Duration::from_secs(5));
    assert!(c.verify_url.is_none() && c.env.is_none() && c.subject_prefix.is_none());
    let v = UpstreamKey::new(&c).unwrap();
    assert_eq!(v.name(), "upstream_key:wandb");
    assert_eq!(v.upstream(), "wandb");
    assert!(
        toml::from_str::<UpstreamKeyConfig>(
            "upstream = \"u\"\nformat = \"x\"\nformat_description = \"x\"\nverify = \"https://x\""
        )
        .is_err()
    );
}

#[test]
fn construction_reports_every_problem() {
    let mut c = cfg("header = \"bad header\"\nverify_url = \"http://api.example/viewer\"");
    c.format = "[unclosed".into();
    c.format_description = " ".into();
    c.env = Some("A=B".into());
    let e = UpstreamKey::new(&c).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 5, "{e}");
    assert!(
        e.contains(
            "format \"[unclosed\" is not a valid regular expression: unclosed character class"
        ),
        "{e}"
    );
    assert!(e.contains("format_description is empty"), "{e}");
    assert!(
        e.contains("\"bad header\" is not a valid header name"),
        "{e}"
    );
    assert!(e.contains("env \"A=B\""), "{e}");
    assert!(e.contains("plain http"), "{e}");
}

#[test]
fn the_format_is_anchored() {
    let v = UpstreamKey::new(&cfg("")).unwrap();
    assert!(v.format.is_match(KEY));
    assert!(!v.format.is_match(&format!("{KEY}x")));
    assert!(!v.format.is_match(&format!("-{KEY}")));
    assert!(!v.format.is_match(&KEY[1..]));
}

#[tokio::test]
async fn a_matching_key_is_a_principal_that_never_contains_the_key() {
    let v = UpstreamKey::new(&cfg("scopes = \"runs:read\"")).unwrap();
    let ok = v.verify(&Credential::Bearer(KEY.into())).await.unwrap();
    let p = ok.principal();
    let hex: String = Sha256::digest(KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(p.subject().as_str(), format!("wandb:{}", &hex[..16]));
    assert_eq!(p.method(), AuthMethod::UpstreamKey);
    assert_eq!(p.claims()["upstream"], "wandb");
    assert_eq!(p.claims()["key_id"], hex[..16]);
    assert_eq!(p.claims()["key_verified"], false);
    assert!(p.has_scope("runs:read") && !p.has_scope("*"));
    assert_eq!(ok.cache_for(), CACHE_FOR_UNVERIFIED);
    let all = serde_json::to_string(&p).unwrap();
    assert!(!all.contains(KEY), "{all}");
    assert_eq!(UpstreamKey::upstream_of(p), Some("wandb"));
    assert_eq!(UpstreamKey::upstream_of(&Principal::anonymous()), None);

    let v = UpstreamKey::new(&cfg("subject_prefix = \"wb-\"")).unwrap();
    let p = v
        .verify(&Credential::ApiKey(KEY.into()))
        .await
        .unwrap()
        .into_principal();
    assert_eq!(p.subject().as_str(), format!("wb-{}", &hex[..16]));
}

#[tokio::test]
async fn a_mismatch_is_passed_on_and_the_format_is_described() {
    let v = UpstreamKey::new(&cfg("")).unwrap();
    for bad in ["short", "eyJhbGciOiJFUzI1NiJ9.e30.sig", &format!("{KEY}0")] {
        let c = Credential::Bearer(bad.into());
        assert!(v.accepts(&c));
        // Another verifier (JWT, API keys) may own it.
        assert_eq!(v.verify(&c).await.unwrap_err(), VerifyError::NotMine);
    }
    assert_eq!(
        v.format_error(),
        "Invalid API key format: expected exactly 40 alphanumeric characters"
    );
    let basic = Credential::Basic {
        user: "u".into(),
        password: KEY.into(),
    };
    assert!(!v.accepts(&basic));
    assert_eq!(v.verify(&basic).await.unwrap_err(), VerifyError::NotMine);
}

#[test]
fn the_key_is_released_only_for_its_upstream_and_in_the_configured_carrier() {
    let v = UpstreamKey::new(&cfg("env = \"WANDB_API_KEY\"")).unwrap();
    let cred = Credential::ApiKey(KEY.into());
    let s = v.key_for_upstream(&cred).unwrap();
    assert_eq!(s.upstream(), "wandb");
    let (name, value) = s.header().unwrap();
    assert_eq!(name, "x-api-key");
    assert_eq!(value, KEY);
    assert!(value.is_sensitive());
    assert_eq!(s.env_var(), Some(("WANDB_API_KEY", KEY)));
    assert_eq!(s.expose_key(), KEY);
    assert!(!format!("{s:?}").contains(KEY));
    assert!(
        v.key_for_upstream(&Credential::Bearer("nope".into()))
            .is_none()
    );
    assert!(
        v.key_for_upstream(&Credential::Basic {
            user: "u".into(),
            password: KEY.into()
        })
        .is_none()
    );

    let v = UpstreamKey::new(&cfg("header = \"Bearer\"")).unwrap();
    let cred = Credential::Bearer(KEY.into());
    let s = v.key_for_upstream(&cred).unwrap();
    let (name, value) = s.header().unwrap();
    assert_eq!(name, http::header::AUTHORIZATION);
    assert_eq!(value, format!("Bearer {KEY}").as_str());
    assert_eq!(s.env_var(), None);
}
