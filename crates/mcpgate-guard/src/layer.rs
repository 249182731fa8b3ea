//! The guard as a tower layer: [`require_auth`] in front of an MCP endpoint
//! authenticates every request, hands the caller on as an [`Authenticated`]
//! proof in the request's extensions, answers refusals with their
//! `WWW-Authenticate` challenge, and serves the RFC 9728 protected-resource
//! metadata. A server with several protected resources behind one layer (the
//! gateway: one per upstream) says per request what differs through an
//! [`Admission`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use mcpgate_types::{Issuer, ResourceUri};
use pin_project_lite::pin_project;

use crate::chain::Chain;
use crate::challenge::Challenge;
use crate::credential::{Credential, ExtractOptions, extract};
use crate::dpop::{DpopCheck, DpopMode, SeenProofs};
use crate::metadata::ProtectedResource;
use crate::principal::{Principal, danger};
use crate::proof::Authenticated;
use crate::rejection::AuthRejection;
use crate::verifier::BoxFuture;

/// What [`require_auth`] protects and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GuardSettings {
    /// The protected endpoint's public URL (`https://mcp.example.com/mcp`): the
    /// `resource` of the metadata, and where the metadata paths derive from.
    pub resource: url::Url,
    /// The issuers of tokens for this resource. With none (API keys or static
    /// tokens only) no metadata is served and challenges carry no
    /// `resource_metadata`.
    pub authorization_servers: Vec<Issuer>,
    /// Scopes a client should ask for when it signs in: named in 401
    /// challenges and listed as `scopes_supported`.
    pub default_scopes: Vec<String>,
    /// Scopes every request needs. A caller without them gets 403
    /// `insufficient_scope` (an anonymous caller, 401 to sign in).
    pub required_scopes: Vec<String>,
    /// Where credentials are read from (the API-key header's name).
    pub extract: ExtractOptions,
    /// Lets requests without a credential through as [`Principal::anonymous`]
    /// (no scopes). A credential that is present must still be valid.
    pub allow_anonymous: bool,
    /// Whether DPoP-bound tokens are taken (RFC 9449); a bound token sent as
    /// Bearer is refused in every mode.
    pub dpop: DpopMode,
}

impl GuardSettings {
    /// Every request to `resource` needs a valid credential; no authorization
    /// server, no scopes, the default API-key header.
    pub fn new(resource: url::Url) -> Self {
        GuardSettings {
            resource,
            authorization_servers: Vec::new(),
            default_scopes: Vec::new(),
            required_scopes: Vec::new(),
            extract: ExtractOptions::default(),
            allow_anonymous: false,
            dpop: DpopMode::default(),
        }
    }

    /// Sets whether DPoP-bound tokens are taken.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.dpop = mode;
        self
    }

    /// Names the token issuers (turns the metadata on).
    pub fn authorization_servers(mut self, issuers: impl IntoIterator<Item = Issuer>) -> Self {
        self.authorization_servers = issuers.into_iter().collect();
        self
    }

    /// Sets the scopes clients are told to ask for.
    pub fn default_scopes(mut self, scopes: impl IntoIterator<Item = String>) -> Self {
        self.default_scopes = scopes.into_iter().collect();
        self
    }

    /// Sets the scopes every request needs.
    pub fn required_scopes(mut self, scopes: impl IntoIterator<Item = String>) -> Self {
        self.required_scopes = scopes.into_iter().collect();
        self
    }

    /// Sets where credentials are read from.
    pub fn extract(mut self, extract: ExtractOptions) -> Self {
        self.extract = extract;
        self
    }

    /// Lets requests without a credential through as anonymous.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }
}

/// Who may pass the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Access {
    /// Every request needs a valid credential.
    #[default]
    Required,
    /// A request without a credential passes as [`Principal::anonymous`] (no
    /// scopes); a credential that is present must still be valid.
    Optional,
    /// Nobody is checked: every request passes as
    /// [`danger::superuser_for_disabled_auth`]. Development on loopback only.
    Disabled,
}

/// What a server decides per request around the verifier chain: which
/// protected resource the request is for (its challenge), and the checks only
/// it can make once the caller is known (audience binding, subject rules).
pub trait Admission: std::fmt::Debug + Send + Sync + 'static {
    /// The challenge a refusal of this request carries.
    fn challenge(&self, request: &Parts) -> Challenge;

    /// Checks a caller the chain (or anonymous access) let through, for this
    /// request's resource. What it learns for later steps it may leave in
    /// `request.extensions`.
    fn admit(
        &self,
        request: &mut Parts,
        principal: &Principal,
        credential: Option<&Credential>,
    ) -> Result<(), AuthRejection>;

    /// A refusal of the chain, reworded for this request's resource (by
    /// default as it is).
    fn explain(&self, request: &Parts, rejection: AuthRejection) -> AuthRejection {
        let _ = request;
        rejection
    }

    /// What this request's DPoP proof is checked against; `None` (the
    /// default) skips DPoP altogether, for an admission whose callers were
    /// checked elsewhere (a request forwarded by another replica).
    fn dpop(&self, request: &Parts) -> Option<DpopCheck> {
        let _ = request;
        None
    }
}

/// One resource with one set of required scopes: [`require_auth`]'s admission.
#[derive(Debug)]
struct OneResource {
    challenge: Challenge,
    required_scopes: Vec<String>,
    /// The resource's origin, to which the request's path is added for `htu`.
    origin: url::Url,
}

impl Admission for OneResource {
    fn challenge(&self, _: &Parts) -> Challenge {
        self.challenge.clone()
    }

    fn dpop(&self, request: &Parts) -> Option<DpopCheck> {
        let mut url = self.origin.clone();
        url.set_path(request.uri.path());
        Some(DpopCheck {
            mode: self.challenge.dpop,
            url: url.into(),
            nonces: None,
            replay: None,
        })
    }

    fn admit(
        &self,
        _: &mut Parts,
        principal: &Principal,
        _: Option<&Credential>,
    ) -> Result<(), AuthRejection> {
        if principal.missing(&self.required_scopes).is_empty() {
            Ok(())
        } else if principal.is_anonymous() {
            Err(AuthRejection::Missing)
        } else {
            Err(AuthRejection::InsufficientScope(
                self.required_scopes.clone(),
            ))
        }
    }
}

/// The layer that puts [`RequireAuth`] in front of a service: every request
/// but `OPTIONS` (answered by a CORS layer outside, or the service) and the
/// metadata paths must carry a credential the `chain` accepts.
///
/// Apply it to the whole router, not one route, so that it sees the
/// well-known paths it serves.
pub fn require_auth(chain: Chain, settings: GuardSettings) -> RequireAuthLayer {
    let mut scopes = settings.default_scopes.clone();
    scopes.extend(settings.required_scopes.iter().cloned());
    dedup(&mut scopes);
    let has_metadata = !settings.authorization_servers.is_empty();
    // GuardSettings takes any URL; one that is not a resource indicator (not
    // http(s), or with a fragment) cannot be named in the document, and a
    // client could not ask for tokens for it: no document, and the reason logged.
    let resource = has_metadata
        .then(|| ResourceUri::from_url(&settings.resource))
        .and_then(|r| {
            r.inspect_err(|e| {
                tracing::error!("no protected-resource metadata is served: {e}");
            })
            .ok()
        });
    let metadata = resource.map(|resource| {
        let doc = ProtectedResource::new(resource, settings.authorization_servers, scopes.clone())
            .with_dpop(settings.dpop);
        let (path, root) = ProtectedResource::well_known_paths(&settings.resource);
        Metadata {
            path,
            root,
            json: serde_json::to_vec(&doc).unwrap_or_default().into(),
        }
    });
    let admission = OneResource {
        challenge: Challenge {
            resource_metadata: has_metadata
                .then(|| ProtectedResource::metadata_url(&settings.resource)),
            default_scopes: scopes,
            dpop: settings.dpop,
        },
        required_scopes: settings.required_scopes,
        origin: settings.resource.clone(),
    };
    let access = if settings.allow_anonymous {
        Access::Optional
    } else {
        Access::Required
    };
    let mut layer =
        RequireAuthLayer::with_admission(chain, access, settings.extract, Arc::new(admission));
    if let Some(shared) = Arc::get_mut(&mut layer.shared) {
        shared.metadata = metadata;
    }
    layer
}

/// Applies [`RequireAuth`]; made by [`require_auth`] or
/// [`RequireAuthLayer::with_admission`].
#[derive(Debug, Clone)]
pub struct RequireAuthLayer {
    shared: Arc<Shared>,
}

impl RequireAuthLayer {
    /// A layer whose challenge and checks after the chain depend on the
    /// request (several protected resources behind one layer). It serves no
    /// metadata: each resource's is the server's to route.
    pub fn with_admission(
        chain: Chain,
        access: Access,
        extract: ExtractOptions,
        admission: Arc<dyn Admission>,
    ) -> Self {
        RequireAuthLayer {
            shared: Arc::new(Shared {
                chain,
                access,
                extract,
                admission,
                metadata: None,
                seen_proofs: SeenProofs::new(),
                everyone: Authenticated::new(danger::superuser_for_disabled_auth()),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> RequireAuth<S> {
        RequireAuth {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A service whose requests are authenticated first; see [`require_auth`].
#[derive(Debug, Clone)]
pub struct RequireAuth<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The caller [`RequireAuth`] let through, from the request's parts. In an
/// rmcp tool, take `Extension<http::request::Parts>` (or read
/// `context.extensions.get::<http::request::Parts>()`) and ask this.
pub fn principal(parts: &http::request::Parts) -> Option<&Principal> {
    parts
        .extensions
        .get::<Authenticated>()
        .map(Authenticated::principal)
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RequireAuth<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if let Some(resp) = self
            .shared
            .metadata_response(req.method(), req.uri().path())
        {
            return Box::pin(std::future::ready(Ok(resp)));
        }
        // The instance that was polled ready serves this request; a fresh
        // clone stays behind for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.method() == Method::OPTIONS {
            return Box::pin(async move { Ok(inner.call(req).await?.map(AuthBody::inner)) });
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let step = mcpgate_telemetry::step(mcpgate_telemetry::StepName::Authentication);
            let decided = shared.authenticate(&mut parts).await;
            if step.is_timed() {
                let (failed, how) = match &decided {
                    Ok(c) => (false, serde_json::to_value(c.principal().method()).ok()),
                    Err(r) => (true, Some(r.error_code().into())),
                };
                let how = how.as_ref().and_then(|v| v.as_str()).unwrap_or("other");
                let key = if failed {
                    "mcpgate.auth.error"
                } else {
                    "mcpgate.auth.verifier"
                };
                step.end(failed, &[(key, how)]);
            }
            match decided {
                Ok(caller) => {
                    let p = caller.principal();
                    mcpgate_telemetry::note_principal(
                        p.subject().as_str(),
                        p.client_id().map(|c| c.as_str()),
                        p.method(),
                    );
                    parts.extensions.insert(caller);
                    let req = Request::from_parts(parts, body);
                    Ok(inner.call(req).await?.map(AuthBody::inner))
                }
                Err(rejection) => {
                    mcpgate_telemetry::note_auth_refused(rejection.error_code());
                    tracing::debug!(
                        path = parts.uri.path(),
                        status = rejection.status().as_u16(),
                        error = rejection.error_code(),
                        reason = %rejection,
                        "request refused"
                    );
                    let challenge = shared.admission.challenge(&parts);
                    Ok(rejection
                        .into_response(&challenge)
                        .map(|json| AuthBody::own(Bytes::from(json))))
                }
            }
        })
    }
}

/// Everything the layer's services share.
#[derive(Debug)]
struct Shared {
    chain: Chain,
    access: Access,
    /// The one caller of disabled mode, made once rather than per request.
    everyone: Authenticated,
    extract: ExtractOptions,
    admission: Arc<dyn Admission>,
    metadata: Option<Metadata>,
    seen_proofs: SeenProofs,
}

/// The metadata document and the two paths it is served at.
#[derive(Debug)]
struct Metadata {
    path: String,
    root: String,
    json: Bytes,
}

impl Shared {
    /// The answer at a metadata path, `None` elsewhere (and for `OPTIONS`,
    /// which CORS answers).
    fn metadata_response<B>(&self, method: &Method, path: &str) -> Option<Response<AuthBody<B>>> {
        let m = self.metadata.as_ref()?;
        if path != m.path && path != m.root {
            return None;
        }
        let resp = match *method {
            Method::GET | Method::HEAD => {
                let mut r = Response::new(AuthBody::own(m.json.clone()));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=300"),
                );
                r
            }
            Method::OPTIONS => return None,
            _ => {
                let mut r = Response::new(AuthBody::own(Bytes::new()));
                *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                r
            }
        };
        Some(resp)
    }

    /// Who is calling, or why not: the credential (none is anonymous where
    /// access is optional), the chain, then the admission's checks.
    async fn authenticate(&self, parts: &mut Parts) -> Result<Authenticated, AuthRejection> {
        if self.access == Access::Disabled {
            return Ok(self.everyone.clone());
        }
        let credential = extract(&parts.headers, parts.uri.query(), &self.extract)?;
        let principal = match &credential {
            Some(c) => match self.chain.authenticate_shared(c).await {
                Ok(p) => p,
                Err(r) => return Err(self.admission.explain(parts, r)),
            },
            None if self.access == Access::Optional => Arc::new(Principal::anonymous()),
            None => return Err(AuthRejection::Missing),
        };
        // DPoP binds bearer tokens only: an API key or a password skips making
        // the check (a URL and the upstream's settings) on every request.
        if let Some(c @ Credential::Bearer(_)) = &credential
            && let Some(check) = self.admission.dpop(parts)
        {
            crate::dpop::check(&self.seen_proofs, parts, c, &principal, &check).await?;
        }
        self.admission
            .admit(parts, &principal, credential.as_ref())?;
        Ok(Authenticated::shared(principal))
    }
}

/// Sorts and removes repeats.
fn dedup(scopes: &mut Vec<String>) {
    scopes.sort();
    scopes.dedup();
}

pin_project! {
    /// The response body of [`RequireAuth`]: the inner service's, or the
    /// guard's own (a refusal's JSON, the metadata document).
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Own { bytes: Option<Bytes> },
    }
}

impl<B> AuthBody<B> {
    fn inner(body: B) -> Self {
        AuthBody {
            kind: Kind::Inner { body },
        }
    }

    fn own(bytes: Bytes) -> Self {
        AuthBody {
            kind: Kind::Own {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }
}

impl<B> std::fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("AuthBody::Inner"),
            Kind::Own { .. } => f.write_str("AuthBody::Own"),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for AuthBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Own { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Own { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Own { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests;
