use std::time::Duration;

use super::*;

#[test]
fn families_have_the_issue_names() {
    let m = Metrics::new();
    m.record(true);
    m.http_request("/mcp/{name}", 200);
    m.mcp_request(
        "demo",
        "tools/call",
        McpOutcome::Ok,
        Duration::from_millis(3),
    );
    m.gateway_overhead("demo", "tools/call", Duration::from_micros(300));
    m.auth_decision("api_key", true, "ok");
    m.token_issued("authorization_code");
    m.oauth_failure("/token", "invalid_grant");
    m.sessions_active("demo", 2);
    m.upstream_children("demo", 1);
    m.upstream_up("demo", true);
    m.credential_renewal("demo", "oauth_refresh", false);
    m.config_reload(true);
    let text = m.encode();
    for line in [
        "mcpgate_http_requests_total{route=\"/mcp/{name}\",status=\"200\"} 1",
        "mcpgate_mcp_requests_total{upstream=\"demo\",method=\"tools/call\",outcome=\"ok\"} 1",
        "mcpgate_mcp_request_duration_seconds_count{upstream=\"demo\",method=\"tools/call\"} 1",
        "mcpgate_gateway_overhead_seconds_count{upstream=\"demo\",method=\"tools/call\"} 1",
        "mcpgate_auth_decisions_total{verifier=\"api_key\",outcome=\"allowed\",reason=\"ok\"} 1",
        "mcpgate_oauth_tokens_issued_total{grant_type=\"authorization_code\"} 1",
        "mcpgate_oauth_failures_total{endpoint=\"/token\",error=\"invalid_grant\"} 1",
        "mcpgate_sessions_active{upstream=\"demo\"} 2",
        "mcpgate_upstream_children{upstream=\"demo\"} 1",
        "mcpgate_upstream_up{upstream=\"demo\"} 1",
        "mcpgate_credential_renewals_total{upstream=\"demo\",kind=\"oauth_refresh\",outcome=\"failed\"} 1",
        "mcpgate_config_reloads_total{outcome=\"ok\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[test]
fn unknown_methods_and_grants_share_one_series() {
    let m = Metrics::new();
    m.record(true);
    for i in 0..50 {
        m.mcp_request(
            "demo",
            &format!("x/{i}"),
            McpOutcome::Refused,
            Duration::ZERO,
        );
        m.token_issued(&format!("urn:grant:{i}"));
    }
    let text = m.encode();
    assert!(
        text.contains("method=\"other\",outcome=\"refused\"} 50"),
        "{text}"
    );
    assert!(text.contains("grant_type=\"other\"} 50"), "{text}");
    assert!(!text.contains("x/1"));
}

#[test]
fn outcome_follows_the_status() {
    assert_eq!(McpOutcome::from_status(200), McpOutcome::Ok);
    assert_eq!(McpOutcome::from_status(202), McpOutcome::Ok);
    assert_eq!(McpOutcome::from_status(403), McpOutcome::Refused);
    assert_eq!(McpOutcome::from_status(504), McpOutcome::Failed);
}

#[test]
fn nothing_is_recorded_until_switched_on_and_gauges_follow_opens_and_closes() {
    let m = Metrics::new();
    m.http_request("/mcp/{name}", 200);
    m.session_opened("off");
    m.mcp_request("off", "ping", McpOutcome::Ok, Duration::from_millis(1));
    assert!(!m.encode().contains("upstream=\"off\""), "{}", m.encode());
    assert!(!m.encode().contains("status=\"200\""), "{}", m.encode());
    m.record(true);
    m.session_opened("demo");
    m.session_opened("demo");
    m.session_closed("demo");
    m.child_started("demo");
    m.child_started("demo");
    m.child_exited("demo");
    m.child_exited("demo");
    let text = m.encode();
    assert!(
        text.contains("mcpgate_sessions_active{upstream=\"demo\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_upstream_children{upstream=\"demo\"} 0"),
        "{text}"
    );
}

#[test]
fn repeated_requests_count_into_the_same_series() {
    let m = Metrics::new();
    m.record(true);
    for _ in 0..3 {
        m.http_request("/mcp/{name}", 200);
        m.mcp_request("a", "tools/call", McpOutcome::Ok, Duration::from_millis(2));
        m.gateway_overhead("a", "tools/call", Duration::from_micros(100));
        m.auth_decision("api_key", true, "ok");
    }
    m.http_request("/mcp/{name}", 404);
    m.mcp_request("b", "tools/call", McpOutcome::Failed, Duration::ZERO);
    m.auth_decision("api_key", false, "invalid_token");
    let text = m.encode();
    for line in [
        "mcpgate_http_requests_total{route=\"/mcp/{name}\",status=\"200\"} 3",
        "mcpgate_http_requests_total{route=\"/mcp/{name}\",status=\"404\"} 1",
        "mcpgate_mcp_requests_total{upstream=\"a\",method=\"tools/call\",outcome=\"ok\"} 3",
        "mcpgate_mcp_requests_total{upstream=\"b\",method=\"tools/call\",outcome=\"failed\"} 1",
        "mcpgate_mcp_request_duration_seconds_count{upstream=\"a\",method=\"tools/call\"} 3",
        "mcpgate_gateway_overhead_seconds_count{upstream=\"a\",method=\"tools/call\"} 3",
        "mcpgate_auth_decisions_total{verifier=\"api_key\",outcome=\"allowed\",reason=\"ok\"} 3",
        "mcpgate_auth_decisions_total{verifier=\"api_key\",outcome=\"refused\",reason=\"invalid_token\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("upstream=\"b\",method=\"tools/call\",outcome=\"ok\""),
        "{text}"
    );
}
