//! The router being served, swappable while serving. A reload builds the
//! next router beside the running one and stores it here; the listener loads
//! the current one once per request (one atomic load and a reference count),
//! so a request is served by one configuration from start to end and the
//! request path pays nothing more for reloads.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;

/// The current application router; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct LiveApp(Arc<ArcSwap<Router>>);

impl LiveApp {
    /// Serves `app` until the next [`LiveApp::store`].
    pub(crate) fn new(app: Router) -> Self {
        LiveApp(Arc::new(ArcSwap::from_pointee(app)))
    }

    /// The router the next request goes to.
    pub(crate) fn load(&self) -> Router {
        Router::clone(&self.0.load())
    }

    /// Serves `app` from the next request on; requests in flight finish on
    /// the router they started on.
    pub(crate) fn store(&self, app: Router) {
        self.0.store(Arc::new(app));
    }
}
