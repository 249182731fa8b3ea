//! Rewrites of a final response on its way to the client (era bridging, list
//! filtering): built by the guard and the fronts, applied by the relays.

use std::sync::{Arc, LazyLock};

use crate::jsonrpc::Message;

/// Rewrites a final response (era bridging, list filtering).
pub(crate) type Rewrite = Arc<dyn Fn(&mut Message) + Send + Sync>;

/// A result's JSON, for a rewrite that learns from it (the tools an upstream
/// lists): `None` for an error or a result that does not parse.
pub(crate) fn result_value(m: &Message) -> Option<serde_json::Value> {
    serde_json::from_str(m.result.as_deref()?.get()).ok()
}

/// Leaves a response untouched.
pub(crate) fn keep() -> Rewrite {
    // Shared, so the common case allocates nothing per request.
    static KEEP: LazyLock<Rewrite> = LazyLock::new(|| Arc::new(|_| {}));
    KEEP.clone()
}
