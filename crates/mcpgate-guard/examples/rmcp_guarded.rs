//! An rmcp MCP server protected by `mcpgate-guard` as a tower layer.
//!
//! One tool, `whoami`, answers with the caller's subject and scopes as the
//! guard verified them. Every request needs `Authorization: Bearer <token>`
//! (or `X-API-Key: <token>`); without one the server answers 401 with the
//! `WWW-Authenticate` challenge.
//!
//! ```text
//! export WHOAMI_TOKENS="$(openssl rand -hex 32):alice:notes:read"
//! cargo run -p mcpgate-guard --example rmcp_guarded
//! ```
//!
//! Environment:
//!
//! - `WHOAMI_TOKENS`: static tokens, comma-separated, each
//!   `token[:subject[:scope scope…]]` (tokens of at least 32 characters).
//! - `WHOAMI_JWT_ISSUER` and `WHOAMI_JWT_JWKS_URI`: also accept JWTs of this
//!   issuer whose audience is the server's URL; the issuer is then named in
//!   the protected-resource metadata, served at
//!   `/.well-known/oauth-protected-resource/mcp` and `/.well-known/oauth-protected-resource`.
//! - `WHOAMI_LISTEN`: the address to listen on (default `127.0.0.1:8000`).
//! - `WHOAMI_URL`: the public URL of the endpoint (default `http://<listen>/mcp`).
//!
//! See `docs/GUARD-LIBRARY.md`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use mcpgate_guard::{
    Chain, GuardSettings, Issuer, JwtConfig, JwtVerifier, StaticTokens, StaticTokensConfig,
    Verifier, require_auth,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};

/// The path of the MCP endpoint.
const MCP_PATH: &str = "/mcp";

/// The MCP server: one `whoami` tool.
#[derive(Clone)]
pub(crate) struct Whoami {
    tool_router: ToolRouter<Self>,
}

/// What `whoami` answers.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Caller {
    /// Who the guard says is calling.
    subject: String,
    /// The scopes they were granted.
    scopes: Vec<String>,
    /// How they authenticated (`static_token`, `jwt`, …).
    method: String,
}

#[tool_router]
impl Whoami {
    pub(crate) fn new() -> Self {
        Whoami {
            tool_router: Self::tool_router(),
        }
    }

    /// rmcp hands every tool the HTTP request's parts; the guard's
    /// `Principal` is in their extensions.
    #[tool(
        description = "Tell who the server thinks you are: your subject and scopes.",
        annotations(read_only_hint = true)
    )]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<Caller>, ErrorData> {
        let p = mcpgate_guard::principal(&parts).ok_or_else(|| {
            ErrorData::internal_error("no principal: require_auth is not in front", None)
        })?;
        let method = serde_json::to_value(p.method())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(Json(Caller {
            subject: p.subject().to_string(),
            scopes: p.scopes().iter().map(ToString::to_string).collect(),
            method,
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Whoami {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("rmcp-guarded", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// The guard's verifiers and settings, from the variables `env` reads, for a
/// server listening on `listen`.
pub(crate) fn guard_from_env(
    env: impl Fn(&str) -> Option<String>,
    listen: SocketAddr,
) -> Result<(Chain, GuardSettings), String> {
    let url = env("WHOAMI_URL").unwrap_or_else(|| format!("http://{listen}{MCP_PATH}"));
    let resource: url::Url = url
        .parse()
        .map_err(|e| format!("WHOAMI_URL {url:?} is not a URL: {e}"))?;
    let mut verifiers: Vec<Arc<dyn Verifier>> = Vec::new();
    let mut issuers = Vec::new();
    if env("WHOAMI_TOKENS").is_some() {
        let cfg = StaticTokensConfig {
            tokens_env: Some("WHOAMI_TOKENS".to_owned()),
            ..StaticTokensConfig::default()
        };
        verifiers.push(Arc::new(
            StaticTokens::with_env(&cfg, &env).map_err(|e| e.to_string())?,
        ));
    }
    if let (Some(issuer), Some(jwks_uri)) = (env("WHOAMI_JWT_ISSUER"), env("WHOAMI_JWT_JWKS_URI")) {
        let cfg = JwtConfig {
            jwks_uri: Some(jwks_uri),
            ..JwtConfig::new(
                issuer
                    .parse()
                    .map_err(|e| format!("WHOAMI_JWT_ISSUER: {e}"))?,
                resource
                    .as_str()
                    .parse()
                    .map_err(|e| format!("audience: {e}"))?,
            )
        };
        verifiers.push(Arc::new(
            JwtVerifier::with_env(&cfg, &env).map_err(|e| e.to_string())?,
        ));
        // An issuer that is no OAuth authorization server (no https URL) is
        // not named in the metadata: clients could not find it there.
        if let Ok(i) = issuer.parse::<Issuer>() {
            issuers.push(i);
        }
    }
    if verifiers.is_empty() {
        return Err("set WHOAMI_TOKENS (and/or WHOAMI_JWT_ISSUER with WHOAMI_JWT_JWKS_URI)".into());
    }
    let settings = GuardSettings::new(resource).authorization_servers(issuers);
    Ok((Chain::new(verifiers), settings))
}

/// The whole server: MCP over Streamable HTTP at `/mcp`, behind the guard.
pub(crate) fn app(chain: Chain, settings: GuardSettings) -> Router {
    // rmcp only answers loopback `Host`s by default; add the public one.
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    hosts.extend(settings.resource.host_str().map(str::to_owned));
    let mcp = StreamableHttpService::new(
        || Ok(Whoami::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts(hosts),
    );
    Router::new()
        .route_service(MCP_PATH, mcp)
        // Around the whole router, so that it also sees (and answers) the
        // well-known metadata paths, and no route escapes it.
        .layer(require_auth(chain, settings))
}

#[tokio::main]
async fn main() -> ExitCode {
    let listen = std::env::var("WHOAMI_LISTEN").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rmcp_guarded: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| ([127, 0, 0, 1], 0).into());
    let (chain, settings) = match guard_from_env(|name| std::env::var(name).ok(), addr) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("rmcp_guarded: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "rmcp_guarded: MCP at {} (send Authorization: Bearer <token>)",
        settings.resource
    );
    match axum::serve(listener, app(chain, settings)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmcp_guarded: {e}");
            ExitCode::FAILURE
        }
    }
}
