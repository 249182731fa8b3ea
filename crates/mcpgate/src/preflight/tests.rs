use super::*;

fn parse(text: &str) -> Config {
    toml::from_str(text).expect("a valid configuration")
}

#[test]
fn programs_are_found_like_execvp_finds_them() {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("tool");
    std::fs::write(&prog, "#!/bin/sh\n").unwrap();
    let path_var = dir.path().display().to_string();
    // Not executable yet: not a program.
    assert_eq!(find_program("tool", &path_var, None), None);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(find_program("tool", &path_var, None), Some(prog.clone()));
    assert_eq!(
        find_program("./tool", "", Some(dir.path())),
        Some(dir.path().join("./tool"))
    );
    assert_eq!(find_program("nope", &path_var, None), None);
    // A directory of that name is not a program.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    assert_eq!(find_program("sub", &path_var, None), None);
}

#[test]
fn a_missing_command_names_the_upstream_and_the_path() {
    let c = parse(
        r#"
[[upstream]]
name = "gone"
command = ["mcpgate-no-such-program-xyz", "--stdio"]
"#,
    );
    let p = command_problem(&c.upstreams[0]).expect("a problem");
    assert!(
        p.contains("upstream gone") && p.contains("not on PATH"),
        "{p}"
    );
    assert!(readiness_problems(&c).contains(&p));
}

#[test]
fn vault_and_federated_need_their_source() {
    let c = parse(
        r#"
[[upstream]]
name = "w"
url = "http://127.0.0.1:9/mcp"
credentials = [{ kind = "vault", header = "X-Key" }]
[[upstream]]
name = "g"
url = "http://127.0.0.1:9/mcp"
credentials = [{ kind = "federated", provider = "github" }]
"#,
    );
    let all = refusals(&c).join("\n");
    assert!(
        all.contains("upstream w: kind = \"vault\"") && all.contains("[authserver] is not enabled"),
        "{all}"
    );
    assert!(
        all.contains("upstream g: kind = \"federated\" names provider \"github\""),
        "{all}"
    );
}

#[test]
fn upstream_keys_are_refused_without_authentication() {
    let c = parse(
        r#"
[auth]
mode = "disabled"
[[auth.upstream_key]]
upstream = "w"
format = "k-[0-9]+"
format_description = "k- and digits"
header = "X-Api-Key"
[[upstream]]
name = "w"
url = "http://127.0.0.1:9/mcp"
"#,
    );
    let all = refusals(&c).join("\n");
    assert!(
        all.contains("auth.upstream_key") && all.contains("auth.mode = \"disabled\""),
        "{all}"
    );
}

#[test]
fn a_data_dir_that_is_a_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data");
    std::fs::write(&f, "").unwrap();
    let p = data_dir_not_a_directory(&f).expect("a problem");
    assert!(p.contains("is a regular file, not a directory"), "{p}");
    assert_eq!(data_dir_not_a_directory(dir.path()), None);
    assert_eq!(data_dir_unwritable(dir.path()), None);
    // The probe leaves nothing behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
