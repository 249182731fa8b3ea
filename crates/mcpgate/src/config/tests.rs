use super::*;

fn load_str(text: &str) -> Result<Config, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mcpgate.toml");
    std::fs::write(&p, text).unwrap();
    load(Some(&p))
}

#[test]
fn reports_every_problem_with_key_and_allowed_values() {
    let errs = load_str(
        r#"
[server]
lisen = "127.0.0.1:1"
max_body_bytes = "big"
[auth]
mode = "disabled"
[[upstream]]
name = "a b"
url = "ftp://x"
colour = 1
"#,
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("server.lisen") || all.contains("unknown field `lisen`"),
        "{all}"
    );
    assert!(all.contains("expected one of"), "{all}");
    assert!(all.contains("max_body_bytes"), "{all}");
    assert!(all.contains("colour"), "{all}");
    assert!(errs.len() >= 3, "{all}");
}

#[test]
fn semantic_checks_name_the_upstream() {
    let errs = load_str(
        r#"
[auth]
mode = "disabled"
[[upstream]]
name = "x"
command = ["a"]
url = "http://b"
[[upstream]]
name = "x"
"#,
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(all.contains("upstream[0]: set either command"), "{all}");
    assert!(
        all.contains("upstream[1].name: \"x\" is used by another upstream"),
        "{all}"
    );
    assert!(all.contains("upstream[1]: set command"), "{all}");
}

#[test]
fn an_upstreams_ca_file_is_checked_when_the_configuration_loads() {
    let errs = load_str(
        r#"
[auth]
mode = "disabled"
[[upstream]]
name = "plain"
url = "http://127.0.0.1:9/mcp"
ca_file = "/etc/ssl/ca.pem"
[[upstream]]
name = "child"
command = ["a"]
ca_file = "/etc/ssl/ca.pem"
[[upstream]]
name = "gone"
url = "https://127.0.0.1:9/mcp"
ca_file = "/nonexistent/mcpgate-ca.pem"
"#,
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("upstream[0].ca_file: applies to https upstreams only, but url is \"http://127.0.0.1:9/mcp\""),
        "{all}"
    );
    assert!(
        all.contains(
            "upstream[1].ca_file: applies to https upstreams only (this one runs a command)"
        ),
        "{all}"
    );
    assert!(
        all.contains("upstream[2].ca_file: cannot read /nonexistent/mcpgate-ca.pem:"),
        "{all}"
    );
}

#[test]
fn disabled_auth_refuses_public_bind() {
    let c = load_str("[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nmode = \"disabled\"\n").unwrap();
    let errs = auth_problems(&c);
    assert!(errs.join("\n").contains("loopback"), "{errs:?}");
    let local = load_str("[auth]\nmode = \"disabled\"\n").unwrap();
    assert!(auth_problems(&local).is_empty());
}

#[test]
fn env_overrides_apply() {
    let mut t = toml::Table::new();
    let mut problems = vec![];
    apply_env(
        &mut t,
        vec![
            (
                "MCPGATE_SERVER__LISTEN".to_owned(),
                "127.0.0.1:9999".to_owned(),
            ),
            (
                "MCPGATE_SERVER__MAX_BODY_BYTES".to_owned(),
                "1024".to_owned(),
            ),
            ("MCPGATE_HOME".to_owned(), "/x".to_owned()),
        ]
        .into_iter(),
        &mut problems,
    );
    let c = deserialize_all(t, &Source("t".into(), Vec::new()), &mut problems).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(c.server.listen.port(), 9999);
    assert_eq!(c.server.max_body_bytes, Some(1024));
}

#[test]
fn env_override_errors_name_the_variable_not_the_file() {
    let mut t: toml::Table = toml::from_str("[server]\nrequest_timeout = \"30s\"\n").unwrap();
    let mut problems = vec![];
    let set = apply_env(
        &mut t,
        vec![
            ("MCPGATE_SERVER__LISTEN".to_owned(), "nonsense".to_owned()),
            ("MCPGATE_SERVER__MAX_BODY_BYTES".to_owned(), "0".to_owned()),
        ]
        .into_iter(),
        &mut problems,
    );
    let source = Source("/etc/mcpgate.toml".into(), set);
    let c = deserialize_all(t, &source, &mut problems);
    let all = problems.join("\n");
    assert!(
        all.contains("environment MCPGATE_SERVER__LISTEN (sets server.listen)"),
        "{all}"
    );
    assert!(!all.contains("/etc/mcpgate.toml"), "{all}");
    // A value that deserializes but fails validation names it too.
    let mut t: toml::Table = toml::Table::new();
    let mut problems = vec![];
    let set = apply_env(
        &mut t,
        vec![("MCPGATE_SERVER__MAX_BODY_BYTES".to_owned(), "0".to_owned())].into_iter(),
        &mut problems,
    );
    let source = Source("/etc/mcpgate.toml".into(), set);
    let c2 = deserialize_all(t, &source, &mut problems).unwrap();
    validate(&c2, &source, &mut problems);
    assert_eq!(
        problems,
        vec!["environment MCPGATE_SERVER__MAX_BODY_BYTES (sets server.max_body_bytes): server.max_body_bytes: must be greater than 0".to_owned()]
    );
    drop(c);
}

#[test]
fn good_config_loads() {
    let c = load_str(
        r#"
[server]
listen = "127.0.0.1:0"
request_timeout = "30s"
[auth]
mode = "disabled"
[[upstream]]
name = "everything"
command = ["npx", "-y", "@modelcontextprotocol/server-everything"]
isolation = "shared"
"#,
    )
    .unwrap();
    assert_eq!(c.upstreams[0].isolation, Isolation::Shared);
    assert_eq!(c.server.request_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn connection_limits_load_default_and_refuse_zero() {
    let upstream = "[auth]\nmode = \"disabled\"\n[[upstream]]\nname = \"a\"\ncommand = [\"x\"]\n";
    let c = load_str(&format!(
        "[server]\nheader_read_timeout = \"3s\"\nidle_timeout = \"5m\"\nmax_connections = 50\n{upstream}"
    ))
    .unwrap();
    let l = c.server.conn_limits(Some(1024));
    assert_eq!(l.header_read_timeout, Duration::from_secs(3));
    assert_eq!(l.idle_timeout, Duration::from_secs(300));
    assert_eq!(l.max_connections, 50);
    let d = load_str(upstream).unwrap().server.conn_limits(Some(1024));
    assert_eq!(d.header_read_timeout, Duration::from_secs(10));
    assert_eq!(d.idle_timeout, Duration::from_secs(120));
    assert_eq!(d.max_connections, 512);
    let errs = load_str(&format!(
        "[server]\nheader_read_timeout = \"0s\"\nmax_connections = 0\n{upstream}"
    ))
    .unwrap_err()
    .join("\n");
    assert!(
        errs.contains("server.header_read_timeout: must be longer than 0s"),
        "{errs}"
    );
    assert!(
        errs.contains("server.max_connections: must be at least 1"),
        "{errs}"
    );
}

#[test]
fn per_subject_caps_load_and_default() {
    let c = load_str(
        r#"
[server]
max_sessions_per_subject = 5
max_children_per_subject = 0
[auth]
mode = "disabled"
[[upstream]]
name = "x"
command = ["x"]
"#,
    )
    .unwrap();
    let limits = c.server.limits();
    assert_eq!(limits.max_sessions_per_subject, 5);
    assert_eq!(limits.max_children_per_subject, 0, "0 turns the cap off");
    let defaults = ServerConfig::default().limits();
    assert_eq!(defaults.max_sessions_per_subject, 32);
    assert_eq!(defaults.max_children_per_subject, 8);
}

#[test]
fn the_internal_listener_is_loopback_by_default_and_needs_an_advertised_address_on_every_interface()
{
    let d = ServerConfig::default();
    assert_eq!(
        d.internal_listen(),
        Ok(InternalListen::At(SocketAddr::from(([127, 0, 0, 1], 0))))
    );
    let off = ServerConfig {
        internal_listen: "off".into(),
        ..ServerConfig::default()
    };
    assert_eq!(off.internal_listen(), Ok(InternalListen::Off));
    let every = ServerConfig {
        internal_listen: "0.0.0.0:7070".into(),
        ..ServerConfig::default()
    };
    let why = every.internal_listen().unwrap_err();
    assert!(why.contains("server.internal_advertise"), "{why}");
    let advertised = ServerConfig {
        internal_advertise: Some("10.1.2.3:7070".into()),
        ..every.clone()
    };
    assert!(advertised.internal_listen().is_ok());
    let url = ServerConfig {
        internal_advertise: Some("http://10.1.2.3:7070/".into()),
        ..every
    };
    assert!(url.internal_listen().is_err());
    let junk = ServerConfig {
        internal_listen: "somewhere".into(),
        ..ServerConfig::default()
    };
    assert!(junk.internal_listen().unwrap_err().contains("\"off\""));
}
