use clap::Parser;

use super::*;

#[derive(Parser)]
struct Bridge {
    #[command(flatten)]
    args: BridgeArgs,
}

#[derive(Parser)]
struct Config {
    #[command(flatten)]
    args: ConfigArgs,
}

fn config(argv: &[&str]) -> (serde_json::Value, Vec<String>) {
    let args = Config::try_parse_from(std::iter::once("config").chain(argv.iter().copied()))
        .unwrap()
        .args;
    let (json, notes) = snippet(&args).unwrap();
    (serde_json::from_str(&json).unwrap(), notes)
}

#[test]
fn urls_must_be_http_without_userinfo() {
    assert!(remote_url("http://127.0.0.1:1/mcp").is_ok());
    assert!(remote_url("ftp://x/").is_err());
    assert!(remote_url("http://u:p@127.0.0.1/mcp").is_err());
    assert!(remote_url("not a url").is_err());
}

#[test]
fn authorization_header_becomes_the_credential() {
    let args = Bridge::try_parse_from([
        "bridge",
        "http://127.0.0.1:1/mcp",
        "--header",
        "Authorization: Bearer abc",
        "--header",
        "X-Extra: 1",
    ])
    .unwrap()
    .args;
    let o = options(&args).unwrap();
    assert!(o.headers.get(AUTHORIZATION).is_none());
    assert_eq!(o.headers.get("x-extra").unwrap(), "1");
}

#[test]
fn vscode_snippet_shape() {
    let (v, notes) = config(&[
        "vscode",
        "http://127.0.0.1:8080/mcp",
        "--name",
        "demo",
        "--transport",
        "sse",
    ]);
    let s = &v["servers"]["demo"];
    assert_eq!(s["type"], "stdio");
    assert!(Path::new(s["command"].as_str().unwrap()).is_absolute());
    assert_eq!(
        s["args"],
        serde_json::json!(["bridge", "http://127.0.0.1:8080/mcp", "--transport", "sse"])
    );
    assert!(notes.iter().any(|n| n.contains(".vscode/mcp.json")));
}

#[test]
fn login_flags_pass_through_without_the_secret() {
    let (v, notes) = config(&[
        "claude",
        "http://127.0.0.1:8080/mcp",
        "--client-id",
        "abc",
        "--client-secret",
        "s3cret",
        "--scope",
        "notes:read",
    ]);
    let s = &v["mcpServers"]["127.0.0.1"];
    assert_eq!(
        s["args"],
        serde_json::json!([
            "bridge",
            "http://127.0.0.1:8080/mcp",
            "--client-id",
            "abc",
            "--scope",
            "notes:read"
        ])
    );
    assert!(!v.to_string().contains("s3cret"));
    assert!(notes.iter().any(|n| n.contains("MCPGATE_CLIENT_SECRET")));
}

#[test]
fn assertion_flags_pass_through_with_absolute_paths_and_no_idp_secret() {
    let (v, notes) = config(&[
        "claude",
        "http://127.0.0.1:8080/mcp",
        "--client-id",
        "agent",
        "--id-jag",
        "--idp-token-endpoint",
        "https://idp.example/token",
        "--idp-client-id",
        "idp-app",
        "--idp-client-secret",
        "idp-s3cret",
        "--id-token-file",
        "id.jwt",
    ]);
    let args = v["mcpServers"]["127.0.0.1"]["args"].as_array().unwrap();
    let args: Vec<&str> = args.iter().map(|a| a.as_str().unwrap()).collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert!(args.contains(&"--id-jag"));
    assert_eq!(after("--idp-token-endpoint"), "https://idp.example/token");
    assert_eq!(after("--idp-client-id"), "idp-app");
    assert!(Path::new(after("--id-token-file")).is_absolute());
    assert!(!v.to_string().contains("idp-s3cret"));
    assert!(
        notes
            .iter()
            .any(|n| n.contains("MCPGATE_IDP_CLIENT_SECRET"))
    );
}
