//! The caller of one MCP request, as authentication left it.

use mcpgate_guard::Principal;

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
    pub(crate) fn principal(&self) -> &Principal {
        self.authed.principal()
    }

    /// A session opened by someone else does not exist for this caller.
    pub(crate) fn owns(&self, session: &Session) -> bool {
        session.subject == *self.principal().subject()
    }
}
