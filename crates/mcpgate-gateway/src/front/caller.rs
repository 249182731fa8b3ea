//! The caller of one MCP request, as authentication left it.

use axum::extract::Request;
use mcpgate_guard::{Authenticated, Principal};

use crate::auth::Admitted;
use crate::session::Session;

/// The authenticated caller (with the endpoint path it used, for challenges).
pub(crate) struct AuthenticatedCaller {
    pub(crate) authed: Admitted,
    /// Whether another replica forwarded the request (over the internal
    /// listener, with a pass): it is not forwarded again.
    pub(crate) forwarded: bool,
}

impl AuthenticatedCaller {
    /// The caller of `req`, which authentication let in; whether another
    /// replica forwarded it is read from the request's extensions.
    pub(crate) fn of(authenticated: Authenticated, req: &mut Request) -> Self {
        let forwarded = req
            .extensions()
            .get::<crate::forward::Forwarded>()
            .is_some();
        AuthenticatedCaller {
            authed: Admitted::new(authenticated, req),
            forwarded,
        }
    }

    pub(crate) fn principal(&self) -> &Principal {
        self.authed.principal()
    }

    /// A session opened by someone else does not exist for this caller.
    pub(crate) fn owns(&self, session: &Session) -> bool {
        session.subject == *self.principal().subject()
    }
}
