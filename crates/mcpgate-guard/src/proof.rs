//! Proofs that a step of the request path ran: [`Authenticated`] (the layer
//! checked the credential) and [`Authorized`] (policy allowed this operation).
//!
//! Both have private fields and are made only inside this crate, by
//! [`RequireAuth`](crate::RequireAuth) and [`Policy::authorize`](crate::Policy::authorize).
//! A handler that takes [`Authenticated`] as an extractor cannot be reached
//! unless the layer let the request through; an upstream call that takes
//! [`Authorized`] cannot be made before policy said yes.
//!
//! What the compiler holds to, checked by the examples below. A handler reads
//! the proof it was given:
//!
//! ```
//! use mcpgate_guard::{Authenticated, Authorized};
//!
//! fn handler(caller: Authenticated) -> String {
//!     caller.principal().subject().to_string()
//! }
//! fn upstream_call(proof: &Authorized) -> String {
//!     proof.caller().principal().subject().to_string()
//! }
//! ```
//!
//! but nothing outside this crate can make one, not from its fields:
//!
//! ```compile_fail,E0451
//! use std::sync::Arc;
//! use mcpgate_guard::{Authenticated, Principal};
//!
//! let forged = Authenticated { principal: Arc::new(Principal::anonymous()) };
//! ```
//!
//! nor with the constructors the layer and policy use:
//!
//! ```compile_fail,E0624
//! use mcpgate_guard::{Authenticated, Principal};
//!
//! let forged = Authenticated::new(Principal::anonymous());
//! ```
//!
//! ```compile_fail,E0624
//! # fn given(caller: mcpgate_guard::Authenticated) {
//! let skipped_policy = mcpgate_guard::Authorized::new(caller);
//! # }
//! ```
//!
//! and a call that requires [`Authorized`] cannot be made with only the
//! caller's [`Authenticated`] (an upstream send without policy's yes):
//!
//! ```compile_fail,E0308
//! use mcpgate_guard::{Authenticated, Authorized};
//!
//! fn upstream_call(_proof: &Authorized) {}
//! fn handler(caller: Authenticated) {
//!     upstream_call(&caller);
//! }
//! ```

use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::principal::Principal;

/// A request [`RequireAuth`](crate::RequireAuth) let through, and who sent it.
///
/// Take it as an axum extractor: a route without the layer in front answers
/// 500 (a wiring bug, logged) instead of serving an unauthenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    principal: Arc<Principal>,
}

impl Authenticated {
    /// Only the layer calls this, after the credential checked out.
    pub(crate) fn new(principal: Principal) -> Self {
        Self::shared(Arc::new(principal))
    }

    /// The same, for a principal the verified-credential cache shares.
    pub(crate) fn shared(principal: Arc<Principal>) -> Self {
        Authenticated { principal }
    }

    /// Who is calling.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// The refusal of the [`Authenticated`] extractor: the route is not behind
/// [`RequireAuth`](crate::RequireAuth). That is the server's bug, not the
/// client's, so it is a 500 (and an error in the log naming the path).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("this route is not behind the authentication layer")]
pub struct NotBehindAuthLayer;

impl IntoResponse for NotBehindAuthLayer {
    fn into_response(self) -> Response {
        let body = r#"{"error":"server_error","error_description":"authentication is not configured for this route"}"#;
        let mut r = (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = NotBehindAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authenticated>() {
            Some(a) => Ok(a.clone()),
            None => {
                tracing::error!(
                    path = parts.uri.path(),
                    "a handler asked for the caller but the authentication layer is not in front of it"
                );
                Err(NotBehindAuthLayer)
            }
        }
    }
}

/// Policy allowed this caller this operation (a tool, prompt, resource, or
/// anything else on the upstream); made by [`Policy::authorize`](crate::Policy::authorize).
#[derive(Debug, Clone)]
pub struct Authorized {
    caller: Authenticated,
}

impl Authorized {
    pub(crate) fn new(caller: Authenticated) -> Self {
        Authorized { caller }
    }

    /// The caller that was allowed.
    pub fn caller(&self) -> &Authenticated {
        &self.caller
    }
}
