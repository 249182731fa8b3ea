use serde_json::json;

use super::*;

#[test]
fn results_lose_what_a_handshake_app_does_not_know() {
    assert_eq!(
        handshake_result(json!({"tools": [], "resultType": "complete", "ttlMs": 0,
            "cacheScope": "private", "nextCursor": "c"})),
        json!({"tools": [], "nextCursor": "c"})
    );
}
