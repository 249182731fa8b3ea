//! The internal listener's router: where other replicas forward requests for
//! the sessions this one holds. Its only credential is a forwarding pass
//! sealed under the shared session key and bound to the request
//! (`pass.rs`); anything else is refused, with a log line. The caller the
//! pass names then goes through the same handler, policy and session-subject
//! check as on the public router.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;
use mcpgate_guard::{
    Access, Admission, AuthRejection, BoxFuture, Chain, Challenge, Credential, CredentialKind,
    ExtractOptions, Principal, RequireAuthLayer, Verified, Verifier, VerifyError,
};

use super::Forwarded;
use super::pass::{self, Binding, Used};
use crate::auth::Guard;
use crate::session_key::SessionKeys;
use crate::state::Gateway;

impl Gateway {
    /// The router of the internal listener (`server.internal_listen`): MCP
    /// requests other replicas forward for sessions (upstreams' and virtual
    /// servers') and parked calls this process holds.
    pub fn internal_router(&self) -> Router {
        let keys = self.shared.session_keys.clone();
        let chain = Chain::new(vec![Arc::new(PassVerifier { keys: keys.clone() })]);
        let admission = Arc::new(PassAdmission {
            guard: self.shared.guard.clone(),
            keys,
            used: self.shared.used_passes.clone(),
        });
        let layer = RequireAuthLayer::with_admission(
            chain,
            Access::Required,
            ExtractOptions::default(),
            admission,
        );
        let mut mcp = Router::new().route("/mcp/{name}", any(crate::front::serve));
        // As on the public router: a virtual server's route is its own.
        for name in self.shared.virtuals.keys() {
            mcp = mcp.route(&format!("/mcp/{name}"), any(crate::virtual_server::serve));
        }
        mcp
            // The pass is checked once the upstream is known, as on the public router.
            .route_layer(layer)
            .route_layer(crate::pre_check::PreCheck::new(
                self.clone(),
                crate::gateway::endpoint_of,
            ))
            // Outermost: every request is marked, and every refusal logged.
            .layer(middleware::from_fn(mark_and_log))
            .with_state(self.clone())
    }
}

async fn mark_and_log(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(Forwarded);
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let resp = next.run(req).await;
    if matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) {
        tracing::warn!(%method, %path, status = resp.status().as_u16(), "the internal listener refused a request (not a valid forward from a replica sharing the session key, or for a session or upstream this replica does not serve)");
    }
    resp
}

/// Takes a pass in place of a client credential.
#[derive(Debug)]
struct PassVerifier {
    keys: Arc<SessionKeys>,
}

impl Verifier for PassVerifier {
    fn name(&self) -> &str {
        "forwarding-pass"
    }

    /// Every bearer token is looked at, so that each refusal is this
    /// verifier's, with its reason.
    fn accepts(&self, credential: &Credential) -> bool {
        credential.kind() == CredentialKind::Bearer
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(async move {
            let token = credential.token().unwrap_or_default();
            if !pass::is_pass(token) {
                tracing::warn!("the internal listener takes only forwarding passes");
                return Err(VerifyError::Invalid("not a forwarding pass".into()));
            }
            // Spent in the admission, which sees the request it is bound to.
            let p = pass::open(&self.keys, token, None, None).map_err(|why| {
                tracing::warn!(reason = %why, "refused a forwarding pass");
                VerifyError::Invalid("invalid forwarding pass".into())
            })?;
            // Never cached: a pass is good once.
            Ok(Verified::new(p, std::time::Duration::ZERO))
        })
    }
}

/// The pass's binding to this request and its single use, then the
/// upstream's own subject and group rules (the audience was checked by the
/// replica that took the client's credential).
#[derive(Debug)]
struct PassAdmission {
    guard: Arc<Guard>,
    keys: Arc<SessionKeys>,
    used: Arc<Used>,
}

impl Admission for PassAdmission {
    fn challenge(&self, req: &Parts) -> Challenge {
        Admission::challenge(&*self.guard, req)
    }

    // Not folded into `Guard::admit` (auth.rs), which it resembles only in the
    // trait's signature: this one checks the pass where that one checks the
    // audience, then hands on to it with no credential for the shared rules.
    fn admit(
        &self,
        req: &mut Parts,
        p: &Principal,
        credential: Option<&Credential>,
    ) -> Result<(), AuthRejection> {
        let token = credential.and_then(Credential::token).unwrap_or_default();
        let binding = Binding::of(&req.method, req.uri.path(), &req.headers);
        if let Err(why) = pass::open(&self.keys, token, Some(&binding), Some(&self.used)) {
            tracing::warn!(reason = %why, "refused a forwarding pass");
            return Err(AuthRejection::InvalidToken(
                "invalid forwarding pass".into(),
            ));
        }
        self.guard.admit(req, p, None)
    }
}
