use super::*;

#[test]
fn modes_read_as_written() {
    for m in [DpopMode::Off, DpopMode::Allowed, DpopMode::Required] {
        let back: DpopMode = serde_json::from_value(serde_json::json!(m.as_str())).unwrap();
        assert_eq!(back, m);
    }
    assert!(serde_json::from_value::<DpopMode>(serde_json::json!("sometimes")).is_err());
    assert_eq!(DpopMode::default(), DpopMode::Allowed);
}

#[test]
fn a_proof_is_seen_once() {
    let seen = SeenProofs::new();
    assert!(seen.first_use("a".into()));
    assert!(!seen.first_use("a".into()));
    assert!(seen.first_use("b".into()));
}

#[test]
fn the_bound_key_is_cnf_jkt() {
    let subject: mcpgate_types::Subject = "alice".parse().unwrap();
    let mut claims = serde_json::Map::new();
    let p = Principal::new(subject.clone(), AuthMethod::Jwt).with_claims(claims.clone());
    assert_eq!(bound_key(&p), None);
    claims.insert("cnf".into(), serde_json::json!({"jkt": "thumb"}));
    let p = Principal::new(subject, AuthMethod::Jwt).with_claims(claims);
    assert_eq!(bound_key(&p), Some("thumb"));
}
