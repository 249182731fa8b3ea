//! A reload's next snapshot: which upstreams it keeps, builds and retires,
//! and what its router serves.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::{AuthSettings, Limits, OriginPolicy, UpstreamConfig};

fn upstreams(spec: &[(&str, &str)]) -> Vec<UpstreamConfig> {
    #[derive(serde::Deserialize)]
    struct F {
        upstream: Vec<UpstreamConfig>,
    }
    let text: String = spec
        .iter()
        .map(|(n, url)| format!("[[upstream]]\nname = \"{n}\"\nurl = \"{url}\"\n\n"))
        .collect();
    toml::from_str::<F>(&text).expect("toml").upstream
}

fn config(spec: &[(&str, &str)]) -> GatewayConfig {
    let public_url: url::Url = "http://127.0.0.1:8080".parse().expect("url");
    GatewayConfig {
        upstreams: upstreams(spec),
        limits: Limits::default(),
        origins: OriginPolicy::new(&public_url, "127.0.0.1:8080".parse().expect("addr"), &[]),
        auth: AuthSettings::disabled(),
        public_url,
        user_sources: Default::default(),
        readiness_checks: Vec::new(),
        session_keys: std::sync::Arc::new(crate::SessionKeys::random()),
        internal_advertise: None,
        virtual_servers: Vec::new(),
        rules: None,
        rate_limits: Vec::new(),
        quotas: None,
    }
}

fn keep(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

const A: &str = "http://127.0.0.1:9/a";
const B: &str = "http://127.0.0.1:9/b";

async fn status(gw: &Gateway, path: &str) -> StatusCode {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Body::from(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .expect("request");
    gw.router().oneshot(req).await.expect("infallible").status()
}

#[test]
fn kept_upstreams_are_the_running_ones_and_the_rest_are_built() {
    let gw = Gateway::new(config(&[("a", A), ("b", B), ("c", A)])).expect("gateway");
    let (next, changes) = gw
        .reconfigured(config(&[("a", A), ("c", B), ("d", B)]), &keep(&["a", "b"]))
        .expect("next");
    assert_eq!(changes.added, vec!["d".to_owned()]);
    assert_eq!(changes.removed, vec!["b".to_owned()]);
    assert_eq!(changes.changed, vec!["c".to_owned()]);
    assert!(!changes.is_empty());
    let (old, new) = (&gw.shared.upstreams, &next.shared.upstreams);
    assert!(Arc::ptr_eq(&old["a"], &new["a"]), "a is kept as it runs");
    assert!(!Arc::ptr_eq(&old["c"], &new["c"]), "c is built anew");
    assert!(
        Arc::ptr_eq(&gw.shared.sessions, &next.shared.sessions),
        "sessions outlive the configuration"
    );
    assert!(Arc::ptr_eq(&gw.shared.stopping, &next.shared.stopping));
    let retired = gw.retire(&next);
    let mut gone: Vec<bool> = retired
        .upstreams
        .iter()
        .map(|u| Arc::ptr_eq(u, &old["b"]) || Arc::ptr_eq(u, &old["c"]))
        .collect();
    gone.dedup();
    assert_eq!(gone, vec![true], "b and c retire, a does not");
    assert_eq!(retired.upstreams.len(), 2);
    assert_eq!(retired.session_count(), 0);
}

#[test]
fn the_same_configuration_changes_nothing() {
    let gw = Gateway::new(config(&[("a", A), ("b", B)])).expect("gateway");
    let (next, changes) = gw
        .reconfigured(config(&[("a", A), ("b", B)]), &keep(&["a", "b"]))
        .expect("next");
    assert!(changes.is_empty(), "{changes:?}");
    assert!(gw.retire(&next).upstreams.is_empty());
}

#[test]
fn a_bad_next_configuration_leaves_the_running_one() {
    let gw = Gateway::new(config(&[("a", A)])).expect("gateway");
    let mut bad = config(&[("a", A), ("x", B)]);
    bad.upstreams[1]
        .tool_scopes
        .insert("[".into(), Default::default());
    let err = gw.reconfigured(bad, &keep(&["a"])).expect_err("a bad glob");
    assert!(err.to_string().contains('x'), "{err}");
    assert_eq!(gw.shared.upstreams.len(), 1);
}

#[tokio::test]
async fn the_next_router_serves_the_next_upstreams() {
    let gw = Gateway::new(config(&[("a", A), ("b", B)])).expect("gateway");
    let (next, _) = gw
        .reconfigured(config(&[("a", A), ("c", B)]), &keep(&["a"]))
        .expect("next");
    assert_eq!(status(&next, "/mcp/b").await, StatusCode::NOT_FOUND);
    assert_ne!(status(&gw, "/mcp/b").await, StatusCode::NOT_FOUND);
    assert_ne!(status(&next, "/mcp/c").await, StatusCode::NOT_FOUND);
}
