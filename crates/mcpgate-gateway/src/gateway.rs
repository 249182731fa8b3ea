//! The assembled gateway: upstreams, sessions, and the axum router in front of them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Path, RawPathParams, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::FutureExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use mcpgate_guard::Policy;

use crate::auth::{AccessMode, AuthSettings, Endpoint, Guard};
use crate::config::{Limits, UpstreamConfig};
use crate::error::GatewayError;
use crate::front;
use crate::origin::OriginPolicy;
use crate::state::{Gateway, ReadinessCheck, Shared};
use crate::upstream::Upstream;

/// What the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The upstreams, each served at `/mcp/<name>`.
    pub upstreams: Vec<UpstreamConfig>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Origin and Host rules.
    pub origins: OriginPolicy,
    /// Authentication: mode, verifiers, issuers.
    pub auth: AuthSettings,
    /// The URL clients use (resource identifiers and metadata URLs derive from it).
    pub public_url: url::Url,
    /// Where per-user secrets (`kind = "vault"`) come from.
    pub user_sources: crate::credentials::UserSources,
    /// Conditions outside the gateway that `/readyz` checks on every request
    /// (e.g. the binary's data directory still writable).
    pub readiness_checks: Vec<Arc<dyn ReadinessCheck>>,
    /// Seals and opens `Mcp-Session-Id`s; replicas that share it serve each
    /// other's sessions.
    pub session_keys: Arc<crate::SessionKeys>,
    /// The `host:port` at which the other replicas reach this one's internal
    /// listener ([`Gateway::internal_router`]); `None` without one (a stdio
    /// session is then served by this replica only).
    pub internal_advertise: Option<String>,
    /// `[[virtual_server]]`s: several upstreams served as one at `/mcp/<name>`.
    pub virtual_servers: Vec<crate::VirtualServerConfig>,
    /// The `[policy]` rules every `tools/call`, `prompts/get` and
    /// `resources/read` must pass after the scope check; `None`: none.
    pub rules: Option<Arc<mcpgate_policy::Rules>>,
    /// `[[rate_limit]]` tables, checked after the policy.
    pub rate_limits: Vec<crate::RateLimitConfig>,
    /// Where daily quotas are counted (the store); needed when a rule is one.
    pub quotas: Option<Arc<dyn crate::QuotaCounter>>,
}

/// Headers browser clients may send (MCP-AUTH.md, CORS).
const ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    // RFC 9449: the proof that goes with `Authorization: DPoP`.
    "dpop",
];
/// Headers browser clients may read.
const EXPOSE_HEADERS: &[&str] = &["www-authenticate", "mcp-session-id", "mcp-protocol-version"];

impl Gateway {
    /// Builds the gateway; fails with [`GatewayError::Config`] naming the bad upstream.
    pub fn new(cfg: GatewayConfig) -> Result<Self, GatewayError> {
        Gateway::build(cfg, None)
    }

    /// Builds a snapshot from `cfg`. With `previous` (a reload: the running
    /// snapshot and the upstreams whose connection did not change), the
    /// session table and the shutdown signal are shared with it, and each
    /// kept upstream is the running one, children and all.
    pub(crate) fn build(
        cfg: GatewayConfig,
        previous: Option<(&Shared, &BTreeSet<String>)>,
    ) -> Result<Self, GatewayError> {
        let mut upstreams = BTreeMap::new();
        let mut timeouts = BTreeMap::new();
        let mut policies = BTreeMap::new();
        let mut dpop = BTreeMap::new();
        let mut dpop_nonce = std::collections::BTreeSet::new();
        let audiences = crate::audience::Audiences::new(
            cfg.auth.audiences.clone(),
            &cfg.public_url,
            &cfg.upstreams,
        )?
        .with_endpoints(
            &cfg.public_url,
            cfg.virtual_servers.iter().map(|v| v.name.as_str()),
        );
        let problems = crate::virtual_server_problems(&cfg.virtual_servers, &cfg.upstreams);
        if let Some(first) = cfg.virtual_servers.first()
            && !problems.is_empty()
        {
            return Err(GatewayError::Config {
                upstream: first.name.clone(),
                problems,
            });
        }
        let rate_limits = crate::limits::RateLimits::new(
            &cfg.rate_limits,
            cfg.quotas.clone(),
            previous.map(|(p, _)| &*p.rate_limits),
        )
        .map_err(|problems| GatewayError::Config {
            upstream: "rate_limit".into(),
            problems,
        })?;
        let upstream_configs = cfg.upstreams.clone();
        for u in cfg.upstreams {
            let name = u.name.clone();
            let policy = Policy::new(&u.policy_config(), &cfg.auth.groups_claim).map_err(|e| {
                GatewayError::Config {
                    upstream: name.clone(),
                    problems: vec![format!("upstream {name}: {e}")],
                }
            })?;
            policies.insert(name.clone(), policy);
            dpop.insert(name.clone(), u.dpop);
            if u.dpop_nonce {
                if u.dpop == mcpgate_guard::DpopMode::Off {
                    return Err(GatewayError::Config {
                        problems: vec![format!(
                            "upstream {name}: dpop_nonce = true needs dpop = \"allowed\" or \"required\" (it is \"off\")"
                        )],
                        upstream: name,
                    });
                }
                if cfg.auth.dpop_nonces.is_none() {
                    return Err(GatewayError::Config {
                        problems: vec![format!(
                            "upstream {name}: dpop_nonce = true but the gateway has no nonce secret (it comes from the master key)"
                        )],
                        upstream: name,
                    });
                }
                dpop_nonce.insert(name.clone());
            }
            let timeout = u.request_timeout.unwrap_or(cfg.limits.request_timeout);
            timeouts.insert(name.clone(), timeout);
            // The upstream bounds its own exchanges (HTTP requests, a child's
            // initialize) by its own timeout, not the server-wide one.
            let limits = crate::config::Limits {
                request_timeout: timeout,
                ..cfg.limits.clone()
            };
            if cfg.auth.identity_signer.is_none()
                && u.credentials
                    .iter()
                    .any(|c| matches!(c, crate::CredentialConfig::TokenExchange(_)))
            {
                return Err(GatewayError::Config {
                    problems: vec![format!(
                        "upstream {name}: a per-user credential (token_exchange) needs signed-in callers and the gateway's identity token: enable authentication and keep auth.identity_token = true"
                    )],
                    upstream: name,
                });
            }
            let running = previous
                .filter(|(_, keep)| keep.contains(&name))
                .and_then(|(shared, _)| shared.upstreams.get(&name));
            if let Some(running) = running {
                upstreams.insert(name, running.clone());
                continue;
            }
            let upstream = Upstream::new(u, limits, &cfg.user_sources)?;
            // Reported now and on /readyz; the gateway still starts, so that the
            // other upstreams work and the operator sees what is missing.
            for m in upstream.credentials().missing() {
                tracing::warn!("{m}");
            }
            upstreams.insert(name, Arc::new(upstream));
        }
        let mut virtuals = BTreeMap::new();
        for v in &cfg.virtual_servers {
            let policy = Policy::new(&v.policy_config(), &cfg.auth.groups_claim).map_err(|e| {
                GatewayError::Config {
                    upstream: v.name.clone(),
                    problems: vec![format!("virtual_server {}: {e}", v.name)],
                }
            })?;
            policies.insert(v.name.clone(), policy);
            dpop.insert(v.name.clone(), v.dpop);
            let server = crate::virtual_server::naming::VirtualServer::new(
                v,
                &upstream_configs,
                &upstreams,
                &timeouts,
            )?;
            virtuals.insert(v.name.clone(), Arc::new(server));
        }
        Ok(Gateway {
            shared: Arc::new(Shared {
                virtuals,
                virtual_sessions: previous
                    .map(|(p, _)| p.virtual_sessions.clone())
                    .unwrap_or_default(),
                upstreams,
                sessions: previous
                    .map(|(p, _)| p.sessions.clone())
                    .unwrap_or_default(),
                limits: cfg.limits,
                timeouts,
                origins: cfg.origins,
                guard: Arc::new(Guard {
                    settings: cfg.auth,
                    policies,
                    dpop,
                    dpop_nonce,
                    public_url: cfg.public_url,
                    audiences,
                    rules: cfg.rules,
                    hints: previous
                        .map(|(p, _)| p.guard.hints.clone())
                        .unwrap_or_default(),
                    virtual_servers: cfg.virtual_servers.iter().map(|v| v.name.clone()).collect(),
                }),
                rate_limits: Arc::new(rate_limits),
                parked: previous.map(|(p, _)| p.parked.clone()).unwrap_or_default(),
                stopping: previous
                    .map(|(p, _)| p.stopping.clone())
                    .unwrap_or_default(),
                readiness_checks: cfg.readiness_checks,
                session_keys: cfg.session_keys,
                internal_advertise: cfg.internal_advertise,
                forwarder: previous
                    .map(|(p, _)| p.forwarder.clone())
                    .unwrap_or_default(),
                used_passes: previous
                    .map(|(p, _)| p.used_passes.clone())
                    .unwrap_or_default(),
            }),
        })
    }

    /// The HTTP router: MCP endpoints, legacy SSE endpoints, health checks.
    pub fn router(&self) -> Router {
        let mut mcp = Router::new()
            // One handler for every era: it decides the era once (front/era.rs).
            .route("/mcp/{name}", any(front::serve))
            .route("/mcp/{name}/sse", get(front::serve))
            .route("/mcp/{name}/messages", any(front::serve));
        // A virtual server's route is its own: it has no upstream of its own
        // for the era step, and its handler opens its members' sessions.
        for name in self.shared.virtuals.keys() {
            mcp = mcp.route(&format!("/mcp/{name}"), any(crate::virtual_server::serve));
        }
        if self.shared.upstreams.len() == 1 {
            mcp = mcp
                .route("/mcp", any(front::serve))
                .route("/sse", get(front::serve))
                .route("/messages", any(front::serve));
        }
        // Every MCP route, and only those, sits behind the guard: `front::serve`
        // takes its `Authenticated` proof, so a route added here without the
        // layer answers 500 instead of serving an unchecked caller. Which
        // upstream a request is for is settled first, so that a refusal carries
        // that upstream's challenge; the era is decided after, in the handler.
        // One `route_layer` for both: each layer added on its own boxes the
        // route again, and axum clones every box down the stack per request.
        let mcp = mcp.route_layer(
            tower::ServiceBuilder::new()
                .layer(crate::pre_check::PreCheck::new(self.clone(), endpoint_of))
                .layer(self.shared.guard.layer()),
        );
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(
                self.shared.origins.allowed_origin_values(),
            ))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers(
                ALLOW_HEADERS
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(
                EXPOSE_HEADERS
                    .iter()
                    .map(|h| HeaderName::from_static(h))
                    .collect::<Vec<_>>(),
            )
            .max_age(Duration::from_secs(600));
        // Metadata is public and read by browser clients from any origin: it sits
        // outside the Origin check, with CORS open to all.
        let mut well_known = Router::new()
            .route("/.well-known/oauth-protected-resource", get(metadata_root))
            .route(
                "/.well-known/oauth-protected-resource/mcp/{name}",
                get(metadata_named),
            );
        if self.shared.upstreams.len() == 1 {
            well_known = well_known.route(
                "/.well-known/oauth-protected-resource/mcp",
                get(metadata_only),
            );
        }
        well_known = well_known.route(IDENTITY_JWKS_PATH, get(identity_jwks));
        let well_known = well_known
            .layer(
                CorsLayer::new()
                    .allow_origin(tower_http::cors::Any)
                    .allow_methods([Method::GET]),
            )
            .with_state(self.clone());
        Router::new()
            .merge(well_known)
            .merge(mcp)
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            // One `layer` for both (one box per route, as above).
            .layer(
                tower::ServiceBuilder::new()
                    // CORS answers preflights first (they carry no credentials and must not be refused by auth).
                    .layer(crate::cors::BrowserCors::new(cors))
                    // Origin and Host are checked before anything else touches the request:
                    // a DNS-rebinding page must learn nothing, not even whether a session exists.
                    .layer(crate::pre_check::PreCheck::new(self.clone(), check_origin)),
            )
            .with_state(self.clone())
    }

    /// Forgets every credential verified so far, so that the next request
    /// with each is verified again: a revocation was announced (on
    /// PostgreSQL, by any replica or the CLI).
    pub fn forget_verified(&self) {
        self.shared.guard.settings.chain.cache().clear();
    }

    /// Has every session a client ends here (DELETE) announced with `f`,
    /// which gets a digest of the session's id (several replicas on
    /// PostgreSQL; pass what [`Gateway::end_announced_session`] gets on the
    /// other replicas). Set once; it holds across reloads.
    pub fn announce_session_ends(&self, f: impl Fn(String) + Send + Sync + 'static) {
        self.shared.sessions.set_announcer(Box::new(f));
    }

    /// Forgets the session whose id has this digest, which a client ended
    /// on another replica (or this one, then it is gone already). A session
    /// continued here from a Streamable HTTP upstream is let go without a
    /// second DELETE upstream; one whose child lives here is ended.
    pub fn end_announced_session(&self, digest: &str) {
        for s in self.shared.sessions.take_where(|s| s.digest == digest) {
            tracing::info!(upstream = %s.upstream_name, "a session ended on another replica: forgetting it");
            tokio::spawn(async move {
                if s.link.is_portable() {
                    s.release().await;
                } else {
                    s.close().await;
                }
            });
        }
    }

    /// Sessions currently open (virtual servers' included).
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len() + self.shared.virtual_sessions.len()
    }

    /// Closes idle sessions (and their per-session children) every `every`.
    pub fn spawn_reaper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                for s in shared
                    .sessions
                    .take_stale(shared.limits.session_idle_timeout)
                {
                    tracing::debug!(upstream = %s.upstream_name, "closing an idle or dead session");
                    s.release().await;
                }
                for s in shared
                    .virtual_sessions
                    .take_stale(shared.limits.session_idle_timeout)
                {
                    tracing::debug!(virtual_server = %s.server.name, "closing an idle virtual session");
                    s.close().await;
                }
                for u in shared.upstreams.values() {
                    u.reap_idle(shared.limits.session_idle_timeout).await;
                }
            }
        })
    }

    /// Ends every open SSE stream (GET streams, legacy SSE) so a graceful
    /// shutdown does not wait on connections that never finish by themselves.
    pub fn end_streams(&self) {
        self.shared.sessions.end_streams();
    }

    /// Answers every request still waiting on an upstream with a JSON-RPC
    /// error saying the gateway is shutting down (SSE answers end with it).
    /// Call it before [`Gateway::shutdown`], which stops the children.
    pub fn abort_in_flight(&self) {
        self.shared.stopping.trigger();
    }

    /// Ends every session and stops every child (SIGTERM, then SIGKILL after
    /// `grace`). A session any replica can serve (a Streamable HTTP
    /// upstream's) is let go, not ended upstream: its client continues it,
    /// and resumes its streams, on another replica or after a restart.
    pub async fn shutdown(&self, grace: Duration) {
        let sessions = self.shared.sessions.drain();
        futures_util::future::join_all(sessions.iter().map(|s| s.release())).await;
        let virtuals = self.shared.virtual_sessions.drain();
        futures_util::future::join_all(virtuals.iter().map(|s| s.close())).await;
        futures_util::future::join_all(self.shared.upstreams.values().map(|u| u.shutdown(grace)))
            .await;
    }

    /// Each upstream's state, as `/readyz` reports it.
    pub fn readiness(&self) -> serde_json::Value {
        let mut ups = serde_json::Map::new();
        for (name, u) in &self.shared.upstreams {
            let mut st = u.status();
            if let Some(o) = st.as_object_mut() {
                o.insert(
                    "sessions".into(),
                    self.shared.sessions.count_for(name).into(),
                );
            }
            ups.insert(name.clone(), st);
        }
        let missing: Vec<serde_json::Value> = self
            .shared
            .upstreams
            .values()
            .flat_map(|u| u.credentials().missing())
            .map(Into::into)
            .collect();
        let mut doc = serde_json::json!({ "status": "ready", "upstreams": ups, "sessions": self.shared.sessions.len() });
        if !missing.is_empty() {
            doc["status"] = "not_ready".into();
            doc["missing_credentials"] = missing.into();
        }
        let problems: Vec<serde_json::Value> = self
            .shared
            .readiness_checks
            .iter()
            .flat_map(|c| c.problems())
            .map(Into::into)
            .collect();
        if !problems.is_empty() {
            doc["status"] = "not_ready".into();
            doc["problems"] = problems.into();
        }
        let auth = match self.shared.guard.settings.mode {
            AccessMode::Required => "required",
            AccessMode::Optional => "optional",
            AccessMode::Disabled => {
                doc["warning"] = "authentication is DISABLED: anyone who can reach this address can use every upstream".into();
                "disabled"
            }
        };
        doc["auth"] = auth.into();
        doc
    }
}

fn check_origin(gw: &Gateway, req: &mut Request) -> Result<(), Response> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(GatewayError::HeadersTooLarge {
            total: header_bytes,
            limit: MAX_HEADER_BYTES,
        }
        .into_response());
    }
    gw.shared.origins.check(req.headers())
}

/// Headers beyond this are refused: MCP requests carry a handful of short headers.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Settles which upstream a request to an MCP route is for, before the guard
/// runs: the `{name}` of the path, the only upstream on the short paths, and
/// for a legacy message the upstream of its session (the path does not say).
pub(crate) fn endpoint_of(gw: &Gateway, req: &mut Request) -> Result<(), Response> {
    let named = path_params(req);
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let session_upstream = route
        .ends_with("/messages")
        .then(|| front::era::session_id(req.uri().query()))
        .flatten()
        .and_then(|id| {
            gw.shared
                .sessions
                .get(&id)
                .map(|s| s.upstream_name.to_string())
                .or_else(|| {
                    let id = id.parse::<mcpgate_types::SessionId>().ok()?;
                    gw.shared
                        .virtual_sessions
                        .get(&id)
                        .map(|s| s.server.name.to_string())
                })
        });
    // A virtual server's route is written out (`/mcp/work`): no `{name}` in it.
    let virtual_route = route
        .strip_prefix("/mcp/")
        .filter(|n| gw.shared.virtuals.contains_key(*n))
        .map(str::to_owned);
    // The `{name}` as the path has it (decoded), borrowed: no map or `String`
    // per request.
    let named = named
        .as_ref()
        .and_then(|p| p.iter().find(|(k, _)| *k == "name").map(|(_, v)| v));
    let name: Cow<'_, str> = match session_upstream.or(virtual_route) {
        Some(n) => Cow::Owned(n),
        None => match named {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(gw.only_upstream().unwrap_or_default()),
        },
    };
    let (upstream, target) = match gw.upstream(&name) {
        Some((upstream, target)) => (upstream, Some(target)),
        None if gw.shared.virtuals.contains_key(&*name) => (Arc::from(&*name), None),
        None => {
            return Err(
                crate::error::GatewayError::UnknownUpstream(name.into_owned()).answer(None),
            );
        }
    };
    // Streamable HTTP names its endpoint by the path it was reached at (`/mcp`
    // or `/mcp/<name>`); the legacy routes by the upstream's own endpoint.
    let path = if route == "/mcp" || route == "/mcp/{name}" {
        req.uri().path().to_owned()
    } else {
        format!("/mcp/{upstream}")
    };
    req.extensions_mut().insert(Endpoint {
        upstream,
        path,
        target,
    });
    Ok(())
}

/// The route's path parameters, as axum's extractor reads them (it never waits).
fn path_params(req: &mut Request) -> Option<RawPathParams> {
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .now_or_never()
        .and_then(Result::ok);
    *req = Request::from_parts(parts, body);
    params
}

/// RFC 9728 metadata for one upstream's endpoint, or 404 when no authorization
/// server is configured (the document must name at least one).
fn metadata(gw: &Gateway, upstream: Option<&str>, path: &str) -> Response {
    let guard = &gw.shared.guard;
    if guard.settings.authorization_servers.is_empty() {
        return GatewayError::NoAuthorizationServer.into_response();
    }
    let mut url = guard.public_url.clone();
    url.set_path(path);
    url.set_fragment(None);
    // server.public_url is checked to be http(s) when the config is read.
    let resource = match mcpgate_types::ResourceUri::from_url(&url) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("no protected-resource metadata for server.public_url: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let scopes = upstream.map(|u| guard.scopes_for(u)).unwrap_or_default();
    let doc = mcpgate_guard::ProtectedResource::new(
        resource,
        guard.settings.authorization_servers.clone(),
        scopes,
    )
    .with_dpop(upstream.map(|u| guard.dpop_for(u)).unwrap_or_default());
    let mut r = (StatusCode::OK, axum::Json(doc)).into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("max-age=300"),
    );
    r
}

async fn metadata_named(State(gw): State<Gateway>, Path(name): Path<String>) -> Response {
    if gw.upstream(&name).is_none() && !gw.shared.virtuals.contains_key(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    metadata(&gw, Some(&name), &format!("/mcp/{name}"))
}

async fn metadata_only(State(gw): State<Gateway>) -> Response {
    let name = gw.only_upstream();
    metadata(&gw, name.as_deref(), "/mcp")
}

/// Older clients only try the root: it describes `/mcp` when there is one
/// upstream, else the gateway as a whole.
async fn metadata_root(State(gw): State<Gateway>) -> Response {
    if gw.shared.upstreams.len() == 1 {
        let name = gw.only_upstream();
        return metadata(&gw, name.as_deref(), "/mcp");
    }
    metadata(&gw, None, "/")
}

/// Where upstreams fetch the keys that verify `X-Mcpgate-Identity` tokens.
pub const IDENTITY_JWKS_PATH: &str = "/.well-known/mcpgate/identity-jwks.json";

async fn identity_jwks(State(gw): State<Gateway>) -> Response {
    match &gw.shared.guard.settings.identity_signer {
        Some(s) => (StatusCode::OK, axum::Json(s.jwks())).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "ok" })),
    )
        .into_response()
}

/// 503 while a configured credential is missing or a readiness check fails
/// (the operator must act);
/// unreachable upstreams are reported but do not make the gateway unready.
async fn readyz(State(gw): State<Gateway>) -> Response {
    let doc = gw.readiness();
    let status = if doc["status"] == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(doc)).into_response()
}

#[cfg(test)]
mod tests;
