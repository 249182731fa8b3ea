//! Rewrites of a final response on its way to the client (era bridging, list
//! filtering): built by the guard and the fronts, applied by the relays.

use std::sync::{Arc, LazyLock};

use crate::jsonrpc::Message;

/// Rewrites a final response (era bridging, list filtering).
pub(crate) type Rewrite = Arc<dyn Fn(&mut Message) + Send + Sync>;

/// Leaves a response untouched.
pub(crate) fn keep() -> Rewrite {
    // Shared, so the common case allocates nothing per request.
    static KEEP: LazyLock<Rewrite> = LazyLock::new(|| Arc::new(|_| {}));
    KEEP.clone()
}
