use serde_json::json;

use super::*;

#[test]
fn the_stateless_envelope_stays_with_the_bridge() {
    let mut p = json!({"name": "t", "requestState": "s", "inputResponses": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": 7}});
    strip_envelope(&mut p);
    assert_eq!(p, json!({"name": "t", "_meta": {"progressToken": 7}}));
    let mut bare = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}});
    strip_envelope(&mut bare);
    assert_eq!(bare, json!({}));
}

#[test]
fn results_are_complete_and_lists_uncached() {
    assert_eq!(
        complete(json!({"content": []}), "tools/call"),
        json!({"content": [], "resultType": "complete"})
    );
    assert_eq!(
        complete(json!({"tools": []}), "tools/list"),
        json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
    );
    // What the server set is kept.
    assert_eq!(
        complete(
            json!({"resultType": "complete", "ttlMs": 5}),
            "resources/read"
        )["ttlMs"],
        5
    );
}
