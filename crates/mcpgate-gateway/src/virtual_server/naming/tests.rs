use super::Rules;
use crate::config::UpstreamConfig;

fn upstream(toml_text: &str) -> UpstreamConfig {
    #[derive(serde::Deserialize)]
    struct File {
        upstream: Vec<UpstreamConfig>,
    }
    let file: File = toml::from_str(toml_text).unwrap();
    file.upstream.into_iter().next().unwrap()
}

fn rules(extra: &str) -> Rules {
    let u = upstream(&format!(
        "[[upstream]]\nname = \"gh\"\nurl = \"http://127.0.0.1:1/mcp\"\n{extra}"
    ));
    Rules::new(&u, "_").unwrap()
}

#[test]
fn names_are_prefixed_and_read_back() {
    let r = rules("");
    assert_eq!(
        r.tool_shown("create_issue").as_deref(),
        Some("gh_create_issue")
    );
    assert_eq!(
        r.tool_original("gh_create_issue").as_deref(),
        Some("create_issue")
    );
    // Another member's name, or the bare prefix, is not this member's.
    assert_eq!(r.tool_original("jira_create_issue"), None);
    assert_eq!(r.tool_original("gh_"), None);
    assert_eq!(r.prefixed("triage"), "gh_triage");
}

#[test]
fn unprefixed_names_stay_as_they_are() {
    let r = rules("prefix = false");
    assert_eq!(r.tool_shown("x").as_deref(), Some("x"));
    assert_eq!(r.tool_original("x").as_deref(), Some("x"));
}

#[test]
fn deny_wins_over_allow_on_lists_and_calls() {
    let r = rules("tools.allow = [\"get_*\", \"list_*\"]\ntools.deny = [\"get_secret*\"]");
    assert_eq!(r.tool_shown("get_issue").as_deref(), Some("gh_get_issue"));
    assert_eq!(r.tool_shown("get_secret_key"), None);
    assert_eq!(r.tool_shown("delete_repo"), None);
    assert_eq!(r.tool_original("gh_get_secret_key"), None);
    assert_eq!(r.tool_original("gh_delete_repo"), None);
    assert_eq!(
        r.tool_original("gh_list_repos").as_deref(),
        Some("list_repos")
    );
}

#[test]
fn a_renamed_tool_answers_to_its_new_name_only() {
    let r =
        rules("tools.rename = { echo = \"say\" }\ntools.descriptions = { echo = \"Says it.\" }");
    assert_eq!(r.tool_shown("echo").as_deref(), Some("gh_say"));
    assert_eq!(r.tool_original("gh_say").as_deref(), Some("echo"));
    assert_eq!(r.tool_original("gh_echo"), None);
    assert_eq!(r.description("echo"), Some("Says it."));
}

#[test]
fn filters_apply_to_the_upstream_name_not_the_new_one() {
    let r = rules("tools.rename = { echo = \"say\" }\ntools.deny = [\"echo\"]");
    assert_eq!(r.tool_shown("echo"), None);
    assert_eq!(r.tool_original("gh_say"), None);
}

#[test]
fn check_config_finds_collisions_and_unknown_members() {
    #[derive(serde::Deserialize)]
    struct File {
        upstream: Vec<UpstreamConfig>,
        virtual_server: Vec<crate::VirtualServerConfig>,
    }
    let file: File = toml::from_str(
        r#"
[[upstream]]
name = "a"
url = "http://127.0.0.1:1/mcp"
[[upstream]]
name = "a_b"
url = "http://127.0.0.1:1/mcp"
[[upstream]]
name = "c"
url = "http://127.0.0.1:1/mcp"
prefix = false
tools.rename = { x = "z", y = "z" }
[[virtual_server]]
name = "v"
upstreams = ["a", "a_b", "c", "nope"]
[[virtual_server]]
name = "c"
upstreams = ["a"]
"#,
    )
    .unwrap();
    let problems = crate::virtual_server_problems(&file.virtual_server, &file.upstream);
    let all = problems.join("\n");
    assert!(all.contains("unknown member upstream \"nope\""), "{all}");
    assert!(all.contains("members \"a\" and \"a_b\""), "{all}");
    assert!(
        all.contains("gives both \"x\" and \"y\" the name \"z\""),
        "{all}"
    );
    assert!(
        all.contains("virtual_server \"c\": an [[upstream]] has this name already"),
        "{all}"
    );
    assert_eq!(problems.len(), 4, "{all}");
}
