use super::*;

fn principal(scopes: &str) -> Principal {
    let mut p = Principal::anonymous();
    p.subject = "alice".into();
    p.scopes = Principal::parse_scopes(scopes);
    p
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
    let mut p = principal("");
    assert!(pol.admits(&p).unwrap_err().contains("staff"));
    p.claims
        .insert("groups".into(), serde_json::json!(["staff", "x"]));
    assert!(pol.admits(&p).is_ok());
    p.subject = "mallory2".into();
    assert!(pol.admits(&p).unwrap_err().contains("denied"));
    assert!(
        Policy::new(
            &serde_json::from_value(serde_json::json!({"tool_scopes": {"[": "x"}})).unwrap(),
            "g"
        )
        .is_err()
    );
}
