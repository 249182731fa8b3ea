use super::*;

fn principal(scopes: &str) -> Principal {
    Principal::new("alice".parse().unwrap(), crate::AuthMethod::Anonymous)
        .with_scopes(scopes.parse().unwrap())
}

fn demo() -> Policy {
    let cfg: PolicyConfig = toml_like();
    Policy::new(&cfg, "groups").unwrap()
}

fn toml_like() -> PolicyConfig {
    serde_json::from_value(serde_json::json!({
        "required_scopes": "mcp",
        "tool_scopes": { "create_*": "notes:write", "*_secure_note*": ["notes:read"], "list_secure_notes": "notes:read" },
        "resource_scopes": { "user://notes/*": "notes:read" },
    }))
    .unwrap()
}

#[test]
fn needed_scopes_add_up_across_matching_globs() {
    let p = demo();
    assert_eq!(
        p.needed(Target::Tool("create_secure_note")),
        vec!["mcp", "notes:read", "notes:write"]
    );
    assert_eq!(p.needed(Target::Tool("echo")), vec!["mcp"]);
    assert_eq!(
        p.needed(Target::Resource("user://notes/3")),
        vec!["mcp", "notes:read"]
    );
    assert_eq!(
        p.missing(
            &principal("mcp notes:read"),
            Target::Tool("create_secure_note")
        ),
        vec!["notes:write"]
    );
    assert!(
        p.missing(&principal("*"), Target::Tool("create_secure_note"))
            .is_empty()
    );
    assert_eq!(p.scopes(), vec!["mcp", "notes:read", "notes:write"]);
}

#[test]
fn subject_and_group_rules() {
    let cfg: PolicyConfig = serde_json::from_value(serde_json::json!({
        "deny_subjects": ["mallory*"], "allow_groups": ["staff"]
    }))
    .unwrap();
    let pol = Policy::new(&cfg, "groups").unwrap();
    let p = principal("");
    assert!(pol.admits(&p).unwrap_err().to_string().contains("staff"));
    let mut claims = serde_json::Map::new();
    claims.insert("groups".into(), serde_json::json!(["staff", "x"]));
    let p = p.with_claims(claims);
    assert!(pol.admits(&p).is_ok());
    let p = Principal::new("mallory2".parse().unwrap(), crate::AuthMethod::Anonymous)
        .with_claims(p.claims().clone());
    assert!(pol.admits(&p).unwrap_err().to_string().contains("denied"));
    assert!(
        Policy::new(
            &serde_json::from_value(serde_json::json!({"tool_scopes": {"[": "x"}})).unwrap(),
            "g"
        )
        .is_err()
    );
}

#[test]
fn authorize_proves_the_operation_or_names_the_scopes_it_needs() {
    let pol = demo();
    let caller = |p: Principal| crate::proof::Authenticated::new(p);
    let ok = pol
        .authorize(
            &caller(principal("mcp notes:read")),
            Target::Tool("list_secure_notes"),
        )
        .expect("allowed");
    assert_eq!(ok.caller().principal().subject(), "alice");
    let signed_in = Principal::new("bob".parse().unwrap(), crate::AuthMethod::Jwt)
        .with_scopes("mcp".parse().unwrap());
    assert_eq!(
        pol.authorize(&caller(signed_in), Target::Tool("create_note"))
            .unwrap_err(),
        AuthRejection::InsufficientScope(vec!["mcp".into(), "notes:write".into()])
    );
    assert_eq!(
        pol.authorize(&caller(Principal::anonymous()), Target::Upstream)
            .unwrap_err(),
        AuthRejection::MissingFor(vec!["mcp".into()])
    );
}

#[test]
fn subject_rules_name_the_subject_they_refuse() {
    let cfg: PolicyConfig = serde_json::from_value(serde_json::json!({
        "allow_subjects": ["alice", "svc-*"], "deny_subjects": ["svc-old"]
    }))
    .unwrap();
    let pol = Policy::new(&cfg, "groups").unwrap();
    let who = |s: &str| Principal::new(s.parse().unwrap(), crate::AuthMethod::Jwt);
    assert!(pol.admits(&who("alice")).is_ok());
    assert!(pol.admits(&who("svc-new")).is_ok());
    assert_eq!(
        pol.admits(&who("bob")).unwrap_err().to_string(),
        AuthRejection::Forbidden("subject bob is not allowed on this upstream".into()).to_string()
    );
    assert_eq!(
        pol.admits(&who("svc-old")).unwrap_err().to_string(),
        AuthRejection::Forbidden("subject svc-old is denied on this upstream".into()).to_string()
    );
}
