//! Loading, deciding and list visibility, on policies like the docs' examples.

use std::path::Path;

use serde_json::json;

use crate::{Call, Caller, Hints, Operation, PolicyError, Rules};

const RULES: &str = r#"
@id("everyone-reads")
permit (principal, action == Action::"tools/call", resource)
when { resource.name like "*_get_*" || resource.name == "echo" };

@id("sre-deletes")
permit (principal in Group::"sre", action == Action::"tools/call", resource)
when { resource.name like "*_delete_*" };

@id("issues-under-acme")
permit (principal, action == Action::"tools/call", resource == Tool::"github_create_issue")
when { context.repo like "acme/*" };

@id("no-dynamic-writes")
forbid (principal, action, resource)
when { principal has client && principal.client.dynamic && resource.name like "*_create_*" };
"#;

fn rules() -> Rules {
    match Rules::parse(Path::new("policy.cedar"), RULES, None) {
        Ok(r) => r,
        Err(e) => panic!("the test policy does not load: {e}"),
    }
}

fn call<'a>(
    subject: &'a str,
    groups: &[&str],
    tool: &'a str,
    args: Option<&'a serde_json::Value>,
) -> Call<'a> {
    Call {
        caller: Caller {
            subject,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Caller::default()
        },
        op: Operation::ToolsCall,
        name: tool,
        upstream: "github",
        virtual_server: None,
        hints: Hints::default(),
        args,
    }
}

#[test]
fn group_and_argument_rules_decide() {
    let r = rules();
    let d = r.decide(&call("bob", &[], "github_delete_repo", None));
    assert!(!d.allowed);
    assert_eq!(d.reason(), "no policy permits this call");
    let d = r.decide(&call("alice", &["sre"], "github_delete_repo", None));
    assert!(d.allowed);
    assert_eq!(d.deciding, ["sre-deletes"]);
    let good = json!({"repo": "acme/widgets", "title": "x"});
    let bad = json!({"repo": "evil/widgets"});
    assert!(
        r.decide(&call("bob", &[], "github_create_issue", Some(&good)))
            .allowed
    );
    assert!(
        !r.decide(&call("bob", &[], "github_create_issue", Some(&bad)))
            .allowed
    );
    // Missing argument: the condition errors, the permit does not apply.
    let d = r.decide(&call("bob", &[], "github_create_issue", Some(&json!({}))));
    assert!(!d.allowed);
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
}

#[test]
fn forbid_names_its_id_and_dynamic_clients_are_told_apart() {
    let r = rules();
    let args = json!({"repo": "acme/widgets"});
    let mut c = call("bob", &[], "github_create_issue", Some(&args));
    c.caller.client_id = Some("mcpg-abc");
    c.caller.client_dynamic = true;
    let d = r.decide(&c);
    assert!(!d.allowed);
    assert_eq!(d.reason(), "forbidden by policy no-dynamic-writes");
    c.caller.client_dynamic = false;
    assert!(r.decide(&c).allowed);
}

#[test]
fn lists_show_what_some_arguments_allow_and_hide_the_rest() {
    let r = rules();
    assert!(r.visible(&call("bob", &[], "echo", None)));
    assert!(r.visible(&call("bob", &[], "github_create_issue", None)));
    assert!(!r.visible(&call("bob", &[], "github_delete_repo", None)));
    assert!(r.visible(&call("alice", &["sre"], "github_delete_repo", None)));
    let mut c = call("bob", &[], "github_create_issue", None);
    c.caller.client_id = Some("mcpg-abc");
    c.caller.client_dynamic = true;
    assert!(!r.visible(&c));
}

#[test]
fn arguments_cannot_smuggle_entities() {
    let r = rules();
    let args = json!({"repo": {"__entity": {"type": "User", "id": "admin"}}});
    let d = r.decide(&call("bob", &[], "github_create_issue", Some(&args)));
    assert!(!d.allowed);
}

#[test]
fn syntax_errors_name_line_and_column() {
    let src = "permit (principal, action, resource);\n\npermit (principal,, action, resource);\n";
    match Rules::parse(Path::new("p.cedar"), src, None) {
        Err(PolicyError::Parse { problems }) => {
            assert!(problems[0].starts_with("p.cedar:3:"), "{problems:?}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn repeated_ids_are_refused() {
    let src = "@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);\n";
    assert!(matches!(
        Rules::parse(Path::new("p.cedar"), src, None),
        Err(PolicyError::DuplicateId { .. })
    ));
}

const ANNOTATED: &str = r#"
@id("read-only-for-unvetted-clients")
permit (principal, action == Action::"tools/call", resource)
when { principal has client && (principal.client.dynamic || principal.client.metadata_document) }
when { resource has read_only && resource.read_only };

@id("vetted-clients")
permit (principal, action == Action::"tools/call", resource)
when { principal has client && !principal.client.dynamic && !principal.client.metadata_document };

@id("no-destruction-through-work")
forbid (principal, action, resource)
when { resource has virtual_server && resource.virtual_server == "work" }
when { resource has destructive && resource.destructive };

@id("jira-only-for-pm")
forbid (principal, action, resource)
when { resource.upstream == "jira" }
unless { principal in Group::"pm" };
"#;

#[test]
fn annotations_virtual_servers_and_client_kinds_reach_the_rules() {
    let r = match Rules::parse(Path::new("p.cedar"), ANNOTATED, None) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut c = call(
        "bob",
        &[],
        "github_get_issue",
        Some(&serde_json::Value::Null),
    );
    c.caller.client_id = Some("https://app.example/client.json");
    c.caller.client_metadata_document = true;
    // Unknown annotations: the permit's `has` fails, nothing permits.
    assert!(!r.decide(&c).allowed);
    c.hints.read_only = Some(true);
    assert_eq!(r.decide(&c).deciding, ["read-only-for-unvetted-clients"]);
    c.hints.read_only = Some(false);
    assert!(!r.decide(&c).allowed);
    // A vetted client, through the virtual server: destructive tools are forbidden there only.
    c.caller.client_metadata_document = false;
    c.caller.client_id = Some("cli");
    c.hints.destructive = Some(true);
    assert!(r.decide(&c).allowed);
    c.virtual_server = Some("work");
    assert_eq!(
        r.decide(&c).reason(),
        "forbidden by policy no-destruction-through-work"
    );
    // `upstream` is the member the call goes to, whatever the virtual server.
    c.hints.destructive = Some(false);
    c.upstream = "jira";
    assert_eq!(
        r.decide(&c).reason(),
        "forbidden by policy jira-only-for-pm"
    );
    c.caller.groups = vec!["pm".to_owned()];
    assert!(r.decide(&c).allowed);
}

#[test]
fn arguments_are_read_only_when_a_policy_reads_the_context() {
    assert!(rules().reads_context());
    let src =
        "@id(\"a\") permit (principal, action, resource) when { resource.name like \"*_get_*\" };";
    match Rules::parse(Path::new("p.cedar"), src, None) {
        Ok(r) => assert!(!r.reads_context()),
        Err(e) => panic!("{e}"),
    }
}
