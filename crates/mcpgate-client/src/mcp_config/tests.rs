use super::*;

fn cfg(v: serde_json::Value) -> McpConfig {
    serde_json::from_value(v).unwrap()
}

#[test]
fn resolves_names_urls_and_unlisted_urls() {
    let c = cfg(serde_json::json!({"mcpServers": {
        "notes": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-A": "1"},
                  "auth": {"client_id": "cli", "token_url": "http://127.0.0.1:9/token"}},
        "local": {"command": "npx", "args": ["x"]}
    }, "servers": {"vs": {"url": "http://127.0.0.1:8/mcp", "type": "http"}}}));
    let r = c.resolve("notes").unwrap();
    assert_eq!(r.url.as_str(), "http://127.0.0.1:9/mcp");
    assert_eq!(r.headers, vec![("X-A".to_string(), "1".to_string())]);
    assert_eq!(r.auth.unwrap().client_id.as_deref(), Some("cli"));
    assert!(c.resolve("http://127.0.0.1:9/mcp/").unwrap().auth.is_some());
    assert_eq!(c.resolve("vs").unwrap().url.port(), Some(8));
    let e = c.resolve("local").unwrap_err().to_string();
    assert!(e.contains("stdio"), "{e}");
    assert!(c.resolve("http://127.0.0.1:7/mcp").unwrap().auth.is_none());
    assert!(c.resolve("nope").is_err());
    assert!(c.resolve("ftp://x/").is_err());
}

#[test]
fn unknown_auth_keys_are_refused() {
    let r: Result<McpConfig, _> = serde_json::from_value(serde_json::json!({"mcpServers": {
        "a": {"url": "http://x/", "auth": {"clientid": "typo"}}}}));
    assert!(r.is_err());
}
