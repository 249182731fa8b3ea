//! The running configuration of `mcpgate serve`, and reloading it on SIGHUP:
//! the file is read again with the loader `serve` started with (TOML,
//! `MCPGATE_…` variables, then the flags), checked the same way, and on
//! success the upstreams, `[auth]` and `server.allowed_origins` take effect
//! in a new gateway snapshot whose router the listener serves from the next
//! request on. Every other key keeps its running value, named in a warning as
//! needing a restart. A configuration with problems changes nothing: each
//! problem is logged.

mod diff;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use mcpgate_authserver::AuthServer;
use mcpgate_gateway::{Gateway, GatewayConfig, Isolation, OriginPolicy, UpstreamConfig};

use crate::config::{self, AuthMode, Config, LogFormat};
use crate::live::LiveApp;

/// How long the children of a removed or changed upstream get to exit.
const RETIRE_GRACE: Duration = Duration::from_secs(5);
/// How often idle sessions are closed.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// What `serve`'s flags change in the configuration, applied at start and at
/// every reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) demo: bool,
    pub(crate) no_auth: bool,
}

impl Overrides {
    /// Loads `path` (or the defaults), applies the environment and the flags,
    /// and returns the configuration with the merged TOML it came from.
    pub(crate) fn load(&self, path: Option<&Path>) -> Result<(Config, toml::Table), Vec<String>> {
        let (mut cfg, layers) = config::load_layers(path)?;
        if let Some(l) = self.listen {
            cfg.server.listen = l;
        }
        if let Some(d) = &self.data_dir {
            cfg.server.data_dir = d.clone();
        }
        if let Some(f) = self.log_format {
            cfg.server.log_format = f;
        }
        if self.demo {
            cfg.auth.mode = if self.no_auth {
                AuthMode::Disabled
            } else {
                AuthMode::Required
            };
            // The demo signs users in through the built-in authorization server too.
            cfg.authserver.enabled = !self.no_auth;
            cfg.upstreams.retain(|u| u.name != "demo");
            cfg.upstreams
                .insert(0, demo_upstream(&cfg.server.data_dir).map_err(|e| vec![e])?);
        }
        Ok((cfg, layers.merged))
    }
}

/// The demo upstream: this same binary's `demo-server`, one child per session.
fn demo_upstream(data_dir: &Path) -> Result<UpstreamConfig, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the mcpgate executable for the demo server: {e}"))?;
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // Reading needs notes:read, creating needs notes:write (tools/list hides the rest).
    let toml = format!(
        "name = \"demo\"\ncommand = [{:?}, \"demo-server\", \"--data-dir\", {:?}]\n\
         tool_scopes = {{ \"create_*\" = \"notes:write\", \"list_secure_notes\" = \"notes:read\" }}\n\
         resource_scopes = {{ \"user://*\" = \"notes:read\" }}\n\
         prompt_scopes = {{ \"note_summary\" = \"notes:read\" }}\n",
        exe.display().to_string(),
        dir.display().to_string()
    );
    let mut u: UpstreamConfig = toml::from_str(&toml).map_err(|e| e.to_string())?;
    u.isolation = Isolation::Session;
    Ok(u)
}

/// Where the gateway runs: fixed at start, the same for every reload.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// The URL clients use.
    pub(crate) public_url: url::Url,
    /// The bound address.
    pub(crate) local: SocketAddr,
    /// The built-in authorization server, when it runs.
    pub(crate) authserver: Option<AuthServer>,
    /// Where other replicas reach the internal listener, when it runs.
    pub(crate) internal_advertise: Option<String>,
}

/// The gateway's configuration from `cfg`: the guard's verifiers
/// (`auth::build`), per-user secrets (`vault_cmd::wire`), upstreams, limits
/// and origins. Every problem found is returned.
pub(crate) async fn gateway_config(cfg: &Config, at: &Place) -> Result<GatewayConfig, Vec<String>> {
    let auth = crate::auth::build(cfg, &at.public_url, at.authserver.as_ref()).await;
    let federation: Vec<String> = cfg
        .authserver
        .federation
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let sources = crate::vault_cmd::wire(at.authserver.as_ref(), &cfg.upstreams, &federation).await;
    let keys = session_keys(&cfg.server).map_err(|e| format!("server.session_key: {e}"));
    let rules = crate::policy_cmd::load(cfg.policy.as_ref());
    let quotas = crate::quotas::counter(cfg).await;
    let (auth, user_sources, session_keys, rules, quotas) =
        match (auth, sources, keys, rules, quotas) {
            (Ok(a), Ok(s), Ok(k), Ok(r), Ok(q)) => (a, s, k, r, q),
            (a, s, k, r, q) => {
                let mut problems = a.err().unwrap_or_default();
                problems.extend(q.err());
                problems.extend(s.err());
                problems.extend(k.err());
                problems.extend(r.err().unwrap_or_default());
                return Err(problems);
            }
        };
    if let Some(r) = &rules {
        tracing::info!(
            file = %r.path().display(),
            policies = r.len(),
            "policy rules loaded"
        );
    }
    Ok(GatewayConfig {
        upstreams: cfg.upstreams.clone(),
        limits: cfg.server.limits(),
        origins: OriginPolicy::new(&at.public_url, at.local, &cfg.server.allowed_origins),
        auth,
        public_url: at.public_url.clone(),
        user_sources,
        readiness_checks: vec![std::sync::Arc::new(crate::preflight::Readiness {
            data_dir: cfg.server.data_dir.clone(),
            upstreams: cfg.upstreams.clone(),
        })],
        session_keys: std::sync::Arc::new(session_keys),
        internal_advertise: at.internal_advertise.clone(),
        virtual_servers: cfg.virtual_servers.clone(),
        rules,
        rate_limits: cfg.rate_limits.clone(),
        quotas,
    })
}

/// The key that seals `Mcp-Session-Id`s: `server.session_key`, else the key
/// in `server.session_key_file` (default `<data_dir>/session.key`, created
/// when missing). `server.session_key_previous` opens ids during a rotation.
fn session_keys(
    server: &crate::config::ServerConfig,
) -> Result<mcpgate_gateway::SessionKeys, mcpgate_gateway::SessionKeyError> {
    use secrecy::ExposeSecret as _;
    let previous = server
        .session_key_previous
        .as_ref()
        .map(|p| p.expose_secret());
    if let Some(key) = &server.session_key {
        return mcpgate_gateway::SessionKeys::from_base64(
            key.expose_secret(),
            previous,
            "server.session_key",
        );
    }
    let path = match &server.session_key_file {
        Some(p) => p.clone(),
        None => {
            std::fs::create_dir_all(&server.data_dir).map_err(|source| {
                mcpgate_gateway::SessionKeyError::Io {
                    path: server.data_dir.clone(),
                    source,
                }
            })?;
            server.data_dir.join(mcpgate_gateway::SESSION_KEY_FILE)
        }
    };
    mcpgate_gateway::SessionKeys::load_file(&path, previous)
}

/// The served application for one gateway snapshot: its routes, the
/// authorization server's, and the observation layer around both.
fn app_for(gateway: &Gateway, at: &Place) -> Router {
    mcpgate_telemetry::observe(crate::authserver::merge(
        gateway.router(),
        at.authserver.as_ref(),
    ))
}

/// `serve` while it runs: the configuration in force, the gateway snapshot
/// and the router the listener serves.
#[derive(Debug)]
pub(crate) struct Running {
    path: Option<PathBuf>,
    overrides: Overrides,
    cfg: Config,
    file: toml::Table,
    at: Place,
    gateway: Gateway,
    app: LiveApp,
    internal_app: LiveApp,
    reaper: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts serving `gateway`, built from `cfg` (read from `file`, the
    /// merged TOML of `path`).
    pub(crate) fn new(
        (path, overrides): (Option<PathBuf>, Overrides),
        (cfg, file): (Config, toml::Table),
        at: Place,
        gateway: Gateway,
    ) -> Self {
        let app = LiveApp::new(app_for(&gateway, &at));
        let internal_app = LiveApp::new(gateway.internal_router());
        let reaper = gateway.spawn_reaper(REAP_EVERY);
        Running {
            path,
            overrides,
            cfg,
            file,
            at,
            gateway,
            app,
            internal_app,
            reaper,
        }
    }

    /// The router the listener serves.
    pub(crate) fn app(&self) -> LiveApp {
        self.app.clone()
    }

    /// The router the internal listener serves (forwards from other replicas).
    pub(crate) fn internal_app(&self) -> LiveApp {
        self.internal_app.clone()
    }

    /// The gateway snapshot in force.
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The configuration in force.
    pub(crate) fn config(&self) -> &Config {
        &self.cfg
    }

    /// Reads the configuration again and applies what it can; logs the
    /// outcome (and every problem) and counts it. Returns whether it applied.
    pub(crate) async fn reload(&mut self) -> bool {
        let from = self
            .path
            .as_ref()
            .map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string());
        tracing::info!(file = %from, "reloading the configuration");
        let ok = match self.apply().await {
            Ok(()) => true,
            Err(problems) => {
                for p in &problems {
                    tracing::error!("configuration reload: {p}");
                }
                tracing::error!(
                    file = %from,
                    problems = problems.len(),
                    "configuration reload failed: still serving the running configuration"
                );
                false
            }
        };
        mcpgate_telemetry::metrics().config_reload(ok);
        ok
    }

    async fn apply(&mut self) -> Result<(), Vec<String>> {
        let (read, file) = self.overrides.load(self.path.as_deref())?;
        // What a reload applies, on top of what runs; the rest stays as started.
        let mut next = self.cfg.clone();
        next.upstreams = read.upstreams;
        next.virtual_servers = read.virtual_servers;
        next.auth = read.auth;
        next.server.allowed_origins = read.server.allowed_origins;
        // The policy file is read again even when `[policy]` did not change:
        // editing the rules and reloading is the point.
        next.policy = read.policy;
        next.rate_limits = read.rate_limits;
        // Every problem, not the first: the refusals and what building fails on.
        let mut problems = crate::preflight::refusals(&next);
        let gw_cfg = match gateway_config(&next, &self.at).await {
            Ok(c) if problems.is_empty() => c,
            Ok(_) => return Err(problems),
            Err(more) => {
                let more: Vec<String> =
                    more.into_iter().filter(|p| !problems.contains(p)).collect();
                problems.extend(more);
                return Err(problems);
            }
        };
        let upstreams = diff::upstreams(
            &self.file,
            &file,
            next.upstreams.iter().map(|u| u.name.as_str()),
        );
        let (gateway, changes) = self
            .gateway
            .reconfigured(gw_cfg, &upstreams.unchanged)
            .map_err(|e| vec![e.to_string()])?;
        let restart = diff::needs_restart(&self.file, &file);
        // From here on nothing fails: the new snapshot takes over.
        let retired = self.gateway.retire(&gateway);
        self.app.store(app_for(&gateway, &self.at));
        self.internal_app.store(gateway.internal_router());
        self.reaper.abort();
        self.reaper = gateway.spawn_reaper(REAP_EVERY);
        let ended = retired.session_count();
        tokio::spawn(retired.end(RETIRE_GRACE));
        for m in crate::preflight::readiness_problems(&next) {
            tracing::warn!("not ready: {m}");
        }
        self.gateway = gateway;
        self.cfg = next;
        self.file = file;
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "configuration reload: {} changed but needs a restart; still running with the values from the start",
                restart.join(", ")
            );
        }
        tracing::info!(
            added = ?changes.added,
            removed = ?changes.removed,
            changed = ?changes.changed,
            policy_changed = ?upstreams.policy,
            sessions_ended = ended,
            "configuration reloaded"
        );
        Ok(())
    }
}
